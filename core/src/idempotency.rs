//! Producer retries: the same `(tenant, idempotency_key)` sealed once within a window.
//!
//! A producer that did not hear back resends; both copies reach the raw topic with different
//! offsets (and often different event ids), so offsets alone cannot tell them apart. The window
//! remembers, per partition, which keys were sealed recently. It holds digests only, never the
//! keys, and it is rebuilt at recovery from the sealed partition (the events sealed within the
//! window), so a restart does not forget it.

use std::collections::VecDeque;

use foldhash::HashMap;

use crate::digest::Digest;

/// The sealed event a duplicate repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original {
    pub seq: u64,
    pub event_id: String,
    pub sealed_at: i64,
}

/// Recently sealed idempotency keys of one partition, oldest first.
#[derive(Debug, Default)]
pub struct IdempotencyWindow {
    window_ms: i64,
    seen: HashMap<Digest, Original>,
    order: VecDeque<(i64, Digest)>,
}

/// Keys are compared after redaction (a tokenized key stays deterministic), so the window can be
/// rebuilt from sealed events; tenant and key are length-prefixed so no pair collides with another.
fn key_digest(tenant: &str, key: &str) -> Digest {
    Digest::of(&[
        &(tenant.len() as u64).to_be_bytes(),
        tenant.as_bytes(),
        &(key.len() as u64).to_be_bytes(),
        key.as_bytes(),
    ])
}

impl IdempotencyWindow {
    /// A window of `window_ms`; zero or less turns deduplication off.
    pub fn new(window_ms: i64) -> Self {
        Self {
            window_ms,
            ..Self::default()
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.window_ms > 0
    }

    /// The earliest sealing time still inside the window at `now_ms`.
    pub fn horizon(&self, now_ms: i64) -> i64 {
        now_ms.saturating_sub(self.window_ms)
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// The event this key was sealed as, if that was within the window.
    pub fn find(&mut self, tenant: &str, key: &str, now_ms: i64) -> Option<&Original> {
        if !self.is_enabled() {
            return None;
        }
        self.expire(now_ms);
        self.seen.get(&key_digest(tenant, key))
    }

    /// Remembers a sealed event's key. Events come in sealing order; an older one than the
    /// newest remembered (a clock step back) is kept until the newer ones expire.
    pub fn remember(&mut self, tenant: &str, key: &str, original: Original) {
        if !self.is_enabled() {
            return;
        }
        let digest = key_digest(tenant, key);
        self.order.push_back((original.sealed_at, digest));
        self.seen.insert(digest, original);
    }

    fn expire(&mut self, now_ms: i64) {
        let horizon = self.horizon(now_ms);
        while let Some((sealed_at, digest)) = self.order.front().copied() {
            if sealed_at >= horizon {
                break;
            }
            self.order.pop_front();
            // A key sealed again later (after expiring once) has a newer entry: keep that one.
            if self.seen.get(&digest).is_some_and(|kept| kept.sealed_at == sealed_at) {
                self.seen.remove(&digest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn original(seq: u64, sealed_at: i64) -> Original {
        Original {
            seq,
            event_id: format!("event-{seq}"),
            sealed_at,
        }
    }

    #[test]
    fn a_key_is_found_within_the_window_and_forgotten_after() {
        let mut window = IdempotencyWindow::new(1_000);
        window.remember("acme", "retry-1", original(7, 10_000));
        assert_eq!(window.find("acme", "retry-1", 10_500).map(|o| o.seq), Some(7));
        assert_eq!(window.find("acme", "retry-1", 11_000).map(|o| o.seq), Some(7));
        assert!(window.find("acme", "retry-1", 11_001).is_none());
        assert!(window.is_empty());
    }

    #[test]
    fn keys_are_per_tenant_and_unambiguous() {
        let mut window = IdempotencyWindow::new(1_000);
        window.remember("ab", "c", original(1, 0));
        assert!(window.find("other", "c", 0).is_none());
        assert!(window.find("a", "bc", 0).is_none());
        assert!(window.find("ab", "c", 0).is_some());
    }

    #[test]
    fn a_key_sealed_again_after_expiring_keeps_its_newer_original() {
        let mut window = IdempotencyWindow::new(100);
        window.remember("acme", "k", original(1, 0));
        assert!(window.find("acme", "k", 500).is_none());
        window.remember("acme", "k", original(2, 500));
        window.remember("acme", "other", original(3, 550));
        assert_eq!(window.find("acme", "k", 560).map(|o| o.seq), Some(2));
    }

    #[test]
    fn a_zero_window_never_deduplicates() {
        let mut window = IdempotencyWindow::new(0);
        window.remember("acme", "k", original(1, 0));
        assert!(window.find("acme", "k", 0).is_none());
    }
}

//! Validation of raw records and decoded events. A record that fails is rejected to the DLQ with
//! one of these reasons; nothing is dropped silently.

use std::fmt;

use crate::event::AuditEvent;

/// Limits a record must respect.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest raw record accepted, in bytes.
    pub max_record_bytes: usize,
    /// How far in the future (by the processor's clock) an event may claim to have happened.
    pub max_future_skew_ms: i64,
    /// How far in the past an event may have happened, for late or backfilled events.
    pub max_age_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_record_bytes: 64 * 1024,
            max_future_skew_ms: 5 * 60 * 1000,
            max_age_ms: 400 * 24 * 60 * 60 * 1000,
        }
    }
}

/// Why a record was rejected; `code` goes into the DLQ's `sealtrail.reason` header.
///
/// Details never quote free-text content, which may be personal data; they name fields and
/// structural values (ids, tenant ids, sizes, times) only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: RejectCode,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectCode {
    Oversized,
    NotAvro,
    UnknownSchema,
    IncompatibleSchema,
    MissingTenant,
    InvalidTenant,
    KeyMismatch,
    InvalidEventId,
    InvalidAction,
    MissingField,
    FutureTimestamp,
    StaleTimestamp,
    InvalidTraceContext,
    DuplicateAttribute,
    /// A producer retry: the `(tenant, idempotency_key)` was sealed within the idempotency window.
    Duplicate,
    /// The record is not in the raw partition its key belongs to (see [`crate::placement`]);
    /// sealing it would start a second chain for its tenant.
    WrongPartition,
    /// The record reached a raw partition after `sealtrail reshard` closed it: its layout epoch
    /// has ended, and its tenant's chain continues in the next layout's topics.
    LayoutClosed,
    /// The consumer never received this raw offset: a transaction marker, a record of an aborted
    /// transaction, or a record removed by retention before it was sealed. Recorded so that every
    /// raw offset leaves a trace (docs/integrity.md, "Offset accounting").
    NotDelivered,
}

impl RejectCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Oversized => "oversized",
            Self::NotAvro => "not_avro",
            Self::UnknownSchema => "unknown_schema",
            Self::IncompatibleSchema => "incompatible_schema",
            Self::MissingTenant => "missing_tenant",
            Self::InvalidTenant => "invalid_tenant",
            Self::KeyMismatch => "key_mismatch",
            Self::InvalidEventId => "invalid_event_id",
            Self::InvalidAction => "invalid_action",
            Self::MissingField => "missing_field",
            Self::FutureTimestamp => "future_timestamp",
            Self::StaleTimestamp => "stale_timestamp",
            Self::InvalidTraceContext => "invalid_trace_context",
            Self::DuplicateAttribute => "duplicate_attribute",
            Self::Duplicate => "duplicate",
            Self::WrongPartition => "wrong_partition",
            Self::LayoutClosed => "layout_closed",
            Self::NotDelivered => "not_delivered",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

pub fn reject(code: RejectCode, detail: impl Into<String>) -> Rejection {
    Rejection {
        code,
        detail: detail.into(),
    }
}

/// `^[a-z0-9][a-z0-9._-]{0,62}$`
pub fn is_valid_tenant_id(tenant_id: &str) -> bool {
    let bytes = tenant_id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
}

/// A ULID: 26 characters of Crockford base32, the first at most 7 (48-bit timestamp).
pub fn is_valid_ulid(id: &str) -> bool {
    id.len() == 26
        && id.as_bytes()[0] <= b'7'
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b.is_ascii_uppercase() && !matches!(b, b'I' | b'L' | b'O' | b'U')))
}

/// A dotted lowercase name led by its namespace: `user.login`, `billing.refund.posted`.
pub fn is_valid_action(action: &str) -> bool {
    action.len() <= 128
        && action.contains('.')
        && action.split('.').all(|segment| {
            segment.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

fn is_lower_hex(text: &str, length: usize) -> bool {
    text.len() == length
        && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && text.bytes().any(|b| b != b'0')
}

/// Checks the record key before decoding: it names the tenant the event must belong to.
pub fn check_key(key: Option<&[u8]>) -> Result<&str, Rejection> {
    let key = key.filter(|k| !k.is_empty()).ok_or_else(|| {
        reject(
            RejectCode::MissingTenant,
            "the record has no key; the key must be the tenant id",
        )
    })?;
    let tenant =
        std::str::from_utf8(key).map_err(|_| reject(RejectCode::InvalidTenant, "the record key is not UTF-8"))?;
    if !is_valid_tenant_id(tenant) {
        return Err(reject(
            RejectCode::InvalidTenant,
            format!("the record key {tenant:?} is not a valid tenant id (^[a-z0-9][a-z0-9._-]{{0,62}}$)"),
        ));
    }
    Ok(tenant)
}

/// Checks a decoded event against the record key and the processor's clock.
pub fn check_event(event: &AuditEvent, key_tenant: &str, now_ms: i64, limits: &Limits) -> Result<(), Rejection> {
    if event.tenant_id.is_empty() {
        return Err(reject(RejectCode::MissingTenant, "tenant_id is empty"));
    }
    if !is_valid_tenant_id(&event.tenant_id) {
        return Err(reject(
            RejectCode::InvalidTenant,
            format!(
                "tenant_id {:?} is not a valid tenant id (^[a-z0-9][a-z0-9._-]{{0,62}}$)",
                event.tenant_id
            ),
        ));
    }
    if event.tenant_id != key_tenant {
        return Err(reject(
            RejectCode::KeyMismatch,
            format!(
                "tenant_id {:?} differs from the record key {key_tenant:?}",
                event.tenant_id
            ),
        ));
    }
    if !is_valid_ulid(&event.event_id) {
        return Err(reject(
            RejectCode::InvalidEventId,
            format!("event_id {:?} is not a ULID", event.event_id),
        ));
    }
    if !is_valid_action(&event.action) {
        return Err(reject(
            RejectCode::InvalidAction,
            format!(
                "action {:?} is not a dotted lowercase name such as user.login",
                event.action
            ),
        ));
    }
    for (field, value) in [
        ("actor.id", &event.actor.id),
        ("resource.type", &event.resource.kind),
        ("resource.id", &event.resource.id),
    ] {
        if value.trim().is_empty() {
            return Err(reject(RejectCode::MissingField, format!("{field} is empty")));
        }
    }
    if event.occurred_at > now_ms.saturating_add(limits.max_future_skew_ms) {
        return Err(reject(
            RejectCode::FutureTimestamp,
            format!(
                "occurred_at {} is {} s ahead of the processor clock (at most {} s allowed)",
                event.occurred_at,
                (event.occurred_at - now_ms) / 1000,
                limits.max_future_skew_ms / 1000
            ),
        ));
    }
    if event.occurred_at < now_ms.saturating_sub(limits.max_age_ms) {
        return Err(reject(
            RejectCode::StaleTimestamp,
            format!(
                "occurred_at {} is older than the {} day window",
                event.occurred_at,
                limits.max_age_ms / 86_400_000
            ),
        ));
    }
    if event.trace_id.as_deref().is_some_and(|t| !is_lower_hex(t, 32)) {
        return Err(reject(
            RejectCode::InvalidTraceContext,
            "trace_id is not 32 lowercase hex characters",
        ));
    }
    if event.span_id.as_deref().is_some_and(|s| !is_lower_hex(s, 16)) {
        return Err(reject(
            RejectCode::InvalidTraceContext,
            "span_id is not 16 lowercase hex characters",
        ));
    }
    let mut keys: Vec<&str> = event.attributes.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    if let Some([repeated, _]) = keys.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(reject(
            RejectCode::DuplicateAttribute,
            format!("attribute key {repeated:?} appears twice"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_follow_the_documented_pattern() {
        for good in ["acme", "a", "0", "acme-bank.eu_1", &"a".repeat(63)] {
            assert!(is_valid_tenant_id(good), "{good}");
        }
        for bad in ["", "Acme", "-acme", ".acme", "ac me", "acmé", &"a".repeat(64)] {
            assert!(!is_valid_tenant_id(bad), "{bad}");
        }
    }

    #[test]
    fn ulids_and_actions_are_checked() {
        assert!(is_valid_ulid("01JD7Z8Y9X0W1V2K3T4S5R6Q7P"));
        assert!(!is_valid_ulid("01JD7Z8Y9X0W1V2K3T4S5R6Q7"));
        assert!(!is_valid_ulid("81JD7Z8Y9X0W1V2U3T4S5R6Q7P"));
        assert!(!is_valid_ulid("01JD7Z8Y9X0W1V2K3T4S5R6QIL"));
        assert!(
            !is_valid_ulid("01JD7Z8Y9X0W1V2U3T4S5R6Q7P"),
            "U is not Crockford base32"
        );
        assert!(is_valid_action("billing.refund.posted"));
        assert!(!is_valid_action("login"));
        assert!(!is_valid_action("User.Login"));
        assert!(!is_valid_action("user..login"));
    }

    #[test]
    fn the_clock_window_bounds_occurred_at() {
        let limits = Limits::default();
        let now = 1_763_856_000_000;
        let mut event = AuditEvent {
            event_id: "01JD7Z8Y9X0W1V2K3T4S5R6Q7P".into(),
            tenant_id: "acme".into(),
            occurred_at: now,
            action: "user.login".into(),
            ..AuditEvent::default()
        };
        event.actor.id = "u1".into();
        event.resource.kind = "account".into();
        event.resource.id = "a1".into();
        assert_eq!(check_event(&event, "acme", now, &limits), Ok(()));
        event.occurred_at = now + 3_600_000;
        assert_eq!(
            check_event(&event, "acme", now, &limits).map_err(|r| r.code),
            Err(RejectCode::FutureTimestamp)
        );
        event.occurred_at = now;
        assert_eq!(
            check_event(&event, "globex", now, &limits).map_err(|r| r.code),
            Err(RejectCode::KeyMismatch)
        );
        assert_eq!(check_key(None).map_err(|r| r.code), Err(RejectCode::MissingTenant));
    }
}

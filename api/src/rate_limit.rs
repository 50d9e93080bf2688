//! Per-credential rate limits: a token bucket for each API key or token subject.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many requests a credential may make: `burst` at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: 20.0,
            burst: 40,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The buckets of every credential seen recently.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Beyond this many credentials, the full (idle) buckets are forgotten.
const MAX_TRACKED: usize = 10_000;

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `subject`'s bucket, or says how long until one is available.
    pub fn check(&self, subject: &str) -> Result<(), Duration> {
        self.check_at(subject, Instant::now())
    }

    /// Whether `subject` has a request left, without taking it.
    pub fn has_room(&self, subject: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let burst = f64::from(self.limit.burst.max(1));
        let buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(bucket) = buckets.get(subject) else {
            return Ok(());
        };
        let tokens =
            (bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * self.limit.per_second).min(burst);
        if tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - tokens) / self.limit.per_second.max(f64::MIN_POSITIVE),
            ))
        }
    }

    fn check_at(&self, subject: &str, now: Instant) -> Result<(), Duration> {
        let burst = f64::from(self.limit.burst.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(subject) {
            let per_second = self.limit.per_second;
            buckets.retain(|_, bucket| {
                bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * per_second < burst
            });
        }
        let bucket = buckets.entry(subject.to_owned()).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let refilled = now.duration_since(bucket.updated).as_secs_f64() * self.limit.per_second;
        bucket.tokens = (bucket.tokens + refilled).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else if self.limit.per_second > 0.0 {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.limit.per_second))
        } else {
            Err(Duration::from_secs(3600))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_requests_wait_for_the_refill() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 2.0,
            burst: 3,
        });
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at("key:a", start).is_ok());
        }
        let wait = limiter.check_at("key:a", start).expect_err("over the burst");
        assert!((0.4..=0.5).contains(&wait.as_secs_f64()), "{wait:?}");
        assert!(
            limiter.check_at("key:b", start).is_ok(),
            "other credentials are not affected"
        );
        assert!(limiter.check_at("key:a", start + Duration::from_millis(500)).is_ok());
        assert!(limiter.check_at("key:a", start + Duration::from_millis(500)).is_err());
    }
}

//! Per-tenant ingest quotas: a token bucket of events for each tenant, so that one hot tenant
//! cannot take the edge from the others. A request takes as many tokens as it carries events,
//! all or none; a tenant may have its own rate and burst.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::rate_limit::RateLimit;

/// The quotas: one for every tenant, and those of tenants with their own.
#[derive(Debug, Clone)]
pub struct QuotaSettings {
    /// Events per second and burst of a tenant without its own quota.
    pub default: RateLimit,
    pub tenants: HashMap<String, RateLimit>,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        Self {
            default: RateLimit {
                per_second: 2_000.0,
                burst: 10_000,
            },
            tenants: HashMap::new(),
        }
    }
}

/// Why a request's events are not taken now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OverQuota {
    /// Retry after this long.
    Wait(Duration),
    /// The request holds more events than the tenant's burst: it can never pass whole.
    LargerThanBurst(u32),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

#[derive(Debug)]
pub struct TenantQuotas {
    settings: QuotaSettings,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Beyond this many tenants, the full (idle) buckets are forgotten.
const MAX_TRACKED: usize = 100_000;

impl TenantQuotas {
    pub fn new(settings: QuotaSettings) -> Self {
        Self {
            settings,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn limit(&self, tenant: &str) -> RateLimit {
        self.settings
            .tenants
            .get(tenant)
            .copied()
            .unwrap_or(self.settings.default)
    }

    /// Takes `events` tokens from `tenant`'s bucket, or none.
    pub fn take(&self, tenant: &str, events: u32) -> Result<(), OverQuota> {
        self.take_at(tenant, events, Instant::now())
    }

    fn take_at(&self, tenant: &str, events: u32, now: Instant) -> Result<(), OverQuota> {
        let limit = self.limit(tenant);
        let burst = f64::from(limit.burst.max(1));
        if f64::from(events) > burst {
            return Err(OverQuota::LargerThanBurst(limit.burst.max(1)));
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(tenant) {
            buckets.retain(|name, bucket| {
                let limit = self.limit(name);
                bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * limit.per_second
                    < f64::from(limit.burst.max(1))
            });
        }
        let bucket = buckets.entry(tenant.to_owned()).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * limit.per_second).min(burst);
        bucket.updated = now;
        let wanted = f64::from(events);
        if bucket.tokens >= wanted {
            bucket.tokens -= wanted;
            Ok(())
        } else if limit.per_second > 0.0 {
            Err(OverQuota::Wait(Duration::from_secs_f64(
                (wanted - bucket.tokens) / limit.per_second,
            )))
        } else {
            Err(OverQuota::Wait(Duration::from_secs(3600)))
        }
    }
}

/// Parses `PER_SECOND:BURST`.
pub fn parse_rate(text: &str) -> Result<RateLimit, String> {
    let (rate, burst) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not PER_SECOND:BURST (for example 500:2000)"))?;
    let per_second: f64 = rate
        .trim()
        .parse()
        .ok()
        .filter(|rate: &f64| rate.is_finite() && *rate >= 0.0)
        .ok_or_else(|| format!("`{rate}` is not a rate of events per second"))?;
    let burst: u32 = burst
        .trim()
        .parse()
        .ok()
        .filter(|burst| *burst > 0)
        .ok_or_else(|| format!("`{burst}` is not a burst of at least one event"))?;
    Ok(RateLimit { per_second, burst })
}

/// Parses `TENANT=PER_SECOND:BURST`.
pub fn parse_tenant_rate(text: &str) -> Result<(String, RateLimit), String> {
    let (tenant, rate) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not TENANT=PER_SECOND:BURST (for example acme=500:2000)"))?;
    if !sealtrail_core::validate::is_valid_tenant_id(tenant.trim()) {
        return Err(format!("`{tenant}` is not a valid tenant id"));
    }
    Ok((tenant.trim().to_owned(), parse_rate(rate)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas() -> TenantQuotas {
        let mut settings = QuotaSettings {
            default: RateLimit {
                per_second: 10.0,
                burst: 20,
            },
            tenants: HashMap::new(),
        };
        settings.tenants.insert(
            "big".to_owned(),
            RateLimit {
                per_second: 100.0,
                burst: 200,
            },
        );
        TenantQuotas::new(settings)
    }

    #[test]
    fn a_tenant_takes_its_burst_then_waits_while_others_are_untouched() {
        let quotas = quotas();
        let start = Instant::now();
        assert_eq!(quotas.take_at("hot", 15, start), Ok(()));
        let Err(OverQuota::Wait(wait)) = quotas.take_at("hot", 10, start) else {
            panic!("over the burst")
        };
        assert!((0.49..=0.51).contains(&wait.as_secs_f64()), "{wait:?}");
        assert_eq!(quotas.take_at("calm", 20, start), Ok(()));
        assert_eq!(quotas.take_at("hot", 10, start + Duration::from_millis(500)), Ok(()));
    }

    #[test]
    fn a_tenant_may_have_its_own_quota_and_a_batch_over_the_burst_is_named() {
        let quotas = quotas();
        let start = Instant::now();
        assert_eq!(quotas.take_at("big", 200, start), Ok(()));
        assert_eq!(quotas.take_at("small", 21, start), Err(OverQuota::LargerThanBurst(20)));
    }

    #[test]
    fn rates_are_parsed_or_named() {
        assert_eq!(
            parse_tenant_rate("acme=5:10").map(|(t, r)| (t, r.burst)),
            Ok(("acme".to_owned(), 10))
        );
        assert!(parse_rate("5").is_err() && parse_rate("x:1").is_err() && parse_rate("1:0").is_err());
        assert!(parse_tenant_rate("Not A Tenant=1:1").is_err());
    }
}

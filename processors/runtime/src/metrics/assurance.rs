//! The monitor's metrics: what it verified, how soon after sealing, and what it found wrong
//! (docs/slo.md and infra/prometheus/alerts.yml read them).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::{Labels, counters, duration_histogram, gauges};

/// Continuous assurance: checkpoints verified, incidents, the projection checked.
#[derive(Debug, Clone)]
pub struct AssuranceMetrics {
    incidents: Family<Labels, Counter>,
    checkpoints_verified: Counter,
    verify_delay: Histogram,
    verified_offset: Family<Labels, Gauge>,
    checked_offset: Family<Labels, Gauge>,
    buckets_compared: Counter,
    sweep_duration: Histogram,
    cosignatures: Counter,
    refusals: Family<Labels, Counter>,
    security_alerts: Family<Labels, Counter>,
    rule_tenants: Gauge,
}

impl AssuranceMetrics {
    /// Registered only for the monitor and the witness; elsewhere they would read as "nothing
    /// verified".
    pub(super) fn for_component(component: &str, registry: &mut Registry) -> Self {
        if component == "monitor" || component == "witness" {
            Self::register(registry)
        } else {
            Self::register(&mut Registry::default())
        }
    }

    fn register(registry: &mut Registry) -> Self {
        let incidents = counters(
            registry,
            "sealtrail_integrity_incidents",
            "Integrity incidents the monitor raised, by kind (chain, checkpoint, entries_root, tenant_heads, accounting, unreadable, row_altered, row_deleted, row_inserted)",
        );
        let checkpoints_verified = Counter::default();
        registry.register(
            "sealtrail_checkpoints_verified",
            "Checkpoints of the sealed topic the monitor verified",
            checkpoints_verified.clone(),
        );
        // The objective is 60 s (docs/slo.md): a bucket ends there.
        let verify_delay = Histogram::new([1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0]);
        registry.register(
            "sealtrail_checkpoint_verify_delay_seconds",
            "From a checkpoint's creation to its verification by the monitor",
            verify_delay.clone(),
        );
        let verified_offset = gauges(
            registry,
            "sealtrail_monitor_verified_offset",
            "Sealed offset of the last checkpoint the monitor read, per partition",
        );
        let checked_offset = gauges(
            registry,
            "sealtrail_projection_checked_offset",
            "Sealed offset up to which the monitor compared the ClickHouse projection, per partition",
        );
        let buckets_compared = Counter::default();
        registry.register(
            "sealtrail_projection_buckets_compared",
            "Stretches of sealed offsets the monitor compared row by row with ClickHouse",
            buckets_compared.clone(),
        );
        let sweep_duration = duration_histogram();
        registry.register(
            "sealtrail_projection_sweep_duration_seconds",
            "Time of one sweep of the ClickHouse projection",
            sweep_duration.clone(),
        );
        let cosignatures = Counter::default();
        registry.register(
            "sealtrail_witness_cosignatures",
            "Checkpoints cosigned (by the witness), or cosignatures received (by the monitor)",
            cosignatures.clone(),
        );
        let refusals = counters(
            registry,
            "sealtrail_witness_refusals",
            "Checkpoints a witness refused, by reason (fork, gap, before, untrusted)",
        );
        let security_alerts = counters(
            registry,
            "sealtrail_security_alerts",
            "Security alerts the monitor raised on the trail, by rule",
        );
        let rule_tenants = Gauge::default();
        registry.register(
            "sealtrail_alert_rule_tenants",
            "Tenants whose administrators set their own security alert rules, as the monitor last read them",
            rule_tenants.clone(),
        );
        Self {
            incidents,
            checkpoints_verified,
            verify_delay,
            verified_offset,
            checked_offset,
            buckets_compared,
            sweep_duration,
            cosignatures,
            refusals,
            security_alerts,
            rule_tenants,
        }
    }

    /// The incident counter of `kind` (created at zero by the first call, so rates start at once).
    pub fn incidents(&self, kind: &str) -> Counter {
        self.incidents.get_or_create(&vec![("kind", kind.to_owned())]).clone()
    }

    pub fn checkpoint_verified(&self, partition: i32, sealed_offset: i64, delay_seconds: f64) {
        self.checkpoints_verified.inc();
        self.verify_delay.observe(delay_seconds.max(0.0));
        self.verified_offset
            .get_or_create(&vec![("partition", partition.to_string())])
            .set(sealed_offset);
    }

    pub fn checked(&self, partition: i32, sealed_offset: i64) {
        self.checked_offset
            .get_or_create(&vec![("partition", partition.to_string())])
            .set(sealed_offset);
    }

    pub fn compared(&self, buckets: u64, sweep_seconds: f64) {
        self.buckets_compared.inc_by(buckets);
        self.sweep_duration.observe(sweep_seconds);
    }

    /// The alert counter of `rule` (created at zero by the first call).
    pub fn security_alert(&self, rule: &str) {
        self.security_alerts
            .get_or_create(&vec![("rule", rule.to_owned())])
            .inc();
    }

    /// Creates the alert counter of `rule` at zero.
    pub fn security_alert_rule(&self, rule: &str) {
        drop(self.security_alerts.get_or_create(&vec![("rule", rule.to_owned())]));
    }

    pub fn rule_tenants(&self, tenants: usize) {
        self.rule_tenants.set(i64::try_from(tenants).unwrap_or(i64::MAX));
    }

    pub fn cosigned(&self) {
        self.cosignatures.inc();
    }

    pub fn refused(&self, reason: &str) {
        self.refusals.get_or_create(&vec![("reason", reason.to_owned())]).inc();
    }

    /// Drops the series of a partition another instance took over.
    pub fn forget_partition(&self, partition: i32) {
        let labels = vec![("partition", partition.to_string())];
        self.verified_offset.remove(&labels);
        self.checked_offset.remove(&labels);
    }
}

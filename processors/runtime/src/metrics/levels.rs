//! Histograms whose buckets are the service level objectives' thresholds (docs/slo.md), so a
//! recording rule reads the share of good events from one bucket exactly.

use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Seconds; 2 is the produce -> queryable objective.
const PRODUCE_TO_QUERYABLE_BUCKETS: [f64; 11] = [0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0];

#[derive(Debug, Clone)]
pub struct ServiceLevels {
    produce_to_queryable: Histogram,
}

impl ServiceLevels {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let produce_to_queryable = Histogram::new(PRODUCE_TO_QUERYABLE_BUCKETS);
        registry.register(
            "sealtrail_produce_to_queryable_seconds",
            "From the raw record's Kafka timestamp to its event's row in ClickHouse (observed by the sink)",
            produce_to_queryable.clone(),
        );
        Self { produce_to_queryable }
    }

    pub(super) fn produce_to_queryable(&self, seconds: f64) {
        self.produce_to_queryable.observe(seconds.max(0.0));
    }
}

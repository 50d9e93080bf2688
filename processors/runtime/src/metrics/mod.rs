//! The Prometheus metrics every component serves on `/metrics`, next to `/healthz` and
//! `/readyz`. Names and labels are one contract for all components (docs/operations.md), so one
//! dashboard reads them all.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

mod assurance;
mod levels;

pub use assurance::AssuranceMetrics;
use levels::ServiceLevels;

type Labels = Vec<(&'static str, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// 0.5 ms to about 16 s: a batch, an insert, a request.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// 10 ms to about 90 min: how long an event takes to be sealed, or queryable, after it happened.
fn audit_lag_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 20))
}

/// `sealtrail_up` and `sealtrail_build_info` of the component.
fn register_identity(registry: &mut Registry, component: &'static str) {
    let up = gauges(registry, "sealtrail_up", "1 while the component runs");
    up.get_or_create(&vec![("component", component.to_owned())]).set(1);
    let build = gauges(registry, "sealtrail_build_info", "The running version");
    build
        .get_or_create(&vec![
            ("component", component.to_owned()),
            ("version", env!("CARGO_PKG_VERSION").to_owned()),
        ])
        .set(1);
}

fn histograms(registry: &mut Registry, name: &str, help: &str, make: fn() -> Histogram) -> Histograms {
    let family: Histograms = Family::new_with_constructor(make);
    registry.register(name, help, family.clone());
    family
}

fn counters(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let family = Family::<Labels, Counter>::default();
    registry.register(name, help, family.clone());
    family
}

fn gauges(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Gauge> {
    let family = Family::<Labels, Gauge>::default();
    registry.register(name, help, family.clone());
    family
}

/// The durable outbox's gauges: records held, bytes on disk, age of the oldest in seconds.
fn outbox_gauges(registry: &mut Registry, component: &'static str) -> [FloatGauge; 3] {
    [
        (
            "sealtrail_outbox_records",
            "Events the durable outbox holds that Kafka has not acknowledged",
        ),
        ("sealtrail_outbox_bytes", "Bytes the durable outbox takes on disk"),
        (
            "sealtrail_outbox_oldest_age_seconds",
            "How long the oldest event not yet acknowledged has been in the outbox (0 when empty)",
        ),
    ]
    .map(|(name, help)| {
        let family = Family::<Labels, FloatGauge>::default();
        registry.register(name, help, family.clone());
        family.get_or_create(&vec![("component", component.to_owned())]).clone()
    })
}

/// Where audit lag is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditStage {
    /// From the event's time to its sealing (seal).
    OccurredToSealed,
    /// From sealing to the row's insertion in ClickHouse (sink).
    SealedToQueryable,
}

impl AuditStage {
    fn label(self) -> &'static str {
        match self {
            Self::OccurredToSealed => "occurred_to_sealed",
            Self::SealedToQueryable => "sealed_to_queryable",
        }
    }
}

struct Inner {
    component: &'static str,
    registry: Registry,
    events_in: Counter,
    events_out: Counter,
    checkpoints: Counter,
    rejected: Family<Labels, Counter>,
    skipped: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    consumer_lag: Family<Labels, Gauge>,
    group_lag: Family<Labels, Gauge>,
    dlq_depth: Family<Labels, Gauge>,
    chain_head_offset: Family<Labels, Gauge>,
    last_checkpoint: Family<Labels, Gauge>,
    batch_duration: Histogram,
    /// One histogram per stage, resolved once: observed for every event.
    audit_lag: [Histogram; 2],
    http_duration: Histograms,
    throttled: Family<Labels, Counter>,
    produce_ack: Histogram,
    outbox: [FloatGauge; 3],
    assurance: AssuranceMetrics,
    levels: ServiceLevels,
    ready: AtomicBool,
    not_ready_because: Mutex<String>,
}

/// One component's metrics; clones share them.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("component", &self.0.component)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// What `prometheus-client` writes: the `OpenMetrics` text format.
    pub const CONTENT_TYPE: &'static str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

    pub fn new(component: &'static str) -> Self {
        let mut registry = Registry::default();
        let of_component = || vec![("component", component.to_owned())];
        let events_in = counters(&mut registry, "sealtrail_events_in", "Records read from the input");
        let events_out = counters(&mut registry, "sealtrail_events_out", "Records written to the output");
        let checkpoints = counters(&mut registry, "sealtrail_checkpoints", "Signed checkpoints written");
        let rejected = counters(
            &mut registry,
            "sealtrail_events_rejected",
            "Records rejected (to the DLQ for seal), by reason",
        );
        let skipped = counters(
            &mut registry,
            "sealtrail_events_skipped",
            "Records read again and recognised as already handled (after a rewind or a restart), by reason",
        );
        let errors = counters(
            &mut registry,
            "sealtrail_errors",
            "Operational errors (not record rejections), by kind",
        );
        let consumer_lag = gauges(
            &mut registry,
            "sealtrail_consumer_lag",
            "Records between the component's position and the end of each input partition",
        );
        // Unlike the consumer lag, it grows when partitions have no live owner.
        let group_lag = gauges(
            &mut registry,
            "sealtrail_group_lag",
            "Input records the group has not committed",
        );
        let dlq_depth = gauges(&mut registry, "sealtrail_dlq_depth", "Records held in the DLQ topic");
        let chain_head_offset = gauges(
            &mut registry,
            "sealtrail_chain_head_offset",
            "The last raw offset sealed or rejected, per partition",
        );
        let last_checkpoint = gauges(
            &mut registry,
            "sealtrail_last_checkpoint",
            "The number of the last checkpoint written, per partition",
        );
        let batch_durations = histograms(
            &mut registry,
            "sealtrail_batch_duration_seconds",
            "Time to handle one batch (a produced batch for seal, an insert for sink, a job step for export)",
            duration_histogram,
        );
        let audit_lag = histograms(
            &mut registry,
            "sealtrail_audit_lag_seconds",
            "occurred_to_sealed: from the event's time to its sealing; sealed_to_queryable: from sealing to insertion in ClickHouse",
            audit_lag_histogram,
        );
        let http_duration = histograms(
            &mut registry,
            "sealtrail_http_request_duration_seconds",
            "API requests by route, method and status",
            duration_histogram,
        );
        let throttled = counters(
            &mut registry,
            "sealtrail_events_throttled",
            "Events refused (429) because their tenant was over its ingest quota, by tenant",
        );
        let produce_acks = histograms(
            &mut registry,
            "sealtrail_produce_ack_seconds",
            "From queueing a record to Kafka's acknowledgement (acks=all), for records a caller waits on",
            duration_histogram,
        );
        register_identity(&mut registry, component);
        Self(Arc::new(Inner {
            assurance: AssuranceMetrics::for_component(component, &mut registry),
            levels: ServiceLevels::register(&mut registry),
            outbox: outbox_gauges(&mut registry, component),
            component,
            events_in: events_in.get_or_create(&of_component()).clone(),
            events_out: events_out.get_or_create(&of_component()).clone(),
            checkpoints: checkpoints.get_or_create(&of_component()).clone(),
            batch_duration: batch_durations.get_or_create(&of_component()).clone(),
            registry,
            rejected,
            skipped,
            errors,
            consumer_lag,
            group_lag,
            dlq_depth,
            chain_head_offset,
            last_checkpoint,
            audit_lag: [AuditStage::OccurredToSealed, AuditStage::SealedToQueryable].map(|stage| {
                audit_lag
                    .get_or_create(&vec![("stage", stage.label().to_owned())])
                    .clone()
            }),
            http_duration,
            throttled,
            produce_ack: produce_acks.get_or_create(&of_component()).clone(),
            ready: AtomicBool::new(false),
            not_ready_because: Mutex::new("starting".to_owned()),
        }))
    }

    pub fn component(&self) -> &'static str {
        self.0.component
    }

    /// The monitor's metrics (served only by the component named `monitor`).
    pub fn assurance(&self) -> &AssuranceMetrics {
        &self.0.assurance
    }

    fn labelled(&self, name: &'static str, value: &str) -> Labels {
        vec![("component", self.0.component.to_owned()), (name, value.to_owned())]
    }

    /// The input counter, for a component to count on without going through `Metrics`.
    pub fn events_in_counter(&self) -> Counter {
        self.0.events_in.clone()
    }

    pub fn events_out_counter(&self) -> Counter {
        self.0.events_out.clone()
    }

    pub fn events_in(&self, n: u64) {
        self.0.events_in.inc_by(n);
    }

    pub fn events_out(&self, n: u64) {
        self.0.events_out.inc_by(n);
    }

    pub fn checkpoint(&self) {
        self.0.checkpoints.inc();
    }

    pub fn rejected(&self, reason: &str) {
        self.rejected_counter(reason).inc();
    }

    pub fn skipped_many(&self, reason: &str, n: u64) {
        if n > 0 {
            self.skipped_counter(reason).inc_by(n);
        }
    }

    /// `n` events of `tenant` refused for its quota.
    pub fn throttled(&self, tenant: &str, n: u64) {
        self.0
            .throttled
            .get_or_create(&self.labelled("tenant", tenant))
            .inc_by(n);
    }

    /// One record's time from being queued to Kafka's acknowledgement.
    pub fn produce_ack(&self, seconds: f64) {
        self.0.produce_ack.observe(seconds);
    }

    /// What the durable outbox holds: records, bytes on disk, age of the oldest in seconds.
    pub fn outbox(&self, records: u64, bytes: u64, oldest_age_seconds: f64) {
        let [held, size, age] = &self.0.outbox;
        held.set(records as f64);
        size.set(bytes as f64);
        age.set(oldest_age_seconds);
    }

    pub fn error(&self, kind: &str) {
        self.error_counter(kind).inc();
    }

    /// The counter of records rejected for `reason`: resolve it once, count on it as often as
    /// needed (clones share the count).
    pub fn rejected_counter(&self, reason: &str) -> Counter {
        self.0.rejected.get_or_create(&self.labelled("reason", reason)).clone()
    }

    pub fn skipped_counter(&self, reason: &str) -> Counter {
        self.0.skipped.get_or_create(&self.labelled("reason", reason)).clone()
    }

    pub fn error_counter(&self, kind: &str) -> Counter {
        self.0.errors.get_or_create(&self.labelled("kind", kind)).clone()
    }

    /// Records read from the input so far.
    pub fn events_in_total(&self) -> u64 {
        self.0.events_in.get()
    }

    /// Records written to the output so far.
    pub fn events_out_total(&self) -> u64 {
        self.0.events_out.get()
    }

    /// Sets the lag gauge of each `(partition, lag)` of `topic`; returns the total.
    pub fn consumer_lags(&self, topic: &str, lags: &[(i32, i64)]) -> i64 {
        for (partition, lag) in lags {
            let labels = vec![
                ("component", self.0.component.to_owned()),
                ("topic", topic.to_owned()),
                ("partition", partition.to_string()),
            ];
            self.0.consumer_lag.get_or_create(&labels).set(*lag);
        }
        lags.iter().map(|(_, lag)| lag).sum()
    }

    pub fn group_lag(&self, topic: &str, lag: i64) {
        let labels = vec![("component", self.0.component.to_owned()), ("topic", topic.to_owned())];
        self.0.group_lag.get_or_create(&labels).set(lag);
    }

    pub fn dlq_depth(&self, topic: &str, depth: i64) {
        self.0
            .dlq_depth
            .get_or_create(&vec![("topic", topic.to_owned())])
            .set(depth);
    }

    pub fn chain_head(&self, partition: i32, offset: i64) {
        let labels = vec![("partition", partition.to_string())];
        self.0.chain_head_offset.get_or_create(&labels).set(offset);
    }

    pub fn last_checkpoint(&self, partition: i32, number: u64) {
        let labels = vec![("partition", partition.to_string())];
        self.0
            .last_checkpoint
            .get_or_create(&labels)
            .set(i64::try_from(number).unwrap_or(i64::MAX));
    }

    /// Drops the per-partition series of a partition this instance no longer owns, so sums over
    /// instances do not count it twice after a rebalance.
    pub fn forget_partition(&self, topic: &str, partition: i32) {
        self.0.consumer_lag.remove(&vec![
            ("component", self.0.component.to_owned()),
            ("topic", topic.to_owned()),
            ("partition", partition.to_string()),
        ]);
        let labels = vec![("partition", partition.to_string())];
        self.0.chain_head_offset.remove(&labels);
        self.0.last_checkpoint.remove(&labels);
    }

    pub fn batch_duration(&self, seconds: f64) {
        self.0.batch_duration.observe(seconds);
    }

    /// One event's time from its raw record's production to its row in ClickHouse.
    pub fn produce_to_queryable(&self, seconds: f64) {
        self.0.levels.produce_to_queryable(seconds);
    }

    /// A negative lag (a producer clock ahead of ours) counts as zero.
    pub fn audit_lag(&self, stage: AuditStage, seconds: f64) {
        self.0.audit_lag[stage as usize].observe(seconds.max(0.0));
    }

    pub fn http_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let labels = vec![
            ("component", self.0.component.to_owned()),
            ("route", route.to_owned()),
            ("method", method.to_owned()),
            ("status", status.to_string()),
        ];
        self.0.http_duration.get_or_create(&labels).observe(seconds);
    }

    /// `/readyz` answers 200 from now on.
    pub fn set_ready(&self) {
        self.0.ready.store(true, Ordering::SeqCst);
    }

    /// `/readyz` answers 503 with `reason` until [`Self::set_ready`].
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        *self.0.not_ready_because.lock().unwrap_or_else(PoisonError::into_inner) = reason.into();
        self.0.ready.store(false, Ordering::SeqCst);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        encode(&mut text, &self.0.registry).ok();
        text
    }

    fn readiness(&self) -> (StatusCode, String) {
        if self.0.ready.load(Ordering::SeqCst) {
            (StatusCode::OK, "ready\n".to_owned())
        } else {
            let reason = self
                .0
                .not_ready_because
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n"))
        }
    }

    /// `/metrics` alone, for a service with health routes of its own (the API).
    pub fn exposition_router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let metrics = self.clone();
        Router::new().route(
            "/metrics",
            get(move || {
                let text = metrics.render();
                async move { ([(CONTENT_TYPE, Self::CONTENT_TYPE)], text) }
            }),
        )
    }

    /// `/metrics`, `/healthz` and `/readyz`, to serve alone or merge into a service's router.
    pub fn router(&self) -> Router {
        let ready = self.clone();
        self.exposition_router()
            .route("/healthz", get(|| async { "ok\n" }))
            .route(
                "/readyz",
                get(move || {
                    let answer = ready.readiness();
                    async move { answer }
                }),
            )
    }

    /// Serves [`Self::router`] on `address` in the background (port 0 picks a free port); returns
    /// the address bound. Call within a Tokio runtime.
    pub async fn serve(&self, address: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(address).await?;
        let bound = listener.local_addr()?;
        let router = self.router();
        let component = self.0.component;
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(component, %error, "the metrics endpoint stopped");
            }
        });
        tracing::info!(component, url = %format!("http://{bound}/metrics"), "serving metrics");
        Ok(bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_carries_the_contract_names_with_their_labels() {
        let metrics = Metrics::new("seal");
        metrics.events_in(3);
        metrics.rejected("not_avro");
        metrics.consumer_lags("audit-events", &[(2, 17)]);
        metrics.audit_lag(AuditStage::OccurredToSealed, 0.2);
        let text = metrics.render();
        for line in [
            "sealtrail_events_in_total{component=\"seal\"} 3",
            "sealtrail_events_rejected_total{component=\"seal\",reason=\"not_avro\"} 1",
            "sealtrail_consumer_lag{component=\"seal\",topic=\"audit-events\",partition=\"2\"} 17",
            "sealtrail_audit_lag_seconds_count{stage=\"occurred_to_sealed\"} 1",
            "sealtrail_up{component=\"seal\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in:\n{text}");
        }
    }

    #[test]
    fn readiness_follows_what_the_component_says() {
        let metrics = Metrics::new("sink");
        assert_eq!(metrics.readiness().0, StatusCode::SERVICE_UNAVAILABLE);
        metrics.set_ready();
        assert_eq!(metrics.readiness().0, StatusCode::OK);
        metrics.set_not_ready("ClickHouse does not answer");
        assert!(metrics.readiness().1.contains("ClickHouse"));
    }
}

//! The telemetry every component reports, the same way: events in and out, rejections and errors
//! by reason, and lag, as Prometheus metrics and as one structured log line at a fixed interval
//! and a summary at the end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::Metrics;

const REPORT_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct ComponentStats {
    component: &'static str,
    metrics: Metrics,
    events_in: u64,
    events_out: u64,
    skipped: u64,
    /// Rejections and errors together, by reason.
    errors: BTreeMap<String, u64>,
    /// Records behind the end of the input, as last measured.
    lag: i64,
    started: Instant,
    last_report: Instant,
}

impl ComponentStats {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            component: metrics.component(),
            metrics,
            events_in: 0,
            events_out: 0,
            skipped: 0,
            errors: BTreeMap::new(),
            lag: 0,
            started: Instant::now(),
            last_report: Instant::now(),
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn received(&mut self, n: u64) {
        self.events_in += n;
        self.metrics.events_in(n);
    }

    pub fn emitted(&mut self, n: u64) {
        self.events_out += n;
        self.metrics.events_out(n);
    }

    /// A record recognised as handled before (a rewind, a restart) and passed over.
    pub fn skipped(&mut self, reason: &str) {
        self.skipped_many(reason, 1);
    }

    /// `n` records recognised as handled before.
    pub fn skipped_many(&mut self, reason: &str, n: u64) {
        self.skipped += n;
        self.metrics.skipped_many(reason, n);
    }

    /// A record that is refused (for seal: sent to the DLQ).
    pub fn rejected(&mut self, reason: &str) {
        *self.errors.entry(reason.to_owned()).or_default() += 1;
        self.metrics.rejected(reason);
    }

    /// Something that went wrong around the records (a consume error, an insert to retry).
    pub fn error(&mut self, kind: &str) {
        *self.errors.entry(kind.to_owned()).or_default() += 1;
        self.metrics.error(kind);
    }

    /// The total lag over the input partitions (the per-partition gauges are set by the caller).
    pub fn set_lag(&mut self, lag: i64) {
        self.lag = lag;
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Logs the counters if the interval has passed.
    pub fn report_if_due(&mut self) {
        if self.last_report.elapsed() >= REPORT_EVERY {
            self.last_report = Instant::now();
            self.log("progress");
        }
    }

    /// Logs the counters once more, for the end of a run.
    pub fn summary(&self) {
        self.log("summary");
    }

    fn log(&self, kind: &str) {
        let errors: Vec<String> = self.errors.iter().map(|(reason, n)| format!("{reason}={n}")).collect();
        tracing::info!(
            component = self.component,
            events_in = self.events_in,
            events_out = self.events_out,
            skipped = self.skipped,
            errors = self.error_count(),
            errors_by_reason = %errors.join(","),
            lag = self.lag,
            uptime_s = self.started.elapsed().as_secs(),
            "{} {kind}",
            self.component
        );
    }
}

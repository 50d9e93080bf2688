//! The telemetry every component reports, the same way: events in and out, rejections and errors
//! by reason, and lag, as Prometheus metrics and as one structured log line at a fixed interval
//! and a summary at the end.
//!
//! The Prometheus counters are the only counts: the log line reads them. A reason's counter is
//! resolved in the registry the first time it occurs and kept, so counting is one atomic add.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;

use crate::Metrics;

const REPORT_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct ComponentStats {
    component: &'static str,
    metrics: Metrics,
    /// Rejections by reason and errors by kind, resolved once each.
    rejected: BTreeMap<String, Counter>,
    errors: BTreeMap<String, Counter>,
    skipped: BTreeMap<String, Counter>,
    /// Records behind the end of the input, as last measured.
    lag: i64,
    started: Instant,
    last_report: Instant,
}

/// The counter of `key` in `resolved`, resolved with `resolve` the first time.
fn counter<'m>(
    resolved: &'m mut BTreeMap<String, Counter>,
    key: &str,
    resolve: impl FnOnce(&str) -> Counter,
) -> &'m Counter {
    if !resolved.contains_key(key) {
        resolved.insert(key.to_owned(), resolve(key));
    }
    &resolved[key]
}

fn total(counters: &BTreeMap<String, Counter>) -> u64 {
    counters.values().map(Counter::get).sum()
}

impl ComponentStats {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            component: metrics.component(),
            metrics,
            rejected: BTreeMap::new(),
            errors: BTreeMap::new(),
            skipped: BTreeMap::new(),
            lag: 0,
            started: Instant::now(),
            last_report: Instant::now(),
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn received(&mut self, n: u64) {
        self.metrics.events_in(n);
    }

    pub fn emitted(&mut self, n: u64) {
        self.metrics.events_out(n);
    }

    /// A record recognised as handled before (a rewind, a restart) and passed over.
    pub fn skipped(&mut self, reason: &str) {
        self.skipped_many(reason, 1);
    }

    /// `n` records recognised as handled before.
    pub fn skipped_many(&mut self, reason: &str, n: u64) {
        if n > 0 {
            let metrics = &self.metrics;
            counter(&mut self.skipped, reason, |r| metrics.skipped_counter(r)).inc_by(n);
        }
    }

    /// A record that is refused (for seal: sent to the DLQ).
    pub fn rejected(&mut self, reason: &str) {
        let metrics = &self.metrics;
        counter(&mut self.rejected, reason, |r| metrics.rejected_counter(r)).inc();
    }

    /// Something that went wrong around the records (a consume error, an insert to retry).
    pub fn error(&mut self, kind: &str) {
        let metrics = &self.metrics;
        counter(&mut self.errors, kind, |k| metrics.error_counter(k)).inc();
    }

    /// The total lag over the input partitions (the per-partition gauges are set by the caller).
    pub fn set_lag(&mut self, lag: i64) {
        self.lag = lag;
    }

    /// Rejections and errors so far.
    pub fn error_count(&self) -> u64 {
        total(&self.rejected) + total(&self.errors)
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
        let mut by_reason: BTreeMap<&str, u64> = BTreeMap::new();
        for (reason, counter) in self.rejected.iter().chain(&self.errors) {
            *by_reason.entry(reason).or_default() += counter.get();
        }
        let errors: Vec<String> = by_reason.iter().map(|(reason, n)| format!("{reason}={n}")).collect();
        tracing::info!(
            component = self.component,
            events_in = self.metrics.events_in_total(),
            events_out = self.metrics.events_out_total(),
            skipped = total(&self.skipped),
            errors = self.error_count(),
            errors_by_reason = %errors.join(","),
            lag = self.lag,
            uptime_s = self.started.elapsed().as_secs(),
            "{} {kind}",
            self.component
        );
    }
}

//! The telemetry every component reports, the same way: events in and out, errors by reason, and
//! lag, as one structured log line at a fixed interval and a summary at the end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const REPORT_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct ComponentStats {
    component: &'static str,
    pub events_in: u64,
    pub events_out: u64,
    pub errors: BTreeMap<String, u64>,
    /// Records behind the end of the input, as last measured.
    pub lag: i64,
    started: Instant,
    last_report: Instant,
}

impl ComponentStats {
    pub fn new(component: &'static str) -> Self {
        Self {
            component,
            events_in: 0,
            events_out: 0,
            errors: BTreeMap::new(),
            lag: 0,
            started: Instant::now(),
            last_report: Instant::now(),
        }
    }

    pub fn error(&mut self, reason: &str) {
        *self.errors.entry(reason.to_owned()).or_default() += 1;
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
            errors = self.error_count(),
            errors_by_reason = %errors.join(","),
            lag = self.lag,
            uptime_s = self.started.elapsed().as_secs(),
            "{} {kind}",
            self.component
        );
    }
}

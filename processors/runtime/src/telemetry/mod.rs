//! The telemetry every component reports, the same way: typed events ([`events`]) whose emit
//! writes the Prometheus metric and the log line, one structured progress line at a fixed
//! interval, and a summary at the end.
//!
//! The Prometheus counters are the only counts: the progress line reads them. A reason's counter
//! is resolved in the registry the first time it occurs and kept in an array indexed by the
//! reason, so counting is one atomic add, with no lookup by name.

pub mod events;

use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;

use crate::Metrics;
use events::{ERROR_KINDS, InternalEvent, REJECT_CODES, SKIP_REASONS};

const REPORT_EVERY: Duration = Duration::from_secs(10);

/// One component's telemetry: emit events into it.
#[derive(Debug)]
pub struct Telemetry {
    component: &'static str,
    metrics: Metrics,
    events_in: Counter,
    events_out: Counter,
    rejected: [Resolved; REJECT_CODES],
    errors: [Resolved; ERROR_KINDS],
    skipped: [Resolved; SKIP_REASONS],
    /// Records behind the end of the input, as last measured.
    lag: i64,
    started: Instant,
    last_report: Instant,
}

/// A reason's name and counter, once it has occurred.
type Resolved = Option<(&'static str, Counter)>;

/// The counter in `slot`, resolved with `resolve` the first time.
fn resolved<'s>(slot: &'s mut Resolved, name: &'static str, resolve: impl FnOnce(&str) -> Counter) -> &'s Counter {
    &slot.get_or_insert_with(|| (name, resolve(name))).1
}

fn total(counters: &[Resolved]) -> u64 {
    counters.iter().flatten().map(|(_, counter)| counter.get()).sum()
}

impl Telemetry {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            component: metrics.component(),
            events_in: metrics.events_in_counter(),
            events_out: metrics.events_out_counter(),
            metrics,
            rejected: std::array::from_fn(|_| None),
            errors: std::array::from_fn(|_| None),
            skipped: std::array::from_fn(|_| None),
            lag: 0,
            started: Instant::now(),
            last_report: Instant::now(),
        }
    }

    pub fn emit(&mut self, event: impl InternalEvent) {
        event.emit(self);
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The total lag over the input partitions, as last measured.
    pub fn lag(&self) -> i64 {
        self.lag
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
        let by_reason: Vec<String> = self
            .rejected
            .iter()
            .chain(&self.errors)
            .flatten()
            .filter(|(_, counter)| counter.get() > 0)
            .map(|(name, counter)| format!("{name}={}", counter.get()))
            .collect();
        tracing::info!(
            component = self.component,
            events_in = self.events_in.get(),
            events_out = self.events_out.get(),
            skipped = total(&self.skipped),
            errors = self.error_count(),
            errors_by_reason = %by_reason.join(","),
            lag = self.lag,
            uptime_s = self.started.elapsed().as_secs(),
            "{} {kind}",
            self.component
        );
    }
}

#[cfg(test)]
mod tests {
    use sealtrail_core::validate::RejectCode;

    use super::events::{ComponentError, ErrorKind, RecordRejected, RecordsReceived, RecordsSkipped, SkipReason};
    use super::*;

    #[test]
    fn each_event_counts_on_the_shared_registry_under_its_reason() {
        let metrics = Metrics::new("seal");
        let mut telemetry = Telemetry::new(metrics.clone());
        telemetry.emit(RecordsReceived { count: 3 });
        for _ in 0..2 {
            telemetry.emit(RecordRejected {
                partition: 0,
                offset: 7,
                code: RejectCode::NotAvro,
                detail: "not Avro",
            });
        }
        telemetry.emit(ComponentError {
            kind: ErrorKind::ClickHouse,
            partition: Some(1),
            detail: "refused",
        });
        telemetry.emit(RecordsSkipped {
            reason: SkipReason::AlreadySealed,
            count: 0,
        });
        let text = metrics.render();
        assert!(
            text.contains(r#"sealtrail_events_in_total{component="seal"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"sealtrail_events_rejected_total{component="seal",reason="not_avro"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"sealtrail_errors_total{component="seal",kind="clickhouse"} 1"#),
            "{text}"
        );
        assert!(!text.contains("already_sealed"), "nothing skipped, no series: {text}");
        assert_eq!(telemetry.error_count(), 3);
    }

    #[test]
    fn every_reason_has_its_own_slot() {
        let kinds = [
            ErrorKind::Consume,
            ErrorKind::Rebalance,
            ErrorKind::Commit,
            ErrorKind::StaleAssignment,
            ErrorKind::FetchedWhilePaused,
            ErrorKind::WatermarksUnavailable,
            ErrorKind::FetchStalled,
            ErrorKind::GroupStalled,
            ErrorKind::RegistryUnavailable,
            ErrorKind::BadLayoutChange,
            ErrorKind::ClickHouse,
            ErrorKind::ExportFailed,
            ErrorKind::PolicyNotApplied,
            ErrorKind::RetentionRunFailed,
        ];
        let mut telemetry = Telemetry::new(Metrics::new("test"));
        for kind in kinds {
            telemetry.emit(ComponentError {
                kind,
                partition: None,
                detail: "",
            });
        }
        assert_eq!(telemetry.errors.iter().flatten().count(), kinds.len());
        assert_eq!(telemetry.error_count(), kinds.len() as u64);
    }
}

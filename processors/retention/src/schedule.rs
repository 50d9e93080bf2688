//! The retention processor over time: a pass every interval until stopped, each one reported
//! through the component's telemetry.

use std::time::{Duration, Instant};

use clickhouse::Client;
use sealtrail_core::retention::RetentionPolicy;
use sealtrail_emit::AuditEmitter;
use sealtrail_runtime::Telemetry;
use sealtrail_runtime::telemetry::events::{ComponentError, ErrorKind, InternalEvent, RecordsSent};
use time::OffsetDateTime;

use crate::{RunReport, run_once};

impl RunReport {
    /// Events deleted (tombstoned) in the pass.
    pub fn deleted(&self) -> u64 {
        self.outcomes.iter().map(|outcome| outcome.deleted).sum()
    }

    /// Expired events kept by legal holds.
    pub fn held(&self) -> u64 {
        self.outcomes.iter().map(|outcome| outcome.held).sum()
    }

    /// One line for people, ending a pass that took `took`.
    pub fn summary(&self, took: Duration) -> String {
        format!(
            "retention pass: {} tenant policies applied, {} events deleted (tombstoned), {} expired events kept by legal holds, {} tenant policies failed, in {:.1} s",
            self.outcomes.len(),
            self.deleted(),
            self.held(),
            self.failures.len(),
            took.as_secs_f64()
        )
    }
}

/// A pass ended: the events it deleted, each policy it could not apply, how long it took.
#[derive(Debug, Clone, Copy)]
pub struct PassReported<'a> {
    pub report: &'a RunReport,
    pub took: Duration,
}

impl InternalEvent for PassReported<'_> {
    fn emit(self, telemetry: &mut Telemetry) {
        telemetry.emit(RecordsSent {
            count: self.report.deleted(),
        });
        for failure in &self.report.failures {
            telemetry.emit(ComponentError {
                kind: ErrorKind::PolicyNotApplied,
                partition: None,
                detail: &failure.to_string(),
            });
        }
        telemetry.metrics().batch_duration(self.took.as_secs_f64());
    }
}

/// Runs a pass every `every` until `stop` resolves (a pass under way when it does is finished
/// first). A failed pass is reported and retried at the next interval; a failed tenant too.
pub async fn run_every(
    client: &Client,
    configured: &[RetentionPolicy],
    recorder: &AuditEmitter,
    every: Duration,
    stop: impl Future<Output = ()>,
    telemetry: &mut Telemetry,
) {
    tokio::pin!(stop);
    loop {
        let started = Instant::now();
        match run_once(client, configured, recorder, OffsetDateTime::now_utc()).await {
            Ok(report) => {
                let took = started.elapsed();
                telemetry.emit(PassReported { report: &report, took });
                tracing::info!("{}", report.summary(took));
            }
            Err(error) => telemetry.emit(ComponentError {
                kind: ErrorKind::RetentionRunFailed,
                partition: None,
                detail: &error.to_string(),
            }),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = &mut stop => return,
        }
    }
}

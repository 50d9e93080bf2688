//! What the export processor reports about each job: a job in, its lines out, a failure, its
//! duration, and a log line for every state.

use sealtrail_runtime::Telemetry;
use sealtrail_runtime::telemetry::events::{ComponentError, ErrorKind, InternalEvent, RecordsReceived, RecordsSent};

use crate::{ExportStatus, JobState};

/// A job's state, as published.
#[derive(Debug, Clone, Copy)]
pub struct JobReported<'a>(pub &'a ExportStatus);

impl InternalEvent for JobReported<'_> {
    fn emit(self, telemetry: &mut Telemetry) {
        let status = self.0;
        let export = &status.export_id;
        let tenant = &status.tenant_id;
        match (status.state, &status.progress, &status.result) {
            (JobState::Queued, _, _) => telemetry.emit(RecordsReceived { count: 1 }),
            (JobState::Running, Some(progress), _) => {
                tracing::info!(%export, %tenant, done = progress.done, total = progress.total, "exporting");
            }
            (JobState::Done, _, Some(result)) => {
                telemetry.emit(RecordsSent {
                    count: result.event_count + result.omitted_count,
                });
                let took_ms = status.updated_at.saturating_sub(status.requested_at).max(0);
                telemetry.metrics().batch_duration(took_ms as f64 / 1000.0);
                tracing::info!(
                    %export,
                    %tenant,
                    events = result.event_count,
                    witness_lines = result.omitted_count,
                    files = result.files,
                    bytes = result.bytes,
                    took_ms,
                    "export done"
                );
            }
            (JobState::Failed, _, _) => telemetry.emit(ComponentError {
                kind: ErrorKind::ExportFailed,
                partition: None,
                detail: &format!(
                    "export {export} of tenant {tenant}: {}",
                    status.error.as_deref().unwrap_or_default()
                ),
            }),
            _ => {}
        }
    }
}

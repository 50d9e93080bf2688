//! Export jobs, with Kafka as the queue: `POST /v1/exports` appends a job to the jobs topic, the
//! export processor (`sealtrail export`) consumes it and writes the artifact, and every state of
//! the job (queued, running with progress, done, failed) is a record on the status topic, from
//! which the API's [`ExportBoard`] is rebuilt at start and kept current.

mod artifact;
mod board;
pub mod exporter;
mod job;
mod processor;
mod telemetry;

pub use artifact::tar_stream;
pub use board::{ExportBoard, ExportQuota, QuotaExceeded, SubmitError};
pub use job::{ExportJob, ExportStatus, ExportSummary, JobState, Progress, is_export_id, new_export_id};
pub use processor::{ExportProcessorError, ProcessorConfig, run_processor};
pub use telemetry::JobReported;

use std::path::PathBuf;

use sealtrail_kafka::{KafkaSettings, TopicSpec};

/// Where export jobs and their states travel, and where artifacts are kept.
#[derive(Debug, Clone)]
pub struct ExportTopics {
    pub jobs: String,
    pub status: String,
}

impl ExportTopics {
    pub const DEFAULT_JOBS: &str = "sealtrail-export-jobs";
    pub const DEFAULT_STATUS: &str = "sealtrail-export-status";

    /// Jobs are kept a week (a job older than that is stale); states forever, compacted to the
    /// last state of each export.
    pub fn specs(&self) -> Vec<TopicSpec> {
        vec![
            TopicSpec::new(&self.jobs, 1).with_config("retention.ms", &board::JOBS_KEPT_MS.to_string()),
            TopicSpec::new(&self.status, 1).with_config("retention.ms", "-1"),
        ]
    }
}

/// What the API needs to queue exports and serve their states and artifacts.
#[derive(Debug, Clone)]
pub struct ExportsConfig {
    pub kafka: KafkaSettings,
    pub topics: ExportTopics,
    /// Where the processor writes artifacts (`<dir>/<export id>/`); shared with the API.
    pub artifacts_dir: PathBuf,
    pub quota: ExportQuota,
}

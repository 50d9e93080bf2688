//! The records on the export topics: a job, and the states it goes through.

use serde::{Deserialize, Serialize};

use sealtrail_query::scope::EventScope;

/// A queued export, as appended to the jobs topic (key: the tenant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportJob {
    pub export_id: String,
    pub tenant_id: String,
    pub scope: EventScope,
    /// Who asked: `key:<id>` or `jwt:<subject>`.
    pub requested_by: String,
    pub request_id: String,
    /// Unix milliseconds.
    pub requested_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
}

impl JobState {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Progress {
    /// Lines written so far (events and witness lines).
    pub done: u64,
    pub total: u64,
}

/// What a finished export holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExportSummary {
    pub event_count: u64,
    pub omitted_count: u64,
    pub unsigned_tail: u64,
    pub files: u64,
    pub bytes: u64,
    pub checkpoints: u64,
    /// The key that signed the manifest.
    pub key_id: String,
    /// SHA-256 of `manifest.json`, hex.
    pub manifest_sha256: String,
}

/// One state of a job, as appended to the status topic (key: the export id); the newest is
/// current.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExportStatus {
    pub export_id: String,
    pub tenant_id: String,
    pub state: JobState,
    #[schema(value_type = Object)]
    pub scope: EventScope,
    pub requested_by: String,
    pub requested_at: i64,
    /// Unix milliseconds of this state.
    pub updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ExportSummary>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ExportStatus {
    pub fn queued(job: &ExportJob) -> Self {
        Self {
            export_id: job.export_id.clone(),
            tenant_id: job.tenant_id.clone(),
            state: JobState::Queued,
            scope: job.scope.clone(),
            requested_by: job.requested_by.clone(),
            requested_at: job.requested_at,
            updated_at: job.requested_at,
            progress: None,
            result: None,
            error: None,
        }
    }

    /// The next state of the same job.
    #[must_use]
    pub fn next(&self, state: JobState, now_ms: i64) -> Self {
        Self {
            state,
            updated_at: now_ms,
            ..self.clone()
        }
    }
}

/// `exp_` and a lower-case ULID: safe as a file name.
pub fn new_export_id() -> String {
    format!("exp_{}", ulid::Ulid::new().to_string().to_lowercase())
}

pub fn is_export_id(id: &str) -> bool {
    id.strip_prefix("exp_")
        .is_some_and(|ulid| ulid.len() == 26 && ulid.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_ids_are_safe_file_names() {
        assert!(is_export_id(&new_export_id()));
        assert!(!is_export_id("exp_../../etc/passwd"));
        assert!(!is_export_id("exp_01ARZ3NDEKTSV4RRFFQ69G5FAV"));
    }
}

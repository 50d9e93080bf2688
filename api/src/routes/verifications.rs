//! `POST /v1/integrity/verifications` and `GET /v1/integrity/verifications/{id}`: re-verify a
//! tenant's chain and checkpoint signatures from ClickHouse, as a job.
//!
//! A failure is an integrity incident: it is sealed in the tenant's trail
//! (`integrity.incident`) and delivered to the tenant's `integrity.incident` webhooks.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use clickhouse::Row;
use sealtrail_clickhouse::{VerifyRequest, verify_tenant};
use sealtrail_core::event::{Actor, ActorType, AuditEvent, Outcome, OutcomeStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::audit::platform_event;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, parse_time};
use crate::server::SharedState;

pub(crate) const REQUESTERS: &[Role] = &[Role::Auditor, Role::TenantAdmin, Role::Compliance, Role::PlatformAdmin];

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerificationRequest {
    /// Start of the window (RFC 3339); the chain is still anchored in the last signed head before it.
    pub from: Option<String>,
    pub to: Option<String>,
    pub tenant: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobScope {
    pub tenant: Option<String>,
}

/// One state of a job, as stored.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct JobState {
    tenant_id: String,
    job_id: String,
    state: String,
    requested_by: String,
    scope: String,
    report: String,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    changed_at: OffsetDateTime,
}

#[utoipa::path(
    post,
    path = "/v1/integrity/verifications",
    operation_id = "start_verification",
    tag = "integrity",
    request_body = VerificationRequest,
    responses(
        (status = 202, description = "The job is running; poll GET /v1/integrity/verifications/{id}"),
        (status = 400, description = "A malformed window", body = ErrorBody),
    )
)]
/// Starts a verification of the tenant's trail.
pub async fn start(
    State(state): State<SharedState>,
    caller: Caller,
    ApiJson(request): ApiJson<VerificationRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(REQUESTERS)?;
    let tenant = caller.tenant_for(request.tenant.as_deref())?;
    let from = parse_time("from", request.from.as_deref())?;
    let to = parse_time("to", request.to.as_deref())?;
    let job = JobState {
        tenant_id: tenant.clone(),
        job_id: format!("ver_{}", ulid::Ulid::new().to_string().to_lowercase()),
        state: "running".to_owned(),
        requested_by: caller.subject.clone(),
        scope: json!({"from": request.from, "to": request.to}).to_string(),
        report: String::new(),
        changed_at: OffsetDateTime::now_utc(),
    };
    append(&state, &job).await?;
    let answer = job_json(&job);
    let verify = VerifyRequest { tenant, from, to };
    tokio::spawn(run(state, caller, job, verify));
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

#[utoipa::path(
    get,
    path = "/v1/integrity/verifications/{job_id}",
    operation_id = "get_verification",
    tag = "integrity",
    params(("job_id" = String, Path), JobScope),
    responses(
        (status = 200, description = "The job's state: running, passed (with what was checked), failed (with the first break) or error"),
        (status = 404, description = "No such job in the tenant", body = ErrorBody),
    )
)]
/// A verification job's state.
pub async fn get(
    State(state): State<SharedState>,
    caller: Caller,
    Path(job_id): Path<String>,
    ApiQuery(scope): ApiQuery<JobScope>,
) -> Result<Json<Value>, ApiError> {
    caller.require(REQUESTERS)?;
    let tenant = caller.tenant_for(scope.tenant.as_deref())?;
    let newest = state
        .client
        .query(
            "SELECT ?fields FROM verification_jobs WHERE tenant_id = {tenant:String} AND job_id = {job:String} \
             ORDER BY changed_at DESC LIMIT 1",
        )
        .param("tenant", &tenant)
        .param("job", &job_id)
        .fetch_optional::<JobState>()
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no verification job {job_id} in this tenant")))?;
    Ok(Json(job_json(&newest)))
}

#[utoipa::path(
    get,
    path = "/v1/integrity/verifications",
    operation_id = "list_verifications",
    tag = "integrity",
    params(JobScope),
    responses(
        (status = 200, description = "`{jobs: [...]}`: the tenant's 100 newest jobs, newest first, each in its latest state"),
        (status = 403, description = "The role or tenant is not allowed", body = ErrorBody),
    )
)]
/// The tenant's verification jobs.
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    ApiQuery(scope): ApiQuery<JobScope>,
) -> Result<Json<Value>, ApiError> {
    caller.require(REQUESTERS)?;
    let tenant = caller.tenant_for(scope.tenant.as_deref())?;
    // Each job's newest state: its states are appended, never updated.
    let jobs = state
        .client
        .query(
            "SELECT ?fields FROM verification_jobs WHERE tenant_id = {tenant:String} \
             ORDER BY changed_at DESC LIMIT 1 BY job_id LIMIT 100",
        )
        .param("tenant", &tenant)
        .fetch_all::<JobState>()
        .await?;
    Ok(Json(json!({"jobs": jobs.iter().map(job_json).collect::<Vec<_>>()})))
}

async fn append(state: &SharedState, job: &JobState) -> Result<(), ApiError> {
    let mut insert = state.client.insert::<JobState>("verification_jobs").await?;
    insert.write(job).await?;
    insert.end().await?;
    Ok(())
}

/// Runs the verification and records its outcome; a failure raises an incident.
async fn run(state: SharedState, caller: Caller, job: JobState, request: VerifyRequest) {
    let outcome = verify_tenant(&state.clickhouse, &request, &state.trusted_keys).await;
    let (verdict, report) = match &outcome {
        Ok(report) => (
            "passed",
            json!({
                "events": report.events,
                "first_seq": report.first_seq,
                "last_seq": report.last_seq,
                "anchored_after": report.anchored_after,
                "checkpoints_verified": report.checkpoints,
                "signed_through": report.signed_through,
                "entries_roots_checked": report.entries_roots_checked,
                "unsigned_tail": report.unsigned_tail(),
            }),
        ),
        Err(sealtrail_clickhouse::VerifyFailure::Query(error)) => ("error", json!({"error": error.to_string()})),
        Err(failure) => ("failed", json!({"first_break": failure.to_string()})),
    };
    let finished = JobState {
        state: verdict.to_owned(),
        report: report.to_string(),
        changed_at: OffsetDateTime::now_utc(),
        ..job
    };
    if let Err(error) = append(&state, &finished).await {
        tracing::error!(job = %finished.job_id, %error, "a verification result could not be stored");
    }
    if verdict == "failed" {
        incident(&state, &caller, &finished, &report).await;
    }
}

/// Seals the incident in the tenant's trail and tells the tenant's webhooks.
async fn incident(state: &SharedState, caller: &Caller, job: &JobState, report: &Value) {
    let first_break = report["first_break"].as_str().unwrap_or_default().to_owned();
    tracing::error!(tenant = %job.tenant_id, job = %job.job_id, %first_break, "integrity incident");
    let actor = Actor {
        id: caller.subject.clone(),
        kind: ActorType::System,
        display_name: None,
        authority: None,
        on_behalf_of: None,
    };
    let event = AuditEvent {
        outcome: Outcome {
            status: OutcomeStatus::Failure,
            reason_code: Some("chain_or_checkpoint_break".to_owned()),
            reason_text: Some(first_break.clone()),
        },
        ..platform_event(
            &job.tenant_id,
            job.changed_at,
            "integrity.incident",
            actor,
            ("verification_job", &job.job_id),
            &job.job_id,
            vec![("scope".to_owned(), job.scope.clone())],
        )
    };
    if let Err(error) = state.recorder.publish(&event).await {
        tracing::error!(%error, job = %job.job_id, "the integrity incident could not be sealed");
    }
    let data = json!({"job_id": job.job_id, "first_break": first_break, "scope": job.scope});
    state.webhooks.notify(&job.tenant_id, "integrity.incident", data).await;
}

fn job_json(job: &JobState) -> Value {
    json!({
        "job_id": job.job_id,
        "tenant_id": job.tenant_id,
        "state": job.state,
        "requested_by": job.requested_by,
        "scope": serde_json::from_str::<Value>(&job.scope).unwrap_or(Value::Null),
        "report": serde_json::from_str::<Value>(&job.report).unwrap_or(Value::Null),
        "at": job.changed_at.format(&Rfc3339).unwrap_or_default(),
    })
}

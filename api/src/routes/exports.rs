//! `POST /v1/exports`, `GET /v1/exports`, `GET /v1/exports/{id}` and
//! `GET /v1/exports/{id}/artifact`: eDiscovery exports as jobs on Kafka.
//!
//! A request is sealed in the tenant's trail (`export.requested`) before it is queued, and each
//! download too (`export.downloaded`). A tenant only ever sees its own exports: another tenant's
//! export answers 404, as if it did not exist.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use sealtrail_clickhouse::access::TenantReader;
use sealtrail_core::event::AuditEvent;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{Read, ReadRequest, audited};
use crate::audit::{AccessKind, platform_event};
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, RequestId};
use crate::scope::EventScope;
use crate::server::SharedState;
use sealtrail_export::{ExportBoard, ExportJob, ExportStatus, JobState, SubmitError, new_export_id, tar_stream};

pub(crate) const EXPORTERS: &[Role] = &[Role::Compliance, Role::TenantAdmin, Role::PlatformAdmin];

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequestBody {
    /// What to export; the window's other events appear as witness lines (hashes only).
    #[serde(default)]
    pub scope: EventScope,
    /// Another tenant, for a platform administrator only.
    pub tenant: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportListing {
    pub tenant: Option<String>,
}

fn board(state: &SharedState) -> Result<&ExportBoard, ApiError> {
    state.exports.as_ref().ok_or_else(|| {
        ApiError::unavailable("exports are not configured on this API (start it with --artifacts-dir and Kafka)")
    })
}

fn now_ms() -> i64 {
    sealtrail_clickhouse::unix_ms(OffsetDateTime::now_utc())
}

#[utoipa::path(
    post,
    path = "/v1/exports",
    operation_id = "request_export",
    tag = "exports",
    request_body = ExportRequestBody,
    responses(
        (status = 202, description = "Queued; poll GET /v1/exports/{id}", body = ExportStatus),
        (status = 400, description = "A malformed scope or a refused SQL filter", body = ErrorBody),
        (status = 403, description = "Needs the compliance or tenant_admin role", body = ErrorBody),
        (status = 429, description = "Over the tenant's export quota or the credential's rate limit", body = ErrorBody),
    )
)]
/// Queues an export.
pub async fn request(
    State(state): State<SharedState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<ExportRequestBody>,
) -> Result<(StatusCode, [(header::HeaderName, String); 1], Json<ExportStatus>), ApiError> {
    caller.require(EXPORTERS)?;
    let tenant = caller.tenant_for(body.tenant.as_deref())?;
    let board = board(&state)?;
    body.scope.check(true)?;
    if let Some(filter) = &body.scope.filter {
        let rewritten = crate::sql::rewrite(&crate::scope::filter_query(filter), &state.clickhouse.database)
            .map_err(|refusal| ApiError::bad_request("scope.filter", refusal.reason))?;
        // ClickHouse's own reading of the filter is confirmed now, so a filter it would read
        // differently is refused to the caller instead of failing the job later.
        let client = state.tenant_reader(TenantReader::Exporter, &tenant)?;
        crate::sql::confirm_scope(&client, &rewritten.client_text(), &state.clickhouse.database, &tenant)
            .await
            .map_err(|error| match error {
                crate::sql::ConfirmError::Violation(_) => {
                    ApiError::bad_request("scope.filter", "the filter cannot be run as checked; simplify it")
                }
                crate::sql::ConfirmError::ClickHouse(clickhouse::error::Error::BadResponse(message)) => {
                    ApiError::bad_request(
                        "scope.filter",
                        crate::sql::sanitized_clickhouse_message(&message, filter),
                    )
                }
                crate::sql::ConfirmError::ClickHouse(other) => ApiError::from(other),
            })?;
    }
    let job = ExportJob {
        export_id: new_export_id(),
        tenant_id: tenant,
        scope: body.scope,
        requested_by: caller.subject.clone(),
        request_id,
        requested_at: now_ms(),
    };
    state
        .recorder
        .publish(&export_event(&caller, &job, "export.requested"))
        .await?;
    let status = board
        .submit(&job, job.requested_at)
        .await
        .map_err(|error| match error {
            SubmitError::Quota(quota) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded", quota.to_string())
            }
            SubmitError::Kafka(reason) => ApiError::unavailable(reason),
        })?;
    let location = format!("/v1/exports/{}", status.export_id);
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(status)))
}

#[utoipa::path(
    get,
    path = "/v1/exports",
    operation_id = "list_exports",
    tag = "exports",
    params(ExportListing),
    responses((status = 200, description = "The tenant's exports, newest first"))
)]
/// The tenant's exports.
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    ApiQuery(listing): ApiQuery<ExportListing>,
) -> Result<Json<Value>, ApiError> {
    let outcome = (|| {
        caller.require(EXPORTERS)?;
        let tenant = caller.tenant_for(listing.tenant.as_deref())?;
        let exports = board(&state)?.list(&tenant);
        Ok(Read {
            rows: Some(exports.len() as u64),
            answer: Json(json!({ "exports": exports })),
            tenant,
        })
    })();
    audited(
        &state,
        exports_read(&caller, &request_id, "/v1/exports", listing.tenant.as_deref()),
        outcome,
    )
    .await
}

/// How a read of exports is recorded.
fn exports_read<'a>(
    caller: &'a Caller,
    request_id: &'a str,
    endpoint: &'a str,
    requested_tenant: Option<&'a str>,
) -> ReadRequest<'a> {
    ReadRequest {
        kind: AccessKind::ExportsRead,
        caller,
        request_id,
        endpoint,
        requested_tenant,
        filters: Vec::new(),
        sql: None,
    }
}

/// The export, if the caller's tenant owns it (a platform administrator sees every tenant's).
fn owned(state: &SharedState, caller: &Caller, export_id: &str) -> Result<ExportStatus, ApiError> {
    caller.require(EXPORTERS)?;
    board(state)?
        .get(export_id)
        .filter(|status| status.tenant_id == caller.tenant || caller.roles.contains(&Role::PlatformAdmin))
        .ok_or_else(|| ApiError::not_found(format!("no export {export_id} in this tenant")))
}

#[utoipa::path(
    get,
    path = "/v1/exports/{export_id}",
    operation_id = "get_export",
    tag = "exports",
    params(("export_id" = String, Path)),
    responses(
        (status = 200, description = "The export's current state", body = ExportStatus),
        (status = 404, description = "No such export in the tenant", body = ErrorBody),
    )
)]
/// One export's state: queued, running (with progress), done (with a summary) or failed (with the
/// reason).
pub async fn get(
    State(state): State<SharedState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    Path(export_id): Path<String>,
) -> Result<Json<ExportStatus>, ApiError> {
    let outcome = owned(&state, &caller, &export_id).map(|status| Read {
        tenant: status.tenant_id.clone(),
        rows: Some(1),
        answer: Json(status),
    });
    audited(
        &state,
        exports_read(&caller, &request_id, "/v1/exports/{export_id}", None),
        outcome,
    )
    .await
}

#[utoipa::path(
    get,
    path = "/v1/exports/{export_id}/artifact",
    operation_id = "download_export_artifact",
    tag = "exports",
    params(("export_id" = String, Path)),
    responses(
        (status = 200, description = "The artifact as a tar: manifest.json, manifest.sig, events files", content_type = "application/x-tar"),
        (status = 404, description = "No such export in the tenant", body = ErrorBody),
        (status = 409, description = "The export is not done", body = ErrorBody),
    )
)]
/// Downloads a finished export; check it with `sealtrail verify-export FILE.tar --public-key KEY`.
pub async fn artifact(
    State(state): State<SharedState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    Path(export_id): Path<String>,
) -> Result<Response, ApiError> {
    let status = owned(&state, &caller, &export_id)?;
    if status.state != JobState::Done {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_done",
            format!(
                "export {export_id} is {}; its artifact exists once it is done",
                status.state.name()
            ),
        ));
    }
    let dir = board(&state)?.config().artifacts_dir.join(&status.export_id);
    let (length, stream) = tar_stream(dir).map_err(|error| {
        tracing::error!(export = %export_id, %error, "a finished export's artifact cannot be read");
        ApiError::new(
            StatusCode::GONE,
            "artifact_missing",
            format!("the artifact of {export_id} is no longer readable on this API's disk"),
        )
    })?;
    let job = ExportJob {
        export_id: status.export_id.clone(),
        tenant_id: status.tenant_id.clone(),
        scope: status.scope.clone(),
        requested_by: status.requested_by.clone(),
        request_id,
        requested_at: status.requested_at,
    };
    state
        .recorder
        .publish(&export_event(&caller, &job, "export.downloaded"))
        .await?;
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"{export_id}.tar\"")) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}

fn export_event(caller: &Caller, job: &ExportJob, action: &str) -> AuditEvent {
    platform_event(
        &job.tenant_id,
        OffsetDateTime::now_utc(),
        action,
        caller.actor(),
        ("export", &job.export_id),
        &job.request_id,
        vec![(
            "scope".to_owned(),
            serde_json::to_string(&job.scope).unwrap_or_default(),
        )],
    )
}

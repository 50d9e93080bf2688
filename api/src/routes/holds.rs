//! `POST /v1/legal-holds`, `POST /v1/legal-holds/{id}/release`, `GET /v1/legal-holds`.
//!
//! A change needs the compliance role and an `X-Purpose` justification. It is sealed in the
//! tenant's audit trail first (`legalhold.applied`, `legalhold.released`) and only then written to
//! the holds table: a change that is not in the trail did not happen.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use sealtrail_core::event::{AuditEvent, Outcome};

use super::{Read, ReadRequest, audited};
use crate::audit::{AccessKind, platform_event};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::{Caller, Role};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, RequestId};
use crate::server::SharedState;
use sealtrail_retention::holds::{HoldChange, HoldScope};

const PURPOSE_HEADER: &str = "x-purpose";
pub(crate) const CHANGERS: &[Role] = &[Role::Compliance, Role::PlatformAdmin];

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    /// The legal case the hold serves.
    pub case_id: String,
    pub scope: HoldScope,
    pub reason: String,
    /// Another tenant, for a platform administrator only.
    pub tenant: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    #[serde(default)]
    pub reason: String,
    pub tenant: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HoldListing {
    /// Another tenant, for a platform administrator only.
    pub tenant: Option<String>,
}

pub(crate) fn purpose(headers: &HeaderMap) -> Result<String, ApiError> {
    let purpose = headers
        .get(PURPOSE_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    if purpose.is_empty() || purpose.len() > 1000 {
        return Err(ApiError::bad_request(
            "X-Purpose",
            "this change needs an X-Purpose header (1 to 1000 characters) saying why",
        ));
    }
    Ok(purpose.to_owned())
}

#[utoipa::path(
    post,
    path = "/v1/legal-holds",
    operation_id = "apply_legal_hold",
    tag = "legal holds",
    request_body = HoldRequest,
    params(("X-Purpose" = String, Header, description = "Why the hold is placed")),
    responses(
        (status = 201, description = "The hold is active"),
        (status = 400, description = "Missing X-Purpose, or a malformed scope", body = ErrorBody),
        (status = 403, description = "Needs the compliance role", body = ErrorBody),
    )
)]
/// Places a hold.
pub async fn apply(
    State(state): State<SharedState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    ApiJson(request): ApiJson<HoldRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(CHANGERS)?;
    let tenant = caller.tenant_for(request.tenant.as_deref())?;
    let purpose = purpose(&headers)?;
    if request.case_id.trim().is_empty() || request.reason.trim().is_empty() {
        return Err(ApiError::bad_request("case_id", "case_id and reason are required"));
    }
    request.scope.check(false)?;
    refuse_personal_data(&request.scope)?;
    let (condition, params) = request.scope.condition("hold")?;
    let mut covered = state
        .client
        .query(&format!(
            "SELECT count() FROM events WHERE tenant_id = {{tenant:String}} AND {condition}"
        ))
        .param("tenant", &tenant);
    for (name, value) in &params {
        covered = covered.param(name, value);
    }
    let covered: u64 = covered.fetch_one().await?;
    let change = HoldChange {
        tenant_id: tenant,
        hold_id: format!("hold_{}", ulid::Ulid::new().to_string().to_lowercase()),
        change: "applied".to_owned(),
        case_id: request.case_id,
        scope: serde_json::to_string(&request.scope).unwrap_or_default(),
        reason: request.reason,
        purpose,
        actor: caller.subject.clone(),
        request_id,
        changed_at: OffsetDateTime::now_utc(),
    };
    record(&state, &caller, &change).await?;
    let mut answer = hold_json(std::slice::from_ref(&change));
    // What the hold keeps today (later events in its scope are kept too): a hold that matches
    // nothing is most likely a mistake the caller wants to see at once.
    answer["events_covered"] = json!(covered);
    Ok((StatusCode::CREATED, Json(answer)))
}

/// Stored events hold personal data only as tokens, and raw personal data must not be stored in a
/// hold either: such a value is refused, pointing at the token to use instead.
fn refuse_personal_data(scope: &HoldScope) -> Result<(), ApiError> {
    for (field, value) in [("scope.actor", &scope.actor), ("scope.resource_id", &scope.resource_id)] {
        if let Some(value) = value
            && !sealtrail_core::classify::detect::scan(value).is_empty()
        {
            return Err(ApiError::bad_request(
                field,
                "this value is personal data, which events hold only as a token; find the events with \
                 GET /v1/events?match_value=...&match_label=... and hold by the value they show",
            ));
        }
    }
    Ok(())
}

#[utoipa::path(
    post,
    path = "/v1/legal-holds/{hold_id}/release",
    operation_id = "release_legal_hold",
    tag = "legal holds",
    request_body = ReleaseRequest,
    params(("hold_id" = String, Path), ("X-Purpose" = String, Header, description = "Why the hold is released")),
    responses(
        (status = 200, description = "The hold is released; its history is kept"),
        (status = 404, description = "No such hold in the tenant", body = ErrorBody),
        (status = 409, description = "Already released", body = ErrorBody),
    )
)]
/// Releases a hold.
pub async fn release(
    State(state): State<SharedState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    Path(hold_id): Path<String>,
    ApiJson(request): ApiJson<ReleaseRequest>,
) -> Result<Json<Value>, ApiError> {
    caller.require(CHANGERS)?;
    let tenant = caller.tenant_for(request.tenant.as_deref())?;
    let purpose = purpose(&headers)?;
    let mut history = state.holds.history(&tenant, Some(&hold_id)).await?;
    let Some(applied) = history.first().cloned() else {
        return Err(ApiError::not_found(format!("no legal hold {hold_id} in this tenant")));
    };
    if history.iter().any(|change| change.change == "released") {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_released",
            format!("legal hold {hold_id} is already released"),
        ));
    }
    let change = HoldChange {
        change: "released".to_owned(),
        reason: request.reason,
        purpose,
        actor: caller.subject.clone(),
        request_id,
        changed_at: OffsetDateTime::now_utc(),
        ..applied
    };
    record(&state, &caller, &change).await?;
    history.push(change);
    Ok(Json(hold_json(&history)))
}

#[utoipa::path(
    get,
    path = "/v1/legal-holds",
    operation_id = "list_legal_holds",
    tag = "legal holds",
    params(HoldListing),
    responses((status = 200, description = "The tenant's holds, each with its whole history"))
)]
/// The tenant's holds.
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    ApiQuery(listing): ApiQuery<HoldListing>,
) -> Result<Json<Value>, ApiError> {
    let outcome = async {
        caller.require(&[Role::Compliance, Role::TenantAdmin, Role::Auditor, Role::PlatformAdmin])?;
        let tenant = caller.tenant_for(listing.tenant.as_deref())?;
        let history = state.holds.history(&tenant, None).await?;
        let holds: Vec<Value> = history.chunk_by(|a, b| a.hold_id == b.hold_id).map(hold_json).collect();
        Ok(Read {
            rows: Some(holds.len() as u64),
            answer: Json(json!({ "holds": holds })),
            tenant,
        })
    }
    .await;
    let read = ReadRequest {
        kind: AccessKind::HoldsRead,
        caller: &caller,
        request_id: &request_id,
        endpoint: "/v1/legal-holds",
        requested_tenant: listing.tenant.as_deref(),
        filters: Vec::new(),
        sql: None,
    };
    audited(&state, read, outcome).await
}

/// Seals the change in the tenant's trail, writes it to the holds table, and notifies the
/// tenant's webhooks.
async fn record(state: &SharedState, caller: &Caller, change: &HoldChange) -> Result<(), ApiError> {
    state.recorder.publish(&hold_event(caller, change)).await?;
    state.holds.append(change).await.map_err(|error| {
        tracing::error!(hold = %change.hold_id, %error, "a sealed legal hold change could not be written to ClickHouse");
        ApiError::unavailable(format!(
            "the change of {} is sealed in the audit trail but ClickHouse did not take it: {error}",
            change.hold_id
        ))
    })?;
    let data = json!({
        "hold_id": change.hold_id,
        "case_id": change.case_id,
        "scope": serde_json::from_str::<Value>(&change.scope).unwrap_or(Value::Null),
        "actor": change.actor,
    });
    state
        .webhooks
        .notify(&change.tenant_id, &format!("legalhold.{}", change.change), data)
        .await;
    Ok(())
}

fn hold_event(caller: &Caller, change: &HoldChange) -> AuditEvent {
    let event = platform_event(
        &change.tenant_id,
        change.changed_at,
        &format!("legalhold.{}", change.change),
        caller.actor(),
        ("legal_hold", &change.hold_id),
        &change.request_id,
        vec![
            ("case_id".to_owned(), change.case_id.clone()),
            ("scope".to_owned(), change.scope.clone()),
            ("purpose".to_owned(), change.purpose.clone()),
        ],
    );
    AuditEvent {
        outcome: Outcome {
            reason_text: Some(change.reason.clone()),
            ..event.outcome.clone()
        },
        ..event
    }
}

/// A hold from its history (oldest change first).
fn hold_json(history: &[HoldChange]) -> Value {
    let first = &history[0];
    let released = history.iter().any(|change| change.change == "released");
    json!({
        "hold_id": first.hold_id,
        "tenant_id": first.tenant_id,
        "case_id": first.case_id,
        "scope": serde_json::from_str::<Value>(&first.scope).unwrap_or(Value::Null),
        "state": if released { "released" } else { "active" },
        "history": history.iter().map(|change| json!({
            "change": change.change,
            "reason": change.reason,
            "purpose": change.purpose,
            "actor": change.actor,
            "request_id": change.request_id,
            "at": change.changed_at.format(&Rfc3339).unwrap_or_default(),
        })).collect::<Vec<_>>(),
    })
}

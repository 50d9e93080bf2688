//! `GET /v1/retention-policies`, `PUT` and `DELETE /v1/retention-policies/{category}`: how long a
//! tenant keeps its events of a category (`*` for every category it has no policy for).
//!
//! A change needs the compliance role and an `X-Purpose` justification; it is sealed in the
//! tenant's trail (`retention.policy_set`, `retention.policy_removed`) before it is stored.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::audit::platform_event;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, RequestId};
use crate::routes::holds::purpose;
use crate::server::SharedState;
use sealtrail_retention::{PolicyChange, is_category};

pub(crate) const CHANGERS: &[Role] = &[Role::Compliance, Role::PlatformAdmin];
/// Ten years and a bit: longer is a mistake, not a policy.
const MAX_DAYS: u32 = 3700;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    /// Days after an event occurred that it is kept (1 to 3700).
    pub retain_days: u32,
    /// Another tenant, for a platform administrator only.
    pub tenant: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PolicyListing {
    pub tenant: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/retention-policies",
    operation_id = "list_retention_policies",
    tag = "retention",
    params(PolicyListing),
    responses((status = 200, description = "The tenant's policies in force"))
)]
/// The tenant's retention policies.
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    ApiQuery(listing): ApiQuery<PolicyListing>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::READERS)?;
    let tenant = caller.tenant_for(listing.tenant.as_deref())?;
    let policies = state.policies.in_force(Some(&tenant)).await?;
    Ok(Json(
        json!({"policies": policies.iter().map(policy_json).collect::<Vec<_>>()}),
    ))
}

#[utoipa::path(
    put,
    path = "/v1/retention-policies/{category}",
    operation_id = "set_retention_policy",
    tag = "retention",
    request_body = PolicyRequest,
    params(("category" = String, Path, description = "An event category, or * for every other"), ("X-Purpose" = String, Header)),
    responses(
        (status = 200, description = "The policy is in force"),
        (status = 400, description = "A malformed category or number of days, or no X-Purpose", body = ErrorBody),
        (status = 403, description = "Needs the compliance role", body = ErrorBody),
    )
)]
/// Sets how long the tenant keeps its events of a category.
pub async fn set(
    State(state): State<SharedState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    Path(category): Path<String>,
    ApiJson(request): ApiJson<PolicyRequest>,
) -> Result<Json<Value>, ApiError> {
    let change = change(&caller, &headers, &category, request.tenant.as_deref(), request_id)?;
    if !(1..=MAX_DAYS).contains(&request.retain_days) {
        return Err(ApiError::bad_request(
            "retain_days",
            format!("retain_days must be 1 to {MAX_DAYS}"),
        ));
    }
    let change = PolicyChange {
        change: "set".to_owned(),
        retain_days: request.retain_days,
        ..change
    };
    record(&state, &caller, &change).await?;
    Ok(Json(policy_json(&change)))
}

#[utoipa::path(
    delete,
    path = "/v1/retention-policies/{category}",
    operation_id = "remove_retention_policy",
    tag = "retention",
    params(("category" = String, Path), ("X-Purpose" = String, Header)),
    responses(
        (status = 200, description = "Removed; broader policies (or the configuration) govern again"),
        (status = 404, description = "No such policy", body = ErrorBody),
    )
)]
/// Removes the tenant's policy of a category.
pub async fn remove(
    State(state): State<SharedState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    Path(category): Path<String>,
    ApiQuery(listing): ApiQuery<PolicyListing>,
) -> Result<Json<Value>, ApiError> {
    let change = change(&caller, &headers, &category, listing.tenant.as_deref(), request_id)?;
    let in_force = state.policies.in_force(Some(&change.tenant_id)).await?;
    let Some(current) = in_force.iter().find(|p| p.category == category) else {
        return Err(ApiError::not_found(format!(
            "no retention policy for category {category}"
        )));
    };
    let change = PolicyChange {
        change: "removed".to_owned(),
        retain_days: current.retain_days,
        ..change
    };
    record(&state, &caller, &change).await?;
    Ok(Json(policy_json(&change)))
}

/// The common part of a change: the caller may make it, and says why.
fn change(
    caller: &Caller,
    headers: &HeaderMap,
    category: &str,
    tenant: Option<&str>,
    request_id: String,
) -> Result<PolicyChange, ApiError> {
    caller.require(CHANGERS)?;
    let tenant = caller.tenant_for(tenant)?;
    let purpose = purpose(headers)?;
    if !is_category(category) {
        return Err(ApiError::bad_request(
            "category",
            format!("`{category}` is not a category or *"),
        ));
    }
    Ok(PolicyChange {
        policy_id: format!("api:{tenant}:{category}"),
        tenant_id: tenant,
        category: category.to_owned(),
        change: String::new(),
        retain_days: 0,
        actor: caller.subject.clone(),
        purpose,
        request_id,
        changed_at: OffsetDateTime::now_utc(),
    })
}

async fn record(state: &SharedState, caller: &Caller, change: &PolicyChange) -> Result<(), ApiError> {
    let event = platform_event(
        &change.tenant_id,
        change.changed_at,
        &format!("retention.policy_{}", change.change),
        caller.actor(),
        ("retention_policy", &change.policy_id),
        &change.request_id,
        vec![
            ("category".to_owned(), change.category.clone()),
            ("retain_days".to_owned(), change.retain_days.to_string()),
            ("purpose".to_owned(), change.purpose.clone()),
        ],
    );
    state.recorder.publish(&event).await?;
    state.policies.append(change).await.map_err(|error| {
        ApiError::unavailable(format!(
            "the change of {} is sealed in the audit trail but ClickHouse did not take it: {error}",
            change.policy_id
        ))
    })
}

fn policy_json(change: &PolicyChange) -> Value {
    json!({
        "policy_id": change.policy_id,
        "tenant_id": change.tenant_id,
        "category": change.category,
        "retain_days": change.retain_days,
        "state": if change.change == "removed" { "removed" } else { "in_force" },
        "actor": change.actor,
        "changed_at": change.changed_at.format(&Rfc3339).unwrap_or_default(),
    })
}

//! `POST /v1/webhooks`, `GET /v1/webhooks`, `DELETE /v1/webhooks/{id}`: a tenant's endpoints.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::auth::{Caller, Role};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::server::SharedState;
use crate::webhooks::{EVENT_TYPES, WebhookChange};

const MANAGERS: &[Role] = &[Role::TenantAdmin, Role::Compliance, Role::PlatformAdmin];

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// Where deliveries are sent (POST).
    pub url: String,
    /// Event types: legalhold.applied, legalhold.released, export.completed, export.failed, integrity.incident.
    pub events: Vec<String>,
    pub tenant: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WebhookScope {
    pub tenant: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/webhooks",
    operation_id = "register_webhook",
    tag = "webhooks",
    request_body = WebhookRequest,
    responses(
        (status = 201, description = "Registered; the answer holds the signing secret, shown only now"),
        (status = 400, description = "A bad URL or event type", body = ErrorBody),
        (status = 403, description = "Needs tenant_admin or compliance", body = ErrorBody),
    )
)]
/// Registers an endpoint.
pub async fn register(
    State(state): State<SharedState>,
    caller: Caller,
    ApiJson(request): ApiJson<WebhookRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(MANAGERS)?;
    let tenant = caller.tenant_for(request.tenant.as_deref())?;
    state.webhooks.check_target(&request.url).await?;
    if request.events.is_empty() {
        return Err(ApiError::bad_request("events", "name at least one event type"));
    }
    if let Some(unknown) = request.events.iter().find(|e| !EVENT_TYPES.contains(&e.as_str())) {
        return Err(ApiError::bad_request(
            "events",
            format!("`{unknown}` is not one of {}", EVENT_TYPES.join(", ")),
        ));
    }
    let change = WebhookChange {
        tenant_id: tenant,
        webhook_id: format!("wh_{}", ulid::Ulid::new().to_string().to_lowercase()),
        change: "registered".to_owned(),
        url: request.url,
        events: request.events,
        actor: caller.subject.clone(),
        changed_at: OffsetDateTime::now_utc(),
    };
    let secret = state.webhooks.secret(&change.tenant_id, &change.webhook_id)?;
    state.webhooks.append(&change).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "webhook_id": change.webhook_id,
            "url": change.url,
            "events": change.events,
            "secret": secret,
        })),
    ))
}

#[utoipa::path(get, path = "/v1/webhooks", operation_id = "list_webhooks", tag = "webhooks", params(WebhookScope), responses((status = 200, description = "The tenant's endpoints (no secrets)")))]
/// The tenant's endpoints.
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    ApiQuery(scope): ApiQuery<WebhookScope>,
) -> Result<Json<Value>, ApiError> {
    caller.require(MANAGERS)?;
    let tenant = caller.tenant_for(scope.tenant.as_deref())?;
    let endpoints = state.webhooks.active(&tenant).await?;
    let listed: Vec<Value> = endpoints
        .iter()
        .map(|e| json!({"webhook_id": e.webhook_id, "url": e.url, "events": e.events}))
        .collect();
    Ok(Json(json!({"webhooks": listed})))
}

#[utoipa::path(
    delete,
    path = "/v1/webhooks/{webhook_id}",
    operation_id = "remove_webhook",
    tag = "webhooks",
    params(("webhook_id" = String, Path), WebhookScope),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such endpoint in the tenant", body = ErrorBody))
)]
/// Removes an endpoint (its history is kept).
pub async fn remove(
    State(state): State<SharedState>,
    caller: Caller,
    Path(webhook_id): Path<String>,
    ApiQuery(scope): ApiQuery<WebhookScope>,
) -> Result<StatusCode, ApiError> {
    caller.require(MANAGERS)?;
    let tenant = caller.tenant_for(scope.tenant.as_deref())?;
    let Some(endpoint) = state
        .webhooks
        .active(&tenant)
        .await?
        .into_iter()
        .find(|e| e.webhook_id == webhook_id)
    else {
        return Err(ApiError::not_found(format!("no webhook {webhook_id} in this tenant")));
    };
    let removal = WebhookChange {
        change: "removed".to_owned(),
        actor: caller.subject.clone(),
        changed_at: OffsetDateTime::now_utc(),
        ..endpoint
    };
    state.webhooks.append(&removal).await?;
    Ok(StatusCode::NO_CONTENT)
}

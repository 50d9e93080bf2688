//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::server::SharedState;

#[utoipa::path(get, path = "/healthz", operation_id = "check_liveness", tag = "operations", responses((status = 200, description = "The process answers")))]
/// The process answers.
pub async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "check_readiness",
    tag = "operations",
    responses((status = 200, description = "Ready"), (status = 503, description = "ClickHouse does not answer", body = crate::error::ErrorBody))
)]
/// ClickHouse answers too: queries can be served.
pub async fn ready(State(state): State<SharedState>) -> Result<Json<Value>, ApiError> {
    state
        .client
        .query("SELECT 1")
        .fetch_one::<u8>()
        .await
        .map_err(|e| ApiError::unavailable(format!("ClickHouse does not answer: {e}")))?;
    Ok(Json(json!({"status": "ready"})))
}

//! `GET /v1/integrity/keys`: the public keys that sign checkpoints (and, later, export
//! manifests), with their key ids. Public by nature, so served without a credential.

use axum::Json;
use axum::extract::State;
use sealtrail_core::digest::to_hex;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::server::SharedState;

#[utoipa::path(
    get,
    path = "/v1/integrity/keys",
    operation_id = "list_signing_keys",
    tag = "integrity",
    security(()),
    responses((status = 200, description = "`{keys: [{key_id, algorithm, public_key (hex, raw 32 bytes), active}]}`; `active` marks the key of the newest checkpoint"))
)]
/// The trusted signing keys.
pub async fn list(State(state): State<SharedState>) -> Result<Json<Value>, ApiError> {
    let newest: Option<String> = state
        .client
        .query("SELECT key_id FROM checkpoints ORDER BY created_at DESC LIMIT 1")
        .fetch_optional()
        .await?;
    let keys: Vec<Value> = state
        .trusted_keys
        .iter()
        .map(|key| {
            json!({
                "key_id": key.key_id,
                "algorithm": "Ed25519",
                "public_key": to_hex(&key.public_key),
                "active": newest.as_deref() == Some(key.key_id.as_str()),
            })
        })
        .collect();
    Ok(Json(json!({"keys": keys})))
}

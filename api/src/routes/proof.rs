//! `GET /v1/integrity/proof?event_id=...`: everything needed to check offline, with the public key
//! and docs/integrity.md, that an event is covered by a signed checkpoint.
//!
//! The answer holds the checkpoint's signed fields and signature, the RFC 6962 audit path of the
//! event's hash to the checkpoint's `entries_root`, and the audit path of the tenant's head to its
//! `tenant_heads_root`. Other tenants appear only as sibling hashes in those paths.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use sealtrail_clickhouse::{CheckpointRow, EventRow};
use sealtrail_core::digest::Digest;
use serde::Deserialize;
use serde_json::{Value, json};

use super::events::find_event;
use super::{Read, ReadRequest, audited};
use crate::audit::AccessKind;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, RequestId};
use crate::server::SharedState;
use sealtrail_export::exporter::{ExportError, WindowSource, load_window, manifest_checkpoint};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProofRequest {
    /// The event to prove.
    pub event_id: String,
    /// Another tenant, for a platform administrator only.
    pub tenant: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/integrity/proof",
    operation_id = "get_inclusion_proof",
    tag = "integrity",
    params(ProofRequest),
    responses(
        (status = 200, description = "The checkpoint's signed fields and signature, the RFC 6962 audit path of the event's hash to `entries_root`, and of the tenant's head to `tenant_heads_root` (docs/integrity.md, \"Inclusion proofs\")"),
        (status = 404, description = "No such event in the tenant", body = ErrorBody),
        (status = 409, description = "No signed checkpoint covers the event yet, or ClickHouse does not hold all its entries yet", body = ErrorBody),
    )
)]
pub async fn inclusion(
    State(state): State<SharedState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    ApiQuery(request): ApiQuery<ProofRequest>,
) -> Result<Json<Value>, ApiError> {
    let outcome = prove(&state, &caller, &request).await;
    let read = ReadRequest {
        kind: AccessKind::ProofRead,
        caller: &caller,
        request_id: &request_id,
        endpoint: "/v1/integrity/proof",
        requested_tenant: request.tenant.as_deref(),
        filters: vec!["event_id"],
        sql: None,
    };
    audited(&state, read, outcome).await
}

async fn prove(state: &SharedState, caller: &Caller, request: &ProofRequest) -> Result<Read<Json<Value>>, ApiError> {
    caller.require(Role::READERS)?;
    let tenant = caller.tenant_for(request.tenant.as_deref())?;
    let event = find_event(state, &tenant, &request.event_id).await?;
    let (checkpoint, previous_offset) = tokio::try_join!(
        covering_checkpoint(state, &event),
        previous_checkpoint_offset(state, &event)
    )?;
    // The same entries, paths and root checks as an export's: what is handed out must verify.
    let window = load_window(&state.client, &checkpoint, previous_offset, WindowSource::StoredFirst)
        .await
        .map_err(proof_error)?;
    let index = window.offsets.binary_search(&event.sealed_offset).map_err(|_| {
        proof_error(ExportError::IncompleteProjection(format!(
            "the event is not among the entries of checkpoint {} in ClickHouse",
            checkpoint.number
        )))
    })?;
    let signed = manifest_checkpoint(&checkpoint, &tenant).map_err(proof_error)?;
    let head = &signed.tenant_head;
    let tenant_head = json!({
        "tenant_id": tenant,
        "seq": head.seq,
        "hash": head.hash,
        "leaf_index": head.leaf_index,
        "tree_size": head.tree_size,
        "audit_path": head.audit_path,
    });
    let mut checkpoint_json = serde_json::to_value(&signed).unwrap_or_default();
    if let Some(fields) = checkpoint_json.as_object_mut() {
        fields.remove("tenant_head");
    }
    tracing::info!("inclusion proof served");
    let answer = Json(json!({
        "event_id": event.event_id,
        "tenant_id": event.tenant_id,
        "seq": event.seq,
        "entry_hash": event.hash,
        "entry_inclusion": {
            "leaf_index": index,
            "tree_size": window.offsets.len(),
            "audit_path": window.proofs[index].iter().map(Digest::to_hex).collect::<Vec<_>>(),
        },
        "tenant_head": tenant_head,
        "checkpoint": checkpoint_json,
    }));
    Ok(Read {
        answer,
        tenant,
        rows: Some(1),
    })
}

/// Missing entries are worth asking again for (409); entries that do not match their signed root
/// are an integrity incident (500).
fn proof_error(error: ExportError) -> ApiError {
    match error {
        ExportError::IncompleteProjection(message) => {
            ApiError::new(StatusCode::CONFLICT, "incomplete_projection", message)
        }
        ExportError::ClickHouse(error) => ApiError::from(error),
        other => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "integrity_mismatch",
            other.to_string(),
        ),
    }
}

/// The first checkpoint written after the event in its sealed partition: the one covering it.
async fn covering_checkpoint(state: &SharedState, event: &EventRow) -> Result<CheckpointRow, ApiError> {
    state
        .client
        .query(
            "SELECT ?fields FROM checkpoints WHERE layout_epoch = {epoch:UInt32} \
             AND sealed_partition = {partition:UInt32} AND sealed_offset > {offset:UInt64} \
             ORDER BY sealed_offset LIMIT 1",
        )
        .param("epoch", event.layout_epoch)
        .param("partition", event.sealed_partition)
        .param("offset", event.sealed_offset)
        .fetch_optional::<CheckpointRow>()
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "not_yet_covered",
                "no signed checkpoint covers this event yet; ask again after the next checkpoint",
            )
        })
}

/// Where the previous checkpoint of the event's partition sits (`None` before the first).
async fn previous_checkpoint_offset(state: &SharedState, event: &EventRow) -> Result<Option<u64>, ApiError> {
    Ok(state
        .client
        .query(
            "SELECT maxOrNull(sealed_offset) FROM checkpoints WHERE layout_epoch = {epoch:UInt32} \
             AND sealed_partition = {partition:UInt32} AND sealed_offset < {offset:UInt64}",
        )
        .param("epoch", event.layout_epoch)
        .param("partition", event.sealed_partition)
        .param("offset", event.sealed_offset)
        .fetch_one()
        .await?)
}

//! `GET /v1/integrity/proof?event_id=...`: everything needed to check offline, with the public key
//! and docs/integrity.md, that an event is covered by a signed checkpoint.
//!
//! The answer holds the checkpoint's signed fields and signature, the RFC 6962 audit path of the
//! event's hash to the checkpoint's `entries_root`, and the audit path of the tenant's head to its
//! `tenant_heads_root`. Other tenants appear only as sibling hashes in those paths.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use clickhouse::Row;
use sealtrail_clickhouse::{CheckpointRow, EventRow};
use sealtrail_core::checkpoint::{tenant_head_leaf, tenant_heads_root};
use sealtrail_core::digest::Digest;
use sealtrail_core::merkle;
use sealtrail_core::sealed::TenantHead;
use serde::Deserialize;
use serde_json::{Value, json};

use super::events::find_event;
use super::{Read, ReadRequest, audited};
use crate::audit::AccessKind;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, RequestId};
use crate::server::SharedState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProofRequest {
    /// The event to prove.
    pub event_id: String,
    /// Another tenant, for a platform administrator only.
    pub tenant: Option<String>,
}

#[derive(Debug, Row, Deserialize)]
struct EntryHash {
    hash: String,
    sealed_offset: u64,
}

#[utoipa::path(
    get,
    path = "/v1/integrity/proof",
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
    let checkpoint = covering_checkpoint(state, &event).await?;
    let entries = checkpoint_entries(state, &event, &checkpoint).await?;
    let incomplete = || {
        ApiError::new(
            StatusCode::CONFLICT,
            "incomplete_projection",
            format!(
                "ClickHouse holds {} of the {} entries of checkpoint {} of partition {}: the sink is still catching up, or rows are missing",
                entries.len(),
                checkpoint.entry_count,
                checkpoint.number,
                checkpoint.sealed_partition
            ),
        )
    };
    if entries.len() as u64 != checkpoint.entry_count {
        return Err(incomplete());
    }
    let leaves: Vec<Digest> = entries
        .iter()
        .map(|entry| Digest::from_hex(&entry.hash).map(|hash| merkle::leaf_hash(&hash.0)))
        .collect::<Option<_>>()
        .ok_or_else(incomplete)?;
    let index = entries
        .iter()
        .position(|entry| entry.sealed_offset == event.sealed_offset)
        .ok_or_else(incomplete)?;
    let entry_path = merkle::inclusion_proof(&leaves, index);

    let mut heads: Vec<TenantHead> = checkpoint
        .tenant_heads
        .iter()
        .filter_map(|(tenant_id, seq, hash)| {
            Some(TenantHead {
                tenant_id: tenant_id.clone(),
                seq: *seq,
                hash: Digest::from_hex(hash)?,
            })
        })
        .collect();
    heads.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
    let head_index = heads
        .iter()
        .position(|head| head.tenant_id == tenant)
        .ok_or_else(incomplete)?;
    let head_leaves: Vec<Digest> = heads.iter().map(tenant_head_leaf).collect();
    let head_path = merkle::inclusion_proof(&head_leaves, head_index);
    // What we hand out must verify: a projection that does not match its signed roots is an
    // integrity incident, not a proof.
    let entries_root = Digest::from_hex(&checkpoint.entries_root).unwrap_or_default();
    if merkle::root(&leaves) != entries_root || tenant_heads_root(&heads).to_hex() != checkpoint.tenant_heads_root {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "integrity_mismatch",
            format!(
                "the entries in ClickHouse do not match the signed roots of checkpoint {} of partition {}; run `sealtrail verify`",
                checkpoint.number, checkpoint.sealed_partition
            ),
        ));
    }
    let head = &heads[head_index];
    tracing::info!(caller = %caller.subject, tenant = %tenant, "inclusion proof served");
    let answer = Json(json!({
        "event_id": event.event_id,
        "tenant_id": event.tenant_id,
        "seq": event.seq,
        "entry_hash": event.hash,
        "entry_inclusion": {
            "leaf_index": index,
            "tree_size": leaves.len(),
            "audit_path": entry_path.iter().map(Digest::to_hex).collect::<Vec<_>>(),
        },
        "tenant_head": {
            "tenant_id": head.tenant_id,
            "seq": head.seq,
            "hash": head.hash.to_hex(),
            "leaf_index": head_index,
            "tree_size": heads.len(),
            "audit_path": head_path.iter().map(Digest::to_hex).collect::<Vec<_>>(),
        },
        "checkpoint": checkpoint_json(&checkpoint),
    }));
    Ok(Read {
        answer,
        tenant,
        rows: Some(1),
    })
}

/// The first checkpoint written after the event in its sealed partition: the one covering it.
async fn covering_checkpoint(state: &SharedState, event: &EventRow) -> Result<CheckpointRow, ApiError> {
    state
        .clickhouse
        .client()
        .query(
            "SELECT ?fields FROM checkpoints WHERE sealed_partition = {partition:UInt32} \
             AND sealed_offset > {offset:UInt64} ORDER BY sealed_offset LIMIT 1",
        )
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

/// The checkpoint's entries: every event sealed in the partition between the previous checkpoint
/// and this one, of every tenant; only their hashes are used, and only as siblings in the path.
async fn checkpoint_entries(
    state: &SharedState,
    event: &EventRow,
    checkpoint: &CheckpointRow,
) -> Result<Vec<EntryHash>, ApiError> {
    let client = state.clickhouse.client();
    let previous_offset: Option<u64> = client
        .query(
            "SELECT maxOrNull(sealed_offset) FROM checkpoints WHERE sealed_partition = {partition:UInt32} \
             AND sealed_offset < {offset:UInt64}",
        )
        .param("partition", event.sealed_partition)
        .param("offset", event.sealed_offset)
        .fetch_one()
        .await
        .map_err(ApiError::from)?;
    client
        .query(
            "SELECT ?fields FROM events WHERE sealed_partition = {partition:UInt32} \
             AND sealed_offset > {after:Int64} AND sealed_offset < {before:UInt64} ORDER BY sealed_offset",
        )
        .param("partition", event.sealed_partition)
        .param(
            "after",
            previous_offset.map_or(-1, |offset| i64::try_from(offset).unwrap_or(i64::MAX)),
        )
        .param("before", checkpoint.sealed_offset)
        .fetch_all::<EntryHash>()
        .await
        .map_err(ApiError::from)
}

fn checkpoint_json(checkpoint: &CheckpointRow) -> Value {
    json!({
        "scheme": checkpoint.scheme,
        "partition": checkpoint.sealed_partition,
        "number": checkpoint.number,
        "prev_checkpoint_hash": checkpoint.prev_checkpoint_hash,
        "entries_root": checkpoint.entries_root,
        "entry_count": checkpoint.entry_count,
        "tenant_heads_root": checkpoint.tenant_heads_root,
        "tenant_count": checkpoint.tenant_count,
        "source_offset": checkpoint.source_offset,
        "dlq_next_offset": checkpoint.dlq_next_offset,
        "created_at": i64::try_from(checkpoint.created_at.unix_timestamp_nanos() / 1_000_000).unwrap_or_default(),
        "key_id": checkpoint.key_id,
        "checkpoint_hash": checkpoint.checkpoint_hash,
        "signature": checkpoint.signature,
    })
}

//! How an event is answered: the redacted event, its classification, and its integrity metadata
//! (tenant sequence, hashes, and the signed checkpoint that covers it, once there is one).

use std::collections::BTreeMap;

use clickhouse::Row;
use sealtrail_clickhouse::EventRow;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;
use crate::server::SharedState;

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

pub fn event_json(row: &EventRow) -> Value {
    json!({
        "event_id": row.event_id,
        "tenant_id": row.tenant_id,
        "occurred_at": rfc3339(row.occurred_at),
        "action": row.action,
        "actor": {
            "id": row.actor_id,
            "type": row.actor_type,
            "display_name": row.actor_display_name,
            "authority": row.actor_authority,
            "on_behalf_of": row.actor_on_behalf_of,
        },
        "resource": {"type": row.resource_type, "id": row.resource_id, "path": row.resource_path},
        "outcome": {"status": row.outcome, "reason_code": row.reason_code, "reason_text": row.reason_text},
        "correlation_id": row.correlation_id,
        "causation_id": row.causation_id,
        "trace_id": row.trace_id,
        "span_id": row.span_id,
        "idempotency_key": row.idempotency_key,
        "policy_version": row.policy_version,
        "session_id": row.session_id,
        "evidence": row.evidence.iter().map(|(kind, uri, sha256)| json!({"kind": kind, "uri": uri, "sha256": sha256})).collect::<Vec<_>>(),
        "changes": row.changes.iter().map(|(field, before, after)| json!({"field": field, "before": before, "after": after})).collect::<Vec<_>>(),
        "attributes": row.attributes.iter().cloned().collect::<BTreeMap<_, _>>(),
        "classification": {
            "category": row.category,
            "data_class": row.data_class,
            "labels": row.labels,
            "policy_version": row.seal_policy_version,
        },
        "redactions": row.redactions.iter().map(|(path, label, method)| json!({"path": path, "label": label, "method": method})).collect::<Vec<_>>(),
        "integrity": {
            "scheme": row.scheme,
            "seq": row.seq,
            "prev_hash": row.prev_hash,
            "hash": row.hash,
            "key_id": row.key_id,
            "sealed_partition": row.sealed_partition,
            "sealed_offset": row.sealed_offset,
            "sealed_at": rfc3339(row.sealed_at),
            "checkpoint": Value::Null,
        },
    })
}

/// Where a checkpoint sits in the sealed partition.
#[derive(Debug, Clone, Row, Deserialize)]
struct CheckpointPlace {
    number: u64,
    checkpoint_hash: String,
    sealed_offset: u64,
}

/// Fills `integrity.checkpoint` of each event: the first checkpoint written after it in its sealed
/// partition, which is the one whose Merkle root covers it. Events not covered yet keep `null`.
pub async fn attach_checkpoints(state: &SharedState, rows: &[EventRow], events: &mut [Value]) -> Result<(), ApiError> {
    let mut partitions: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for row in rows {
        let range = partitions
            .entry(row.sealed_partition)
            .or_insert((row.sealed_offset, row.sealed_offset));
        range.0 = range.0.min(row.sealed_offset);
        range.1 = range.1.max(row.sealed_offset);
    }
    for (partition, (first, last)) in partitions {
        // Checkpoints after the first event, up to and including the first one after the last.
        let places = state
            .clickhouse
            .client()
            .query(
                "SELECT ?fields FROM checkpoints WHERE sealed_partition = {partition:UInt32} \
                 AND sealed_offset > {first:UInt64} AND sealed_offset <= ( \
                   SELECT ifNull(minOrNull(sealed_offset), 18446744073709551615) FROM checkpoints \
                   WHERE sealed_partition = {partition:UInt32} AND sealed_offset > {last:UInt64}) \
                 ORDER BY sealed_offset",
            )
            .param("partition", partition)
            .param("first", first)
            .param("last", last)
            .fetch_all::<CheckpointPlace>()
            .await
            .map_err(ApiError::from)?;
        for (row, event) in rows.iter().zip(events.iter_mut()) {
            if row.sealed_partition != partition {
                continue;
            }
            let covering = places.partition_point(|place| place.sealed_offset <= row.sealed_offset);
            if let Some(place) = places.get(covering) {
                event["integrity"]["checkpoint"] = json!({
                    "partition": partition,
                    "number": place.number,
                    "checkpoint_hash": place.checkpoint_hash,
                });
            }
        }
    }
    Ok(())
}

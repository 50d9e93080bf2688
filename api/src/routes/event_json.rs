//! How an event is answered: the redacted event, its classification, and its integrity metadata
//! (tenant sequence, hashes, and the signed checkpoint that covers it, once there is one).

use std::collections::BTreeMap;

use clickhouse::Row;
use sealtrail_clickhouse::EventRow;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// The console's integrity panel accepts exactly these members (`EVENT_MEMBERS` and the others in
/// `api/console/src/integrity/entry.ts`): a member added here must be added there, and to the
/// entry it rebuilds when the hash covers it.
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
            "layout_epoch": row.layout_epoch,
            "sealed_partition": row.sealed_partition,
            "sealed_offset": row.sealed_offset,
            "sealed_at": rfc3339(row.sealed_at),
            "checkpoint": Value::Null,
        },
    })
}

/// The checkpoint covering one event position; `number` 0 when none covers it yet.
#[derive(Debug, Clone, Row, Deserialize)]
pub struct Covering {
    layout_epoch: u32,
    sealed_partition: u32,
    sealed_offset: u64,
    number: u64,
    checkpoint_hash: String,
}

/// For each `(layout_epoch, sealed_partition, sealed_offset)` that `positions` selects, the first
/// checkpoint written after it in its partition: the one whose Merkle root covers it (an ASOF join).
pub fn covering_checkpoints_sql(positions: &str) -> String {
    format!(
        "SELECT e.layout_epoch AS layout_epoch, e.sealed_partition AS sealed_partition, \
                e.sealed_offset AS sealed_offset, c.number AS number, c.checkpoint_hash AS checkpoint_hash \
         FROM ({positions}) AS e \
         ASOF LEFT JOIN (SELECT layout_epoch, sealed_partition, sealed_offset AS checkpoint_offset, number, checkpoint_hash \
                         FROM tenant_checkpoints WHERE tenant_id = {{tenant:String}}) AS c \
         ON e.layout_epoch = c.layout_epoch AND e.sealed_partition = c.sealed_partition \
            AND e.sealed_offset < c.checkpoint_offset"
    )
}

/// Fills `integrity.checkpoint` of each event from `coverage`; events not covered yet keep
/// `null`.
pub fn attach_checkpoints(rows: &[EventRow], coverage: &[Covering], events: &mut [Value]) {
    let by_position: BTreeMap<(u32, u32, u64), &Covering> = coverage
        .iter()
        .filter(|c| c.number > 0)
        .map(|c| ((c.layout_epoch, c.sealed_partition, c.sealed_offset), c))
        .collect();
    for (row, event) in rows.iter().zip(events.iter_mut()) {
        if let Some(place) = by_position.get(&(row.layout_epoch, row.sealed_partition, row.sealed_offset)) {
            event["integrity"]["checkpoint"] = json!({
                "layout_epoch": row.layout_epoch,
                "partition": row.sealed_partition,
                "number": place.number,
                "checkpoint_hash": place.checkpoint_hash,
            });
        }
    }
}

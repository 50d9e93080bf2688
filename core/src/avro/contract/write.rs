//! Writing the event model in the contracts' binary layout.

use crate::avro::encode::Writer;
use crate::event::{ActorType, AuditEvent, OutcomeStatus};
use crate::sealed::{DataClass, SealedRecord};

/// Writes `event` in the current audit event contract (the Avro body, without framing).
pub fn encode_audit_event(event: &AuditEvent, out: &mut Writer) {
    out.str(&event.event_id);
    out.str(&event.tenant_id);
    out.long(event.occurred_at);
    out.str(&event.action);
    out.str(&event.actor.id);
    out.enum_index(
        ActorType::ALL
            .iter()
            .position(|k| *k == event.actor.kind)
            .unwrap_or_default(),
    );
    out.optional_str(event.actor.display_name.as_deref());
    out.optional_str(event.actor.authority.as_deref());
    out.optional_str(event.actor.on_behalf_of.as_deref());
    out.str(&event.resource.kind);
    out.str(&event.resource.id);
    out.optional_str(event.resource.path.as_deref());
    out.enum_index(
        OutcomeStatus::ALL
            .iter()
            .position(|s| *s == event.outcome.status)
            .unwrap_or_default(),
    );
    out.optional_str(event.outcome.reason_code.as_deref());
    out.optional_str(event.outcome.reason_text.as_deref());
    for optional in [
        &event.correlation_id,
        &event.causation_id,
        &event.trace_id,
        &event.span_id,
        &event.idempotency_key,
        &event.policy_version,
    ] {
        out.optional_str(optional.as_deref());
    }
    out.block(&event.evidence, |out, evidence| {
        out.str(&evidence.kind);
        out.str(&evidence.uri);
        out.optional_str(evidence.sha256.as_deref());
    });
    out.block(&event.changes, |out, change| {
        out.str(&change.field);
        out.optional_str(change.before.as_deref());
        out.optional_str(change.after.as_deref());
    });
    out.block(&event.attributes, |out, (key, value)| {
        out.str(key);
        out.str(value);
    });
    out.optional_str(event.session_id.as_deref());
}

/// Writes a record of the sealed topic (the Avro body, without framing).
pub fn encode_sealed_record(record: &SealedRecord, out: &mut Writer) {
    match record {
        SealedRecord::Event(sealed) => {
            out.long(0);
            encode_audit_event(&sealed.event, out);
            let classification = &sealed.classification;
            out.str(&classification.category);
            out.enum_index(
                DataClass::ALL
                    .iter()
                    .position(|c| *c == classification.data_class)
                    .unwrap_or_default(),
            );
            out.block(&classification.labels, |out, label| out.str(label));
            out.str(&classification.policy_version);
            out.block(&sealed.redactions, |out, redaction| {
                out.str(&redaction.path);
                out.str(&redaction.label);
                out.str(&redaction.method);
            });
            out.int(i32::try_from(sealed.seal.scheme).unwrap_or(i32::MAX));
            out.long(i64::try_from(sealed.seal.tenant_seq).unwrap_or(i64::MAX));
            out.str(&sealed.seal.prev_hash.to_hex());
            out.str(&sealed.seal.hash.to_hex());
            out.str(&sealed.seal.key_id);
            out.str(&sealed.source.topic);
            out.int(sealed.source.partition);
            out.long(sealed.source.offset);
            out.int(i32::try_from(sealed.source.schema_id).unwrap_or(i32::MAX));
            out.long(sealed.sealed_at);
        }
        SealedRecord::Checkpoint(checkpoint) => {
            out.long(1);
            out.int(i32::try_from(checkpoint.scheme).unwrap_or(i32::MAX));
            out.int(checkpoint.partition);
            out.long(i64::try_from(checkpoint.number).unwrap_or(i64::MAX));
            out.str(&checkpoint.prev_checkpoint_hash.to_hex());
            out.str(&checkpoint.entries_root.to_hex());
            out.long(i64::try_from(checkpoint.entry_count).unwrap_or(i64::MAX));
            out.str(&checkpoint.tenant_heads_root.to_hex());
            out.long(i64::try_from(checkpoint.tenant_count).unwrap_or(i64::MAX));
            out.long(checkpoint.source_offset);
            out.long(checkpoint.dlq_next_offset);
            out.long(checkpoint.created_at);
            out.str(&checkpoint.key_id);
            out.str(&checkpoint.checkpoint_hash.to_hex());
            out.str(&crate::digest::to_hex(&checkpoint.signature));
            out.block(&checkpoint.tenant_heads, |out, head| {
                out.str(&head.tenant_id);
                out.long(i64::try_from(head.seq).unwrap_or(i64::MAX));
                out.str(&head.hash.to_hex());
            });
            out.int(i32::try_from(checkpoint.epoch).unwrap_or(i32::MAX));
            out.int(i32::try_from(checkpoint.partitions).unwrap_or(i32::MAX));
            out.boolean(checkpoint.closes_epoch);
        }
    }
}

//! Building the event model from values decoded through a schema resolution plan.

use super::UNKNOWN_FIELD_PREFIX;
use crate::avro::value::Val;
use crate::digest::Digest;
use crate::event::{Actor, ActorType, AuditEvent, Change, Evidence, Outcome, OutcomeStatus, Resource};
use crate::sealed::{
    Checkpoint, Classification, DataClass, Redaction, Seal, SealedEvent, SealedRecord, SourceCoordinates, TenantHead,
};

/// A decoded value that does not have the shape the contract promises.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {problem}")]
pub struct ShapeError {
    pub field: &'static str,
    pub problem: &'static str,
}

fn shape(field: &'static str, problem: &'static str) -> ShapeError {
    ShapeError { field, problem }
}

fn string(field: &'static str, value: Val<'_>) -> Result<String, ShapeError> {
    match value {
        Val::Str(text) => Ok(text.into_owned()),
        _ => Err(shape(field, "expected a string")),
    }
}

fn optional_string(field: &'static str, value: Val<'_>) -> Result<Option<String>, ShapeError> {
    match value {
        Val::Null => Ok(None),
        Val::Str(text) => Ok(Some(text.into_owned())),
        Val::Union(_, inner) => optional_string(field, *inner),
        _ => Err(shape(field, "expected null or a string")),
    }
}

fn long(field: &'static str, value: &Val<'_>) -> Result<i64, ShapeError> {
    match value {
        Val::Long(n) => Ok(*n),
        _ => Err(shape(field, "expected a number")),
    }
}

fn unsigned(field: &'static str, value: &Val<'_>) -> Result<u64, ShapeError> {
    u64::try_from(long(field, value)?).map_err(|_| shape(field, "expected a non-negative number"))
}

fn digest(field: &'static str, value: Val<'_>) -> Result<Digest, ShapeError> {
    Digest::from_hex(&string(field, value)?).ok_or_else(|| shape(field, "expected 64 hex characters"))
}

fn record<'a, const N: usize>(field: &'static str, value: Val<'a>) -> Result<[Val<'a>; N], ShapeError> {
    match value {
        Val::Record(fields) => {
            let mut fields = fields;
            fields.truncate(N);
            fields.try_into().map_err(|_| shape(field, "record has too few fields"))
        }
        _ => Err(shape(field, "expected a record")),
    }
}

fn array<T>(
    field: &'static str,
    value: Val<'_>,
    item: impl Fn(Val<'_>) -> Result<T, ShapeError>,
) -> Result<Vec<T>, ShapeError> {
    match value {
        Val::Array(items) => items.into_iter().map(item).collect(),
        _ => Err(shape(field, "expected an array")),
    }
}

fn symbol<T>(field: &'static str, value: &Val<'_>, all: &[T]) -> Result<T, ShapeError>
where
    T: Copy,
{
    match value {
        Val::Enum(index) => all
            .get(usize::try_from(*index).unwrap_or(usize::MAX))
            .copied()
            .ok_or_else(|| shape(field, "unknown symbol")),
        _ => Err(shape(field, "expected an enum symbol")),
    }
}

/// Builds an event from a value decoded with the audit event contract as reader schema (and
/// `capture_unknown`): writer fields this contract does not know are kept as attributes
/// `schema.<field>`, so an event from a newer producer loses nothing.
pub fn audit_event_from_val(value: Val<'_>) -> Result<AuditEvent, ShapeError> {
    let Val::Record(mut fields) = value else {
        return Err(shape("event", "expected a record"));
    };
    let unknown = if fields.len() > 17 { fields.pop() } else { None };
    let [
        event_id,
        tenant_id,
        occurred_at,
        action,
        actor,
        resource,
        outcome,
        correlation_id,
        causation_id,
        trace_id,
        span_id,
        idempotency_key,
        policy_version,
        evidence,
        changes,
        attributes,
        session_id,
    ]: [Val<'_>; 17] = fields
        .try_into()
        .map_err(|_| shape("event", "record has the wrong number of fields"))?;
    let [actor_id, actor_type, display_name, authority, on_behalf_of] = record("actor", actor)?;
    let [resource_type, resource_id, resource_path] = record("resource", resource)?;
    let [status, reason_code, reason_text] = record("outcome", outcome)?;
    let mut attributes = match attributes {
        Val::Map(entries) => entries
            .into_iter()
            .map(|(key, value)| Ok((key.into_owned(), string("attributes", value)?)))
            .collect::<Result<Vec<_>, ShapeError>>()?,
        _ => return Err(shape("attributes", "expected a map")),
    };
    if let Some(Val::Map(extra)) = unknown {
        for (name, value) in extra {
            let text = match value {
                Val::Str(text) => text.into_owned(),
                Val::Union(_, inner) if matches!(*inner, Val::Str(_)) => {
                    let Val::Str(text) = *inner else { unreachable!() };
                    text.into_owned()
                }
                other => other.render(),
            };
            attributes.push((format!("{UNKNOWN_FIELD_PREFIX}{name}"), text));
        }
    }
    Ok(AuditEvent {
        event_id: string("event_id", event_id)?,
        tenant_id: string("tenant_id", tenant_id)?,
        occurred_at: long("occurred_at", &occurred_at)?,
        action: string("action", action)?,
        actor: Actor {
            id: string("actor.id", actor_id)?,
            kind: symbol("actor.type", &actor_type, &ActorType::ALL)?,
            display_name: optional_string("actor.display_name", display_name)?,
            authority: optional_string("actor.authority", authority)?,
            on_behalf_of: optional_string("actor.on_behalf_of", on_behalf_of)?,
        },
        resource: Resource {
            kind: string("resource.type", resource_type)?,
            id: string("resource.id", resource_id)?,
            path: optional_string("resource.path", resource_path)?,
        },
        outcome: Outcome {
            status: symbol("outcome.status", &status, &OutcomeStatus::ALL)?,
            reason_code: optional_string("outcome.reason_code", reason_code)?,
            reason_text: optional_string("outcome.reason_text", reason_text)?,
        },
        correlation_id: optional_string("correlation_id", correlation_id)?,
        causation_id: optional_string("causation_id", causation_id)?,
        trace_id: optional_string("trace_id", trace_id)?,
        span_id: optional_string("span_id", span_id)?,
        idempotency_key: optional_string("idempotency_key", idempotency_key)?,
        policy_version: optional_string("policy_version", policy_version)?,
        evidence: array("evidence", evidence, |item| {
            let [kind, uri, sha256] = record("evidence", item)?;
            Ok(Evidence {
                kind: string("evidence.kind", kind)?,
                uri: string("evidence.uri", uri)?,
                sha256: optional_string("evidence.sha256", sha256)?,
            })
        })?,
        changes: array("changes", changes, |item| {
            let [field, before, after] = record("changes", item)?;
            Ok(Change {
                field: string("changes.field", field)?,
                before: optional_string("changes.before", before)?,
                after: optional_string("changes.after", after)?,
            })
        })?,
        attributes,
        session_id: optional_string("session_id", session_id)?,
    })
}

/// Builds a sealed record from a value decoded with the sealed record contract as reader.
pub fn sealed_record_from_val(value: Val<'_>) -> Result<SealedRecord, ShapeError> {
    let Val::Union(branch, inner) = value else {
        return Err(shape("record", "expected the sealed record union"));
    };
    match branch {
        0 => {
            let [event, classification, redactions, seal, source, sealed_at] = record("sealed event", *inner)?;
            let [category, data_class, labels, policy_version] = record("classification", classification)?;
            let [scheme, tenant_seq, prev_hash, hash, key_id] = record("seal", seal)?;
            let [topic, partition, offset, schema_id] = record("source", source)?;
            Ok(SealedRecord::Event(Box::new(SealedEvent {
                event: audit_event_from_val(event)?,
                classification: Classification {
                    category: string("classification.category", category)?,
                    data_class: symbol("classification.data_class", &data_class, &DataClass::ALL)?,
                    labels: array("classification.labels", labels, |l| string("classification.labels", l))?,
                    policy_version: string("classification.policy_version", policy_version)?,
                },
                redactions: array("redactions", redactions, |item| {
                    let [path, label, method] = record("redactions", item)?;
                    Ok(Redaction {
                        path: string("redactions.path", path)?,
                        label: string("redactions.label", label)?,
                        method: string("redactions.method", method)?,
                    })
                })?,
                seal: Seal {
                    scheme: u32::try_from(long("seal.scheme", &scheme)?)
                        .map_err(|_| shape("seal.scheme", "out of range"))?,
                    tenant_seq: unsigned("seal.tenant_seq", &tenant_seq)?,
                    prev_hash: digest("seal.prev_hash", prev_hash)?,
                    hash: digest("seal.hash", hash)?,
                    key_id: string("seal.key_id", key_id)?,
                },
                source: SourceCoordinates {
                    topic: string("source.topic", topic)?,
                    partition: i32::try_from(long("source.partition", &partition)?)
                        .map_err(|_| shape("source.partition", "out of range"))?,
                    offset: long("source.offset", &offset)?,
                    schema_id: u32::try_from(long("source.schema_id", &schema_id)?)
                        .map_err(|_| shape("source.schema_id", "out of range"))?,
                },
                sealed_at: long("sealed_at", &sealed_at)?,
            })))
        }
        1 => {
            let [
                scheme,
                partition,
                number,
                prev,
                entries_root,
                entry_count,
                heads_root,
                tenant_count,
                source_offset,
                dlq_next_offset,
                created_at,
                key_id,
                checkpoint_hash,
                signature,
                heads,
                epoch,
                partitions,
                closes_epoch,
            ] = record("checkpoint", *inner)?;
            Ok(SealedRecord::Checkpoint(Box::new(Checkpoint {
                scheme: u32::try_from(long("checkpoint.scheme", &scheme)?)
                    .map_err(|_| shape("checkpoint.scheme", "out of range"))?,
                partition: i32::try_from(long("checkpoint.partition", &partition)?)
                    .map_err(|_| shape("checkpoint.partition", "out of range"))?,
                number: unsigned("checkpoint.number", &number)?,
                prev_checkpoint_hash: digest("checkpoint.prev_checkpoint_hash", prev)?,
                entries_root: digest("checkpoint.entries_root", entries_root)?,
                entry_count: unsigned("checkpoint.entry_count", &entry_count)?,
                tenant_heads_root: digest("checkpoint.tenant_heads_root", heads_root)?,
                tenant_count: unsigned("checkpoint.tenant_count", &tenant_count)?,
                source_offset: long("checkpoint.source_offset", &source_offset)?,
                dlq_next_offset: long("checkpoint.dlq_next_offset", &dlq_next_offset)?,
                created_at: long("checkpoint.created_at", &created_at)?,
                epoch: u32::try_from(long("checkpoint.epoch", &epoch)?)
                    .map_err(|_| shape("checkpoint.epoch", "out of range"))?,
                partitions: u32::try_from(long("checkpoint.partitions", &partitions)?)
                    .map_err(|_| shape("checkpoint.partitions", "out of range"))?,
                closes_epoch: matches!(closes_epoch, Val::Bool(true)),
                key_id: string("checkpoint.key_id", key_id)?,
                checkpoint_hash: digest("checkpoint.checkpoint_hash", checkpoint_hash)?,
                signature: crate::digest::from_hex(&string("checkpoint.signature", signature)?)
                    .ok_or_else(|| shape("checkpoint.signature", "expected hex"))?,
                tenant_heads: array("checkpoint.tenant_heads", heads, |item| {
                    let [tenant_id, seq, hash] = record("checkpoint.tenant_heads", item)?;
                    Ok(TenantHead {
                        tenant_id: string("tenant_heads.tenant_id", tenant_id)?,
                        seq: unsigned("tenant_heads.seq", &seq)?,
                        hash: digest("tenant_heads.hash", hash)?,
                    })
                })?,
            })))
        }
        _ => Err(shape("record", "unknown branch of the sealed record union")),
    }
}

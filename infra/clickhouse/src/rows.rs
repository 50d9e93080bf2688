//! The rows of sealtrail's tables and their mapping to the core model, both ways: the sink
//! writes sealed events as rows, the verifier reads rows back as sealed events.

use clickhouse::Row;
use sealtrail_core::digest::{Digest, from_hex, to_hex};
use sealtrail_core::event::{Actor, ActorType, AuditEvent, Change, Evidence, Outcome, OutcomeStatus, Resource};
use sealtrail_core::sealed::{
    Checkpoint, Classification, DataClass, Redaction, Seal, SealedEvent, SourceCoordinates, TenantHead,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A row of `events`.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct EventRow {
    pub tenant_id: String,
    pub seq: u64,
    pub event_id: String,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    pub occurred_at: OffsetDateTime,
    pub action: String,
    pub actor_id: String,
    pub actor_type: String,
    pub actor_display_name: Option<String>,
    pub actor_authority: Option<String>,
    pub actor_on_behalf_of: Option<String>,
    pub resource_type: String,
    pub resource_id: String,
    pub resource_path: Option<String>,
    pub outcome: String,
    pub reason_code: Option<String>,
    pub reason_text: Option<String>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub policy_version: Option<String>,
    pub session_id: Option<String>,
    pub evidence: Vec<(String, String, Option<String>)>,
    pub changes: Vec<(String, Option<String>, Option<String>)>,
    pub attributes: Vec<(String, String)>,
    pub category: String,
    pub data_class: String,
    pub labels: Vec<String>,
    pub seal_policy_version: String,
    pub redactions: Vec<(String, String, String)>,
    pub scheme: u8,
    pub prev_hash: String,
    pub hash: String,
    pub key_id: String,
    pub source_topic: String,
    pub source_partition: u32,
    pub source_offset: u64,
    pub schema_id: u32,
    pub sealed_partition: u32,
    pub sealed_offset: u64,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    pub sealed_at: OffsetDateTime,
    /// The partition layout epoch of `sealed_partition` (see `sealtrail_core::layout`).
    pub layout_epoch: u32,
}

/// A row of `checkpoints`.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct CheckpointRow {
    pub sealed_partition: u32,
    pub number: u64,
    pub scheme: u8,
    pub prev_checkpoint_hash: String,
    pub entries_root: String,
    pub entry_count: u64,
    pub tenant_heads_root: String,
    pub tenant_count: u64,
    pub source_offset: i64,
    pub dlq_next_offset: i64,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    pub created_at: OffsetDateTime,
    pub key_id: String,
    pub checkpoint_hash: String,
    pub signature: String,
    pub tenant_heads: Vec<(String, u64, String)>,
    pub sealed_offset: u64,
    pub layout_epoch: u32,
    pub layout_partitions: u32,
    pub closes_epoch: bool,
}

/// A row that does not map back to the model (a column was edited into something invalid).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{table} row ({key}): column {column} holds an invalid value")]
pub struct RowError {
    pub table: &'static str,
    pub key: String,
    pub column: &'static str,
}

/// A row of `tombstones`: what remains of an event a retention run deleted.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct TombstoneRow {
    pub tenant_id: String,
    pub seq: u64,
    pub event_id: String,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    pub occurred_at: OffsetDateTime,
    pub category: String,
    pub prev_hash: String,
    pub hash: String,
    pub sealed_partition: u32,
    pub sealed_offset: u64,
    pub policy_id: String,
    pub run_id: String,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    pub purged_at: OffsetDateTime,
    pub layout_epoch: u32,
}

impl TombstoneRow {
    /// The tombstone of an event row, which it consumes (nothing is copied).
    pub fn of(row: EventRow, policy_id: &str, run_id: &str, purged_at: OffsetDateTime) -> Self {
        Self {
            tenant_id: row.tenant_id,
            seq: row.seq,
            event_id: row.event_id,
            occurred_at: row.occurred_at,
            category: row.category,
            prev_hash: row.prev_hash,
            hash: row.hash,
            sealed_partition: row.sealed_partition,
            sealed_offset: row.sealed_offset,
            policy_id: policy_id.to_owned(),
            run_id: run_id.to_owned(),
            purged_at,
            layout_epoch: row.layout_epoch,
        }
    }
}

pub(crate) fn time_of(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl EventRow {
    /// The row of a sealed event; the event's values move into the row, nothing is copied.
    /// The row of a sealed event read at `sealed_offset` of `sealed_partition` in layout epoch
    /// `layout_epoch`.
    pub fn from_sealed(sealed: SealedEvent, layout_epoch: u32, sealed_partition: i32, sealed_offset: i64) -> Self {
        let SealedEvent {
            event,
            classification,
            redactions,
            seal,
            source,
            sealed_at,
        } = sealed;
        Self {
            tenant_id: event.tenant_id,
            seq: seal.tenant_seq,
            event_id: event.event_id,
            occurred_at: time_of(event.occurred_at),
            action: event.action,
            actor_id: event.actor.id,
            actor_type: event.actor.kind.symbol().to_owned(),
            actor_display_name: event.actor.display_name,
            actor_authority: event.actor.authority,
            actor_on_behalf_of: event.actor.on_behalf_of,
            resource_type: event.resource.kind,
            resource_id: event.resource.id,
            resource_path: event.resource.path,
            outcome: event.outcome.status.symbol().to_owned(),
            reason_code: event.outcome.reason_code,
            reason_text: event.outcome.reason_text,
            correlation_id: event.correlation_id,
            causation_id: event.causation_id,
            trace_id: event.trace_id,
            span_id: event.span_id,
            idempotency_key: event.idempotency_key,
            policy_version: event.policy_version,
            session_id: event.session_id,
            evidence: event.evidence.into_iter().map(|e| (e.kind, e.uri, e.sha256)).collect(),
            changes: event
                .changes
                .into_iter()
                .map(|c| (c.field, c.before, c.after))
                .collect(),
            attributes: event.attributes,
            category: classification.category,
            data_class: classification.data_class.symbol().to_owned(),
            labels: classification.labels,
            seal_policy_version: classification.policy_version,
            redactions: redactions.into_iter().map(|r| (r.path, r.label, r.method)).collect(),
            scheme: u8::try_from(seal.scheme).unwrap_or(u8::MAX),
            prev_hash: seal.prev_hash.to_hex(),
            hash: seal.hash.to_hex(),
            key_id: seal.key_id,
            source_topic: source.topic,
            source_partition: u32::try_from(source.partition).unwrap_or_default(),
            source_offset: u64::try_from(source.offset).unwrap_or_default(),
            schema_id: source.schema_id,
            sealed_partition: u32::try_from(sealed_partition).unwrap_or_default(),
            sealed_offset: u64::try_from(sealed_offset).unwrap_or_default(),
            sealed_at: time_of(sealed_at),
            layout_epoch,
        }
    }

    /// The row's canonical entry, and whether it hashes (after the row's `prev_hash`) to the row's
    /// `hash`: `false` means the row was altered after it was sealed.
    pub fn checked_entry(&self) -> Result<(Vec<u8>, bool), RowError> {
        self.clone().into_checked_entry()
    }

    /// [`Self::checked_entry`] without copying the row.
    pub fn into_checked_entry(self) -> Result<(Vec<u8>, bool), RowError> {
        let sealed = self.into_sealed()?;
        let entry = sealtrail_core::canonical::entry(
            &sealed.event.tenant_id,
            sealed.seal.tenant_seq,
            &sealed.event,
            &sealed.classification,
            &sealed.redactions,
        );
        let intact = sealtrail_core::chain::entry_hash(&sealed.seal.prev_hash, &entry) == sealed.seal.hash;
        Ok((entry, intact))
    }

    /// The sealed event the row stores (a copy; see [`Self::into_sealed`]).
    pub fn to_sealed(&self) -> Result<SealedEvent, RowError> {
        self.clone().into_sealed()
    }

    /// The sealed event the row stores, moving its values instead of copying them: an export
    /// rebuilds a million of these.
    pub fn into_sealed(self) -> Result<SealedEvent, RowError> {
        let key = format!("tenant {} seq {}", self.tenant_id, self.seq);
        let invalid = |column: &'static str| RowError {
            table: "events",
            key: key.clone(),
            column,
        };
        let digest = |text: &str, column| Digest::from_hex(text).ok_or_else(|| invalid(column));
        Ok(SealedEvent {
            seal: Seal {
                scheme: u32::from(self.scheme),
                tenant_seq: self.seq,
                prev_hash: digest(&self.prev_hash, "prev_hash")?,
                hash: digest(&self.hash, "hash")?,
                key_id: self.key_id,
            },
            source: SourceCoordinates {
                topic: self.source_topic,
                partition: i32::try_from(self.source_partition).map_err(|_| invalid("source_partition"))?,
                offset: i64::try_from(self.source_offset).map_err(|_| invalid("source_offset"))?,
                schema_id: self.schema_id,
            },
            sealed_at: crate::unix_ms(self.sealed_at),
            classification: Classification {
                category: self.category,
                data_class: DataClass::from_symbol(&self.data_class).ok_or_else(|| invalid("data_class"))?,
                labels: self.labels,
                policy_version: self.seal_policy_version,
            },
            redactions: self
                .redactions
                .into_iter()
                .map(|(path, label, method)| Redaction { path, label, method })
                .collect(),
            event: AuditEvent {
                event_id: self.event_id,
                tenant_id: self.tenant_id,
                occurred_at: crate::unix_ms(self.occurred_at),
                action: self.action,
                actor: Actor {
                    id: self.actor_id,
                    kind: ActorType::from_symbol(&self.actor_type).ok_or_else(|| invalid("actor_type"))?,
                    display_name: self.actor_display_name,
                    authority: self.actor_authority,
                    on_behalf_of: self.actor_on_behalf_of,
                },
                resource: Resource {
                    kind: self.resource_type,
                    id: self.resource_id,
                    path: self.resource_path,
                },
                outcome: Outcome {
                    status: OutcomeStatus::from_symbol(&self.outcome).ok_or_else(|| invalid("outcome"))?,
                    reason_code: self.reason_code,
                    reason_text: self.reason_text,
                },
                correlation_id: self.correlation_id,
                causation_id: self.causation_id,
                trace_id: self.trace_id,
                span_id: self.span_id,
                idempotency_key: self.idempotency_key,
                policy_version: self.policy_version,
                evidence: self
                    .evidence
                    .into_iter()
                    .map(|(kind, uri, sha256)| Evidence { kind, uri, sha256 })
                    .collect(),
                changes: self
                    .changes
                    .into_iter()
                    .map(|(field, before, after)| Change { field, before, after })
                    .collect(),
                attributes: self.attributes,
                session_id: self.session_id,
            },
        })
    }
}

impl CheckpointRow {
    pub fn from_checkpoint(checkpoint: &Checkpoint, sealed_offset: i64) -> Self {
        Self {
            sealed_partition: u32::try_from(checkpoint.partition).unwrap_or_default(),
            number: checkpoint.number,
            scheme: u8::try_from(checkpoint.scheme).unwrap_or(u8::MAX),
            prev_checkpoint_hash: checkpoint.prev_checkpoint_hash.to_hex(),
            entries_root: checkpoint.entries_root.to_hex(),
            entry_count: checkpoint.entry_count,
            tenant_heads_root: checkpoint.tenant_heads_root.to_hex(),
            tenant_count: checkpoint.tenant_count,
            source_offset: checkpoint.source_offset,
            dlq_next_offset: checkpoint.dlq_next_offset,
            created_at: time_of(checkpoint.created_at),
            key_id: checkpoint.key_id.clone(),
            checkpoint_hash: checkpoint.checkpoint_hash.to_hex(),
            signature: to_hex(&checkpoint.signature),
            tenant_heads: checkpoint
                .tenant_heads
                .iter()
                .map(|h| (h.tenant_id.clone(), h.seq, h.hash.to_hex()))
                .collect(),
            sealed_offset: u64::try_from(sealed_offset).unwrap_or_default(),
            layout_epoch: checkpoint.epoch,
            layout_partitions: checkpoint.partitions,
            closes_epoch: checkpoint.closes_epoch,
        }
    }

    pub fn to_checkpoint(&self) -> Result<Checkpoint, RowError> {
        let invalid = |column: &'static str| RowError {
            table: "checkpoints",
            key: format!("partition {} number {}", self.sealed_partition, self.number),
            column,
        };
        let digest = |text: &str, column| Digest::from_hex(text).ok_or_else(|| invalid(column));
        Ok(Checkpoint {
            scheme: u32::from(self.scheme),
            partition: i32::try_from(self.sealed_partition).map_err(|_| invalid("sealed_partition"))?,
            number: self.number,
            prev_checkpoint_hash: digest(&self.prev_checkpoint_hash, "prev_checkpoint_hash")?,
            entries_root: digest(&self.entries_root, "entries_root")?,
            entry_count: self.entry_count,
            tenant_heads_root: digest(&self.tenant_heads_root, "tenant_heads_root")?,
            tenant_count: self.tenant_count,
            source_offset: self.source_offset,
            dlq_next_offset: self.dlq_next_offset,
            created_at: crate::unix_ms(self.created_at),
            epoch: self.layout_epoch,
            partitions: self.layout_partitions,
            closes_epoch: self.closes_epoch,
            key_id: self.key_id.clone(),
            checkpoint_hash: digest(&self.checkpoint_hash, "checkpoint_hash")?,
            signature: from_hex(&self.signature).ok_or_else(|| invalid("signature"))?,
            tenant_heads: self
                .tenant_heads
                .iter()
                .map(|(tenant_id, seq, hash)| {
                    Ok(TenantHead {
                        tenant_id: tenant_id.clone(),
                        seq: *seq,
                        hash: digest(hash, "tenant_heads")?,
                    })
                })
                .collect::<Result<_, RowError>>()?,
        })
    }
}

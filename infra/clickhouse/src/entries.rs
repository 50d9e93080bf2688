//! `event_entries`: each sealed event's canonical entry as the seal hashed it, next to the few
//! columns an export selects and places lines by, ordered by `(tenant_id, seq)`.
//!
//! An export is the chain in sequence order with each entry verbatim. From `events` it must sort
//! the tenant's rows (that table is ordered by time for analysts), read every column, and rebuild
//! and re-hash each entry; from here it streams in order and only re-hashes. Nothing here is
//! trusted: the export re-hashes every entry and checks every link and proof, as it does for rows
//! of `events`. Retention deletes these rows with their events.

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use sealtrail_core::sealed::SealedEvent;

use crate::rows::time_of;

/// A row of `event_entries`.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct EntryRow {
    pub tenant_id: String,
    pub seq: u64,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    pub occurred_at: OffsetDateTime,
    pub action: String,
    pub category: String,
    pub actor_id: String,
    pub resource_type: String,
    pub resource_id: String,
    pub prev_hash: String,
    pub hash: String,
    pub layout_epoch: u32,
    pub sealed_partition: u32,
    pub sealed_offset: u64,
    /// The canonical entry (RFC 8785 JSON, docs/integrity.md) the event's hash covers.
    pub entry: String,
}

/// A sealed event whose entry does not hash to its own seal: it is not stored.
#[derive(Debug, thiserror::Error)]
#[error("event seq {seq} of tenant {tenant} does not hash to its seal; its entry is not stored")]
pub struct EntryError {
    pub tenant: String,
    pub seq: u64,
}

impl EntryRow {
    /// The entry of `sealed`, about to be stored at the given layout epoch, sealed partition and
    /// offset (as [`crate::EventRow::from_sealed`] stores its row), checked against the event's seal.
    pub fn from_sealed(
        sealed: &SealedEvent,
        (layout_epoch, sealed_partition, sealed_offset): (u32, i32, i64),
    ) -> Result<Self, EntryError> {
        let SealedEvent {
            event,
            classification,
            redactions,
            seal,
            ..
        } = sealed;
        let altered = || EntryError {
            tenant: event.tenant_id.clone(),
            seq: seal.tenant_seq,
        };
        let entry =
            sealtrail_core::canonical::entry(&event.tenant_id, seal.tenant_seq, event, classification, redactions);
        if sealtrail_core::chain::entry_hash(&seal.prev_hash, &entry) != seal.hash {
            return Err(altered());
        }
        Ok(Self {
            tenant_id: event.tenant_id.clone(),
            seq: seal.tenant_seq,
            occurred_at: time_of(event.occurred_at),
            action: event.action.clone(),
            category: classification.category.clone(),
            actor_id: event.actor.id.clone(),
            resource_type: event.resource.kind.clone(),
            resource_id: event.resource.id.clone(),
            prev_hash: seal.prev_hash.to_hex(),
            hash: seal.hash.to_hex(),
            layout_epoch,
            sealed_partition: u32::try_from(sealed_partition).unwrap_or_default(),
            sealed_offset: u64::try_from(sealed_offset).unwrap_or_default(),
            // The canonical encoder writes JSON text only; a lossy conversion would change the hash.
            entry: String::from_utf8(entry).map_err(|_| altered())?,
        })
    }

    /// Whether the stored entry hashes (after `prev_hash`) to `hash`.
    pub fn intact(&self) -> bool {
        let (Some(prev), Some(hash)) = (
            sealtrail_core::digest::Digest::from_hex(&self.prev_hash),
            sealtrail_core::digest::Digest::from_hex(&self.hash),
        ) else {
            return false;
        };
        sealtrail_core::chain::entry_hash(&prev, self.entry.as_bytes()) == hash
    }
}

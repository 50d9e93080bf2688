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

use crate::{EventRow, RowError};

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

/// An event row whose rebuilt entry does not hash to the row's own hash: it is not stored.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error(transparent)]
    Row(#[from] RowError),
    #[error("event seq {seq} of tenant {tenant} does not hash to its recorded hash; its entry is not stored")]
    Altered { tenant: String, seq: u64 },
}

impl EntryRow {
    /// The entry of `row`, rebuilt and checked against the row's hash.
    pub fn of(row: &EventRow) -> Result<Self, EntryError> {
        let (entry, intact) = row.checked_entry()?;
        if !intact {
            return Err(EntryError::Altered {
                tenant: row.tenant_id.clone(),
                seq: row.seq,
            });
        }
        Ok(Self {
            tenant_id: row.tenant_id.clone(),
            seq: row.seq,
            occurred_at: row.occurred_at,
            action: row.action.clone(),
            category: row.category.clone(),
            actor_id: row.actor_id.clone(),
            resource_type: row.resource_type.clone(),
            resource_id: row.resource_id.clone(),
            prev_hash: row.prev_hash.clone(),
            hash: row.hash.clone(),
            layout_epoch: row.layout_epoch,
            sealed_partition: row.sealed_partition,
            sealed_offset: row.sealed_offset,
            // The canonical encoder writes JSON text only; a lossy conversion would change the hash.
            entry: String::from_utf8(entry).map_err(|_| EntryError::Altered {
                tenant: row.tenant_id.clone(),
                seq: row.seq,
            })?,
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

//! Where an export reads the events of its stretch from, in sequence order, each entry re-hashed
//! before it is written.
//!
//! `event_entries` when it holds exactly the stretch's events: it is ordered by sequence and
//! stores each entry as sealed, so the read streams and nothing is rebuilt. Otherwise `events`
//! (rows written before that table existed, or a stop between the sink's two inserts or
//! retention's two deletes), sorted by sequence, with each entry rebuilt from its columns.

use clickhouse::query::RowCursor;
use sealtrail_clickhouse::{EntryRow, EventRow, unix_ms};
use sealtrail_query::scope::{EventScope, Window};

use super::ExportError;

/// An event of the stretch, as a line needs it.
pub(super) struct StretchEvent {
    pub(super) seq: u64,
    pub(super) prev_hash: String,
    pub(super) hash: String,
    /// Layout epoch, sealed partition, sealed offset.
    pub(super) place: (u32, u32, u64),
    /// The canonical entry; it hashes (after `prev_hash`) to `hash`.
    pub(super) entry: Vec<u8>,
    /// In the scope's window and matching its exact-match fields (not its SQL filter).
    pub(super) in_scope: bool,
}

pub(super) enum StretchEvents {
    Entries(RowCursor<EntryRow>),
    Rebuilt(RowCursor<EventRow>),
}

#[derive(Debug, PartialEq, Eq, clickhouse::Row, serde::Deserialize)]
struct Held {
    rows: u64,
    seq_sum: u64,
    seq_hash: u64,
}

/// The sequences a table holds in the stretch. Distinct: a sink's rewind repairs lost events
/// with their entries again, so an entry may be stored twice (and is read once).
const HELD_SQL: &str = "SELECT count() AS rows, sum(seq) AS seq_sum, groupBitXor(sipHash64(seq)) AS seq_hash \
     FROM (SELECT DISTINCT seq FROM ? WHERE tenant_id = {tenant:String} AND seq >= {first:UInt64} AND seq <= {last:UInt64})";

impl StretchEvents {
    /// Opens the stretch `first..=last` of `tenant`'s chain.
    pub(super) async fn open(
        client: &clickhouse::Client,
        tenant: &str,
        (first, last): (u64, u64),
    ) -> Result<Self, ExportError> {
        let query = |sql: &str| {
            client
                .query(sql)
                .param("tenant", tenant)
                .param("first", first)
                .param("last", last)
        };
        let held = |table: &'static str| {
            query(HELD_SQL)
                .bind(clickhouse::sql::Identifier(table))
                .fetch_one::<Held>()
        };
        if held("event_entries").await? == held("events").await? {
            let sql = "SELECT ?fields FROM event_entries WHERE tenant_id = {tenant:String} \
                       AND seq >= {first:UInt64} AND seq <= {last:UInt64} ORDER BY seq LIMIT 1 BY seq";
            return Ok(Self::Entries(query(sql).fetch::<EntryRow>()?));
        }
        let sql = "SELECT ?fields FROM events WHERE tenant_id = {tenant:String} \
                   AND seq >= {first:UInt64} AND seq <= {last:UInt64} ORDER BY seq";
        Ok(Self::Rebuilt(query(sql).fetch::<EventRow>()?))
    }

    /// Whether the entries are read as stored (`false`: rebuilt from `events`).
    pub(super) fn stored(&self) -> bool {
        matches!(self, Self::Entries(_))
    }

    /// The next event, its entry checked against its hash: a row altered in ClickHouse is an
    /// error, never a line.
    pub(super) async fn next(
        &mut self,
        tenant: &str,
        scope: &EventScope,
        window: &Window,
    ) -> Result<Option<StretchEvent>, ExportError> {
        let in_window = |occurred_at| (window.from_ms..window.to_ms).contains(&unix_ms(occurred_at));
        let altered = |seq: u64| {
            ExportError::RootMismatch(format!(
                "event seq {seq} of tenant {tenant} in ClickHouse does not hash to its recorded hash; run `sealtrail verify`"
            ))
        };
        match self {
            Self::Entries(cursor) => {
                let Some(row) = cursor.next().await? else {
                    return Ok(None);
                };
                if !row.intact() {
                    return Err(altered(row.seq));
                }
                let in_scope = in_window(row.occurred_at) && scope.matches_entry(&row);
                Ok(Some(StretchEvent {
                    seq: row.seq,
                    place: (row.layout_epoch, row.sealed_partition, row.sealed_offset),
                    in_scope,
                    entry: row.entry.into_bytes(),
                    prev_hash: row.prev_hash,
                    hash: row.hash,
                }))
            }
            Self::Rebuilt(cursor) => {
                let Some(row) = cursor.next().await? else {
                    return Ok(None);
                };
                let in_scope = in_window(row.occurred_at) && scope.matches(&row);
                let (seq, place) = (row.seq, (row.layout_epoch, row.sealed_partition, row.sealed_offset));
                let (prev_hash, hash) = (row.prev_hash.clone(), row.hash.clone());
                let (entry, intact) = row
                    .into_checked_entry()
                    .map_err(|e| ExportError::Inconsistent(e.to_string()))?;
                if !intact {
                    return Err(altered(seq));
                }
                Ok(Some(StretchEvent {
                    seq,
                    prev_hash,
                    hash,
                    place,
                    entry,
                    in_scope,
                }))
            }
        }
    }
}

//! What the sink asks of its store and writes into it: how far each partition is stored, which
//! rows a rewind finds present, and inserts deduplicated by token. ClickHouse in production;
//! the unit tests' memory store keeps the same promises.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sealtrail_clickhouse::{CheckpointRow, ClickHouseSettings, EntryRow, EventRow};
use tokio::runtime::Handle;

use crate::batch::OffsetSpan;

/// The tables the sink reads positions from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Events,
    /// The stored entries of events (an insert writes them just before the events).
    EventEntries,
    /// Events purged by retention: a tombstone stands for its event.
    Tombstones,
    Checkpoints,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::EventEntries => "event_entries",
            Self::Tombstones => "tombstones",
            Self::Checkpoints => "checkpoints",
        }
    }
}

/// Where sealed rows are projected. Every call may fail and is retried by the caller; an insert
/// retried with the same token must land once. Several partitions' inserts may run at once, from
/// threads of their own.
pub trait SinkStore: Sync {
    /// The largest sealed offset of `partition` in `table` (-1 for none).
    fn stored_through(&self, table: Table, partition: i32) -> Result<i64, String>;
    /// The sealed offsets of `partition` within `span` that `table` holds, in order.
    fn stored_offsets(&self, table: Table, partition: i32, span: OffsetSpan) -> Result<Vec<u64>, String>;
    /// Inserts `rows` and the stored `entries` of (some of) them, the entries first.
    fn insert_events(&self, rows: &[&EventRow], entries: &[&EntryRow], token: &str) -> Result<(), String>;
    fn insert_checkpoints(&self, rows: &[&CheckpointRow], token: &str) -> Result<(), String>;
    /// Ends the inserts into `partitions` that may still be running in the store, sent by this
    /// sink or another instance (one that stopped, or lost the partitions, while an insert went
    /// unanswered), and waits until each has landed or been cancelled. Called before reading what
    /// the store holds of a partition: an insert landing after that read would store rows twice.
    fn settle(&self, partitions: &[i32]) -> Result<(), String>;
}

/// How long one ClickHouse call may take. A server that accepts connections but does not answer
/// (frozen, overloaded, behind a broken network) must be retried like one that refuses them, or
/// the sink would wait forever with its partitions held.
const CLICKHOUSE_CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// The start of every sink insert's query id; the rest names its layout epoch and partitions
/// (`sealtrail-sink/e1/p0.3/...`), which is how [`SinkStore::settle`] finds it.
const QUERY_ID_PREFIX: &str = "sealtrail-sink";

/// The sealed rows of one layout epoch in ClickHouse.
pub struct ClickHouseStore {
    client: clickhouse::Client,
    runtime: Handle,
    layout_epoch: u32,
}

impl std::fmt::Debug for ClickHouseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseStore")
            .field("layout_epoch", &self.layout_epoch)
            .finish_non_exhaustive()
    }
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct Stored {
    rows: u64,
    max_offset: u64,
}

impl ClickHouseStore {
    pub fn new(settings: &ClickHouseSettings, runtime: Handle, layout_epoch: u32) -> Self {
        Self {
            client: settings.client(),
            runtime,
            layout_epoch,
        }
    }

    /// Runs one ClickHouse call on the runtime, giving up after `CLICKHOUSE_CALL_TIMEOUT`.
    fn bounded<T>(&self, call: impl Future<Output = Result<T, clickhouse::error::Error>>) -> Result<T, String> {
        self.runtime
            .block_on(async {
                tokio::time::timeout(CLICKHOUSE_CALL_TIMEOUT, call)
                    .await
                    .unwrap_or(Err(clickhouse::error::Error::TimedOut))
            })
            .map_err(|error| error.to_string())
    }
}

impl ClickHouseStore {
    /// Inserts `rows` into `table` in one insert, deduplicated by `token`, under a query id that
    /// names the sealed `partitions` the rows are of.
    fn insert_rows<R>(&self, table: &str, rows: &[&R], partitions: &str, token: &str) -> Result<(), String>
    where
        R: clickhouse::RowWrite + for<'v> clickhouse::Row<Value<'v> = R> + Sync,
    {
        // Unique among running queries: two attempts of one insert may both be running.
        static ATTEMPTS: AtomicU64 = AtomicU64::new(0);
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let query_id = format!(
            "{QUERY_ID_PREFIX}/e{}/p{partitions}/{started:x}.{}",
            self.layout_epoch,
            ATTEMPTS.fetch_add(1, Ordering::Relaxed)
        );
        self.bounded(async {
            let mut insert = self
                .client
                .insert::<R>(table)
                .await?
                .with_setting("query_id", query_id)
                .with_setting("insert_deduplicate", "1")
                .with_setting("insert_deduplication_token", token);
            for row in rows {
                insert.write(*row).await?;
            }
            insert.end().await
        })
    }
}

/// The distinct sealed partitions of some rows, as a query id names them: `0.3`.
fn partitions_label(partitions: impl Iterator<Item = u32>) -> String {
    let set: BTreeSet<u32> = partitions.collect();
    set.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
}

impl SinkStore for ClickHouseStore {
    fn stored_through(&self, table: Table, partition: i32) -> Result<i64, String> {
        let query = self
            .client
            .query(&format!(
                "SELECT count() AS rows, max(sealed_offset) AS max_offset FROM {} WHERE layout_epoch = ? AND sealed_partition = ?",
                table.name()
            ))
            .bind(self.layout_epoch)
            .bind(partition);
        let stored: Stored = self.bounded(query.fetch_one())?;
        Ok(if stored.rows > 0 {
            i64::try_from(stored.max_offset).unwrap_or(i64::MAX)
        } else {
            -1
        })
    }

    fn stored_offsets(&self, table: Table, partition: i32, (from, to): OffsetSpan) -> Result<Vec<u64>, String> {
        let query = self
            .client
            .query(&format!(
                "SELECT sealed_offset FROM {} WHERE layout_epoch = ? AND sealed_partition = ? AND sealed_offset BETWEEN ? AND ? ORDER BY sealed_offset",
                table.name()
            ))
            .bind(self.layout_epoch)
            .bind(partition)
            .bind(from)
            .bind(to);
        self.bounded(query.fetch_all::<u64>())
    }

    /// The entries first: a stored event always has its entry, so an export can tell a stretch
    /// held whole in `event_entries` by counting.
    fn insert_events(&self, rows: &[&EventRow], entries: &[&EntryRow], token: &str) -> Result<(), String> {
        let partitions = partitions_label(rows.iter().map(|row| row.sealed_partition));
        if !entries.is_empty() {
            self.insert_rows("event_entries", entries, &partitions, &format!("{token}/entries"))?;
        }
        self.insert_rows("events", rows, &partitions, token)
    }

    fn insert_checkpoints(&self, rows: &[&CheckpointRow], token: &str) -> Result<(), String> {
        let partitions = partitions_label(rows.iter().map(|row| row.sealed_partition));
        self.insert_rows("checkpoints", rows, &partitions, token)
    }

    /// `KILL QUERY ... SYNC` returns once every matching insert has been cancelled or has
    /// committed. The sink's user sees only its own queries in `system.processes` (a row policy,
    /// `sealtrail_clickhouse::access`), which are every sink instance's.
    fn settle(&self, partitions: &[i32]) -> Result<(), String> {
        if partitions.is_empty() {
            return Ok(());
        }
        let wanted: Vec<String> = partitions.iter().map(|p| format!("'{p}'")).collect();
        let kill = format!(
            "KILL QUERY WHERE current_database = currentDatabase() \
             AND hasAny(splitByChar('.', extract(query_id, '^{QUERY_ID_PREFIX}/e{}/p([0-9.]+)/')), [{}]) SYNC",
            self.layout_epoch,
            wanted.join(", ")
        );
        self.bounded(self.client.query(&kill).execute()).map_err(|error| {
            if error.contains("system.processes") {
                format!(
                    "{error}; the sink's ClickHouse user needs the grant on system.processes of the users file `sealtrail clickhouse-access` writes (docs/security.md)"
                )
            } else {
                error
            }
        })
    }
}

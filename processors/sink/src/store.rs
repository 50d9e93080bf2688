//! What the sink asks of its store and writes into it: how far each partition is stored, which
//! rows a rewind finds present, and inserts deduplicated by token. ClickHouse in production;
//! the unit tests' memory store keeps the same promises.

use std::time::Duration;

use sealtrail_clickhouse::{CheckpointRow, ClickHouseSettings, EntryRow, EventRow};
use tokio::runtime::Handle;

use crate::batch::OffsetSpan;

/// The tables the sink reads positions from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Events,
    /// Events purged by retention: a tombstone stands for its event.
    Tombstones,
    Checkpoints,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Self::Events => "events",
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
}

/// How long one ClickHouse call may take. A server that accepts connections but does not answer
/// (frozen, overloaded, behind a broken network) must be retried like one that refuses them, or
/// the sink would wait forever with its partitions held.
const CLICKHOUSE_CALL_TIMEOUT: Duration = Duration::from_secs(20);

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
    /// Inserts `rows` into `table` in one insert, deduplicated by `token`.
    fn insert_rows<R>(&self, table: &str, rows: &[&R], token: &str) -> Result<(), String>
    where
        R: clickhouse::RowWrite + for<'v> clickhouse::Row<Value<'v> = R> + Sync,
    {
        self.bounded(async {
            let mut insert = self
                .client
                .insert::<R>(table)
                .await?
                .with_setting("insert_deduplicate", "1")
                .with_setting("insert_deduplication_token", token);
            for row in rows {
                insert.write(*row).await?;
            }
            insert.end().await
        })
    }
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
        if !entries.is_empty() {
            self.insert_rows("event_entries", entries, &format!("{token}/entries"))?;
        }
        self.insert_rows("events", rows, token)
    }

    fn insert_checkpoints(&self, rows: &[&CheckpointRow], token: &str) -> Result<(), String> {
        self.insert_rows("checkpoints", rows, token)
    }
}

//! What the sink asks of ClickHouse and writes into it: how far each partition is stored, which
//! rows a rewind finds present, and the inserts with their deduplication tokens. Every call is
//! bounded in time and retried while the consumer stays in its group.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use sealtrail_clickhouse::{CheckpointRow, EventRow};
use sealtrail_runtime::{ComponentStats, StopSignal};
use tokio::runtime::Handle;

use crate::batch::PartitionBatch;
use crate::processor::{Shared, SinkContext};

/// How long one ClickHouse call may take. A server that accepts connections but does not answer
/// (frozen, overloaded, behind a broken network) must be retried like one that refuses them, or
/// the sink would wait forever with its partitions held.
const CLICKHOUSE_CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs one ClickHouse call on `runtime`, giving up after `CLICKHOUSE_CALL_TIMEOUT`.
pub(crate) fn bounded<T>(
    runtime: &Handle,
    call: impl Future<Output = Result<T, clickhouse::error::Error>>,
) -> Result<T, clickhouse::error::Error> {
    runtime.block_on(async {
        tokio::time::timeout(CLICKHOUSE_CALL_TIMEOUT, call)
            .await
            .unwrap_or(Err(clickhouse::error::Error::TimedOut))
    })
}

#[derive(clickhouse::Row, serde::Deserialize)]
pub(crate) struct Stored {
    rows: u64,
    max_offset: u64,
}

impl Shared {
    /// The largest sealed offset of `partition` in each table (-1 for none).
    pub(crate) fn stored_through(&self, partition: i32) -> Result<(i64, i64), String> {
        let mut through = [-1_i64; 2];
        for (slot, table) in ["events", "checkpoints"].into_iter().enumerate() {
            let query = self
                .client
                .query(&format!(
                    "SELECT count() AS rows, max(sealed_offset) AS max_offset FROM {table} WHERE layout_epoch = ? AND sealed_partition = ?"
                ))
                .bind(self.config.layout_epoch)
                .bind(partition);
            let stored: Stored = bounded(&self.runtime, query.fetch_one()).map_err(|e| e.to_string())?;
            if stored.rows > 0 {
                through[slot] = i64::try_from(stored.max_offset).unwrap_or(i64::MAX);
            }
        }
        Ok((through[0], through[1]))
    }

    /// Drops the rows read again that ClickHouse holds, or purged (a tombstone stands for the
    /// event: restoring it would undo the retention run); returns how many were dropped.
    pub(crate) fn drop_present_candidates(
        &self,
        partition: i32,
        batch: &mut PartitionBatch,
    ) -> Result<usize, clickhouse::error::Error> {
        let [events, checkpoints] = batch.candidate_ranges();
        let mut present_events = Vec::new();
        if let Some(range) = events {
            present_events = self.stored_offsets("events", partition, range)?;
            present_events.extend(self.stored_offsets("tombstones", partition, range)?);
            present_events.sort_unstable();
        }
        let present_checkpoints = match checkpoints {
            Some(range) => self.stored_offsets("checkpoints", partition, range)?,
            None => Vec::new(),
        };
        Ok(batch.drop_present_candidates(&present_events, &present_checkpoints))
    }

    /// The sealed offsets of `partition` within `range` that `table` holds, in order.
    pub(crate) fn stored_offsets(
        &self,
        table: &str,
        partition: i32,
        (from, to): (u64, u64),
    ) -> Result<Vec<u64>, clickhouse::error::Error> {
        let query = self
            .client
            .query(&format!(
                "SELECT sealed_offset FROM {table} WHERE layout_epoch = ? AND sealed_partition = ? AND sealed_offset BETWEEN ? AND ? ORDER BY sealed_offset"
            ))
            .bind(self.config.layout_epoch)
            .bind(partition)
            .bind(from)
            .bind(to);
        bounded(&self.runtime, query.fetch_all::<u64>())
    }

    pub(crate) fn insert(
        &self,
        partition: i32,
        batch: &PartitionBatch,
        token_suffix: &str,
    ) -> Result<(), clickhouse::error::Error> {
        let topic = &self.config.sealed_topic;
        for ((year, month), rows) in batch.events_by_month() {
            let (first, last) = (rows[0].sealed_offset, rows[rows.len() - 1].sealed_offset);
            let token = format!("{topic}/{partition}/events/{year}-{month:02}/{first}-{last}{token_suffix}");
            bounded(&self.runtime, async {
                let mut insert = self
                    .client
                    .insert::<EventRow>("events")
                    .await?
                    .with_setting("insert_deduplicate", "1")
                    .with_setting("insert_deduplication_token", token);
                for row in rows {
                    insert.write(row).await?;
                }
                insert.end().await
            })?;
        }
        let checkpoints: Vec<&CheckpointRow> = batch.checkpoint_candidates.iter().chain(&batch.checkpoints).collect();
        if let (Some(first), Some(last)) = (checkpoints.first(), checkpoints.last()) {
            let token = format!(
                "{topic}/{partition}/checkpoints/{}-{}{token_suffix}",
                first.sealed_offset, last.sealed_offset
            );
            bounded(&self.runtime, async {
                let mut insert = self
                    .client
                    .insert::<CheckpointRow>("checkpoints")
                    .await?
                    .with_setting("insert_deduplicate", "1")
                    .with_setting("insert_deduplication_token", token);
                for row in &checkpoints {
                    insert.write(*row).await?;
                }
                insert.end().await
            })?;
        }
        Ok(())
    }
}

/// Runs `operation` until it succeeds or the sink is stopped (`None`), staying in the group
/// while waiting: the consumer keeps being served with every partition paused, so no record
/// is fetched (and skipped) meanwhile.
pub(crate) fn retrying<T>(
    consumer: &BaseConsumer<SinkContext>,
    stop: &StopSignal,
    stats: &mut ComponentStats,
    what: &str,
    mut operation: impl FnMut() -> Result<T, clickhouse::error::Error>,
) -> Option<T> {
    let mut backoff = Duration::from_millis(200);
    loop {
        match operation() {
            Ok(done) => return Some(done),
            Err(error) => {
                stats.error("clickhouse");
                tracing::warn!(%error, retry_in = ?backoff, "{what} failed; retrying");
                if stop.is_stopped() {
                    return None;
                }
                let paused = consumer.assignment().unwrap_or_default();
                consumer.pause(&paused).ok();
                let until = Instant::now() + backoff;
                while Instant::now() < until && !stop.is_stopped() {
                    drop(consumer.poll(Duration::from_millis(100)));
                }
                consumer.resume(&paused).ok();
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

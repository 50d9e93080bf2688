//! The sink as the driver runs it: positions from the store when a partition is assigned, rows
//! buffered per record, inserts on ticks (flush.rs), buffered rows dropped when revoked.

use std::collections::HashMap;
use std::time::Duration;

use sealtrail_clickhouse::{CheckpointRow, ClickHouseSettings, EntryRow, EventRow};
use sealtrail_core::sealed::SealedRecord;
use sealtrail_kafka::KafkaSettings;
use sealtrail_runtime::driver::{Committed, Control, InputRecord, PRODUCED_AT_HEADER, PartitionedProcessor};
use sealtrail_runtime::telemetry::events::{ComponentError, ErrorKind, RecordsReceived};
use sealtrail_runtime::{Metrics, SealedReaders};
use sealtrail_telemetry::trace_context;

use crate::batch::PartitionBatch;
use crate::store::{SinkStore, Table};

/// Rows per partition that make an insert due: a sink reading a backlog fills it in well under
/// the batch wait, and every part ClickHouse writes is merged again later, so inserts of 5,000
/// rows per partition made ClickHouse merge most of the time (docs/performance.md, "The sink's
/// inserts while it catches up"). A sink keeping up inserts at the batch wait, long before.
pub const DEFAULT_BATCH_ROWS: usize = 20_000;
/// How long a buffered row may wait for its insert: the sink's share of produce -> queryable.
pub const DEFAULT_BATCH_WAIT_MS: u64 = 500;
pub const DEFAULT_BATCH_WAIT: Duration = Duration::from_millis(DEFAULT_BATCH_WAIT_MS);
/// Bytes of sealed records buffered over all partitions that make every partition's insert due:
/// about 85,000 events of 1.5 KB, and about 256 MB of memory.
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 128 << 20;

/// Everything the sink needs.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub kafka: KafkaSettings,
    pub clickhouse: ClickHouseSettings,
    pub sealed_topic: String,
    /// The partition layout epoch of `sealed_topic` (1 until the first `sealtrail reshard`):
    /// written on every row, since a later epoch numbers its partitions from 0 again.
    pub layout_epoch: u32,
    pub group: String,
    /// Static group membership (`group.instance.id`), as for the seal processor.
    pub instance_id: Option<String>,
    /// Insert when a partition has this many rows buffered...
    pub batch_rows: usize,
    /// ...or its oldest buffered row has waited this long...
    pub batch_wait: Duration,
    /// ...and insert every partition's rows once their sealed records total this many bytes: a
    /// bound on the sink's memory (about twice that: each row and its stored entry) whatever the
    /// number of partitions it holds and the size of its events.
    pub max_buffered_bytes: usize,
    /// Stop once this many sealed records have been read (for benchmarks).
    pub stop_after: Option<u64>,
    pub metrics: Metrics,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot create a Kafka client: {0}")]
    Client(String),
    #[error("sealed partition {partition} offset {offset} is not a sealed record ({reason})")]
    CorruptSealed {
        partition: i32,
        offset: i64,
        reason: String,
    },
    #[error("cannot learn how far partition {partition} is stored in ClickHouse: {reason}")]
    Position { partition: i32, reason: String },
    #[error(
        "sealed partition {partition} offset {offset} is a checkpoint of layout epoch {found}, but the layout history says this topic is epoch {expected}; check SEALED_TOPIC and LAYOUT_TOPIC"
    )]
    WrongEpoch {
        partition: i32,
        offset: i64,
        found: u32,
        expected: u32,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkSummary {
    pub records: u64,
    pub events: u64,
    pub checkpoints: u64,
    pub inserts: u64,
}

/// The sink: one batch per assigned sealed partition.
pub struct SinkProcessor {
    pub(crate) config: SinkConfig,
    pub(crate) store: Box<dyn SinkStore>,
    pub(crate) readers: SealedReaders,
    pub(crate) batches: HashMap<i32, PartitionBatch>,
    pub(crate) summary: SinkSummary,
}

impl std::fmt::Debug for SinkProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkProcessor")
            .field("sealed_topic", &self.config.sealed_topic)
            .field("partitions", &self.batches.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl SinkProcessor {
    pub fn new(config: SinkConfig, store: Box<dyn SinkStore>, readers: SealedReaders) -> Self {
        Self {
            config,
            store,
            readers,
            batches: HashMap::new(),
            summary: SinkSummary::default(),
        }
    }

    pub fn summary(&self) -> SinkSummary {
        self.summary
    }

    /// Where the store says `partition` stands once no insert into it is running, waiting for it
    /// (it is the only source of truth for where to resume) up to about a minute.
    fn stored_through(&self, partition: i32, control: &mut dyn Control) -> Result<(i64, i64), SinkError> {
        let mut backoff = Duration::from_millis(200);
        loop {
            // An insert of the partition's previous owner may still be running: it lands or is
            // cancelled before the store is read, or it could land after and store rows twice.
            let stored = self.store.settle(&[partition]).and_then(|()| {
                let events = self.store.stored_through(Table::Events, partition)?;
                Ok((events, self.store.stored_through(Table::Checkpoints, partition)?))
            });
            match stored {
                Ok(stored) => return Ok(stored),
                Err(reason) if backoff >= Duration::from_secs(30) || control.is_stopped() => {
                    control.telemetry().emit(ComponentError {
                        kind: ErrorKind::ClickHouse,
                        partition: Some(partition),
                        detail: &format!("learning where the partition stands: {reason}; giving up"),
                    });
                    return Err(SinkError::Position { partition, reason });
                }
                Err(reason) => {
                    control.telemetry().emit(ComponentError {
                        kind: ErrorKind::ClickHouse,
                        partition: Some(partition),
                        detail: &format!("learning where the partition stands: {reason}; retrying in {backoff:?}"),
                    });
                    control.pause_for(backoff);
                    backoff *= 2;
                }
            }
        }
    }

    fn assign_partition(
        &mut self,
        partition: i32,
        committed: &Committed,
        control: &mut dyn Control,
    ) -> Result<i64, SinkError> {
        let stored = self.stored_through(partition, control)?;
        let mut batch = PartitionBatch::new(stored.0, stored.1);
        let stored_until = batch.resume_offset();
        // ClickHouse says where the projection stands; a group rewound below that is read again
        // from there, to restore what ClickHouse lost.
        let resume = committed.resume(partition, stored_until);
        tracing::info!(
            partition,
            resume,
            events_through = stored.0,
            checkpoints_through = stored.1,
            "sink partition assigned"
        );
        if resume < stored_until {
            tracing::info!(
                partition,
                from = resume,
                until = stored_until,
                "the committed offset is behind ClickHouse (a rewind): re-projecting; rows ClickHouse holds (or purged) are skipped, missing ones restored"
            );
            // Commit from the rewound position on, so a restart mid-way carries on re-projecting.
            batch.last_offset = resume - 1;
        }
        // Reading from `stored_until` (the older of the two tables' newest rows) is the normal
        // case: a batch inserts its events before its checkpoints, and the tail of a partition is
        // often events only. ClickHouse lost rows only if the group committed past the newest
        // row of either table, since offsets are committed after their rows are stored.
        let newest_stored = stored.0.max(stored.1) + 1;
        if let Some(committed) = committed.get(partition).filter(|offset| *offset > newest_stored) {
            tracing::warn!(
                partition,
                from = newest_stored,
                until = committed,
                "ClickHouse holds less than the group committed; restoring the missing rows"
            );
        }
        self.batches.insert(partition, batch);
        Ok(resume)
    }

    fn buffer(&mut self, message: &dyn InputRecord, control: &mut dyn Control) -> Result<(), SinkError> {
        let (partition, offset) = (message.partition(), message.offset());
        let record = self
            .readers
            .decode(message.value().unwrap_or_default())
            .map_err(|reason| SinkError::CorruptSealed {
                partition,
                offset,
                reason,
            })?;
        self.summary.records += 1;
        control.telemetry().emit(RecordsReceived { count: 1 });
        let layout_epoch = self.config.layout_epoch;
        let Some(batch) = self.batches.get_mut(&partition) else {
            return Ok(());
        };
        match record {
            SealedRecord::Event(event) => {
                // Ends when the row is stored: the span measures sealed -> queryable.
                let span = trace_context::record_span(&message.headers(), || {
                    tracing::info_span!(
                        "sink.record",
                        otel.kind = "consumer",
                        partition,
                        offset,
                        tenant = %event.event.tenant_id,
                        seq = event.seal.tenant_seq,
                        outcome = tracing::field::Empty,
                        trace_id = tracing::field::Empty,
                    )
                });
                batch.traced.extend(span);
                // A sample of sealed events says when their raw record was produced.
                let produced_at = message
                    .header(PRODUCED_AT_HEADER)
                    .and_then(|value| std::str::from_utf8(value).ok()?.parse().ok());
                // A sealed record that does not hash is for the monitor and `verify` to report;
                // without its entry, exports of its stretch rebuild entries from `events`.
                let entry = EntryRow::from_sealed(&event, (layout_epoch, partition, offset))
                    .inspect_err(|error| tracing::warn!(%error, "no stored entry for an event"))
                    .ok();
                batch.push_event(
                    offset,
                    EventRow::from_sealed(*event, layout_epoch, partition, offset),
                    entry,
                    produced_at,
                );
            }
            SealedRecord::Checkpoint(checkpoint) => {
                if checkpoint.epoch != layout_epoch {
                    return Err(SinkError::WrongEpoch {
                        partition,
                        offset,
                        found: checkpoint.epoch,
                        expected: layout_epoch,
                    });
                }
                batch.push_checkpoint(offset, CheckpointRow::from_checkpoint(&checkpoint, offset));
            }
        }
        batch.buffered_bytes += message.value().map_or(0, <[u8]>::len);
        Ok(())
    }
}

impl PartitionedProcessor for SinkProcessor {
    type Error = SinkError;

    fn on_assign(
        &mut self,
        partitions: &[i32],
        committed: &Committed,
        control: &mut dyn Control,
    ) -> Result<Vec<(i32, i64)>, SinkError> {
        partitions
            .iter()
            .map(|partition| Ok((*partition, self.assign_partition(*partition, committed, control)?)))
            .collect()
    }

    fn on_record(&mut self, record: &dyn InputRecord, control: &mut dyn Control) -> Result<(), SinkError> {
        self.buffer(record, control)
    }

    fn on_tick(&mut self, control: &mut dyn Control) -> Result<(), SinkError> {
        self.flush_due(control, false);
        Ok(())
    }

    /// Buffered rows of revoked partitions are dropped, not inserted: nothing was committed for
    /// them, and the next owner reads them again. Leaving for good inserts them first, so a stop
    /// loses no progress.
    fn on_revoke(&mut self, _partitions: &[i32], control: &mut dyn Control) -> Result<(), SinkError> {
        if control.is_leaving() {
            self.flush_due(control, true);
        }
        Ok(())
    }

    fn release(&mut self, partitions: &[i32]) {
        for partition in partitions {
            self.batches.remove(partition);
        }
    }

    fn positions(&self) -> Vec<(i32, i64)> {
        self.batches
            .iter()
            .map(|(partition, batch)| (*partition, batch.last_offset + 1))
            .collect()
    }

    fn committable(&self) -> Vec<(i32, i64)> {
        self.batches
            .iter()
            .filter_map(|(partition, batch)| Some((*partition, batch.committable?)))
            .collect()
    }

    fn is_done(&self) -> bool {
        self.config
            .stop_after
            .is_some_and(|limit| self.summary.records >= limit)
    }
}

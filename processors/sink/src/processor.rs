//! The sink loop: consume sealed records, buffer rows per partition, insert, commit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sealtrail_clickhouse::{CheckpointRow, ClickHouseSettings, EventRow};
use sealtrail_core::sealed::SealedRecord;
use sealtrail_kafka::{
    CommittedOffsets, GroupLagProbe, KafkaSettings, RebalanceWatch, WatermarkProbe, leave_group, rejoin,
};
use sealtrail_runtime::{AuditStage, ComponentStats, Metrics, RegistryClient, SealedReaders, StopSignal};
use sealtrail_telemetry::trace_context;
use tokio::runtime::Handle;

use crate::batch::PartitionBatch;
use crate::store::retrying;

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
    /// ...or its oldest buffered row has waited this long.
    pub batch_wait: Duration,
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

pub(crate) struct Shared {
    pub(crate) config: SinkConfig,
    pub(crate) client: clickhouse::Client,
    pub(crate) runtime: Handle,
    pub(crate) batches: Mutex<HashMap<i32, PartitionBatch>>,
    pub(crate) failure: Mutex<Option<SinkError>>,
    pub(crate) stop: StopSignal,
    /// Tells the loop when the coordinator handed back a stale assignment (see `group_heal`).
    pub(crate) rebalances: Mutex<RebalanceWatch>,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn assign(&self, consumer: &BaseConsumer<SinkContext>, assigned: &TopicPartitionList) {
        let mut positions = TopicPartitionList::new();
        let committed = CommittedOffsets::read(consumer, assigned);
        for element in assigned.elements() {
            let partition = element.partition();
            // ClickHouse may be down right now; it is the only source of truth for where to
            // resume, so wait for it rather than guess.
            let mut backoff = Duration::from_millis(200);
            let stored = loop {
                match self.stored_through(partition) {
                    Ok(stored) => break stored,
                    Err(reason) if backoff >= Duration::from_secs(30) || self.stop.is_stopped() => {
                        self.config.metrics.error("clickhouse");
                        self.fail(SinkError::Position { partition, reason });
                        return;
                    }
                    Err(reason) => {
                        self.config.metrics.error("clickhouse");
                        tracing::warn!(partition, %reason, retry_in = ?backoff, "ClickHouse unavailable at assignment; retrying");
                        std::thread::sleep(backoff);
                        backoff *= 2;
                    }
                }
            };
            let mut batch = PartitionBatch::new(stored.0, stored.1);
            let stored_until = batch.resume_offset();
            // ClickHouse says where the projection stands; a group rewound below that is read
            // again from there, to restore what ClickHouse lost.
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
            // case: a batch inserts its events before its checkpoints, and the tail of a partition
            // is often events only. ClickHouse lost rows only if the group committed past the
            // newest row of either table, since offsets are committed after their rows are stored.
            let newest_stored = stored.0.max(stored.1) + 1;
            if let Some(committed) = committed.get(partition).filter(|offset| *offset > newest_stored) {
                tracing::warn!(
                    partition,
                    from = newest_stored,
                    until = committed,
                    "ClickHouse holds less than the group committed; restoring the missing rows"
                );
            }
            lock(&self.batches).insert(partition, batch);
            positions
                .add_partition_offset(&self.config.sealed_topic, partition, Offset::Offset(resume))
                .ok();
        }
        if let Err(error) = consumer.assign(&positions) {
            self.fail(SinkError::Client(format!("cannot assign: {error}")));
        }
        self.config.metrics.set_ready();
    }

    fn fail(&self, error: SinkError) {
        let mut failure = lock(&self.failure);
        if failure.is_none() {
            *failure = Some(error);
        }
    }

    /// Inserts what `partition` has buffered, retrying (with the same deduplication tokens) until
    /// ClickHouse acknowledges or the sink is stopped. Returns the offset now safe to commit and
    /// the rows inserted (events, checkpoints); `None` when stopped or the partition was revoked
    /// meanwhile (its rows are dropped: the next owner reads them again).
    fn flush(
        &self,
        consumer: &BaseConsumer<SinkContext>,
        partition: i32,
        stop: &StopSignal,
        stats: &mut ComponentStats,
    ) -> Option<(i64, u64, u64)> {
        let has_candidates = {
            let batches = lock(&self.batches);
            let batch = batches.get(&partition)?;
            if batch.is_empty() {
                return Some((batch.last_offset + 1, 0, 0));
            }
            !batch.event_candidates.is_empty() || !batch.checkpoint_candidates.is_empty()
        };
        let started = Instant::now();
        // The lock is taken per attempt, never while the consumer is polled between attempts: a
        // rebalance callback in that poll takes it too.
        if has_candidates {
            let present = retrying(consumer, stop, stats, "checking rows read again", || {
                let mut batches = lock(&self.batches);
                batches
                    .get_mut(&partition)
                    .map(|batch| self.drop_present_candidates(partition, batch))
                    .transpose()
            })??;
            stats.skipped_many("already_projected", present as u64);
        }
        // One token per flush, kept across its retries: a retry whose first attempt landed is
        // dropped. Not per offset range alone: ClickHouse remembers a token after its rows are
        // deleted, and rows restored after a loss carry the offsets they had.
        let token_suffix = format!("/{}", sealtrail_clickhouse::unix_ms(time::OffsetDateTime::now_utc()));
        retrying(consumer, stop, stats, "inserting into ClickHouse", || {
            let batches = lock(&self.batches);
            batches
                .get(&partition)
                .map(|batch| self.insert(partition, batch, &token_suffix))
                .transpose()
        })??;
        let mut batches = lock(&self.batches);
        let batch = batches.get_mut(&partition)?;
        let restored = batch.event_candidates.len() + batch.checkpoint_candidates.len();
        if restored > 0 {
            tracing::info!(
                partition,
                restored,
                "re-projection: restored rows ClickHouse no longer had"
            );
        }
        // Restored rows are old by nature; they would distort the live lag.
        let now = sealtrail_clickhouse::unix_ms(time::OffsetDateTime::now_utc());
        for row in &batch.events {
            let lag = now - sealtrail_clickhouse::unix_ms(row.sealed_at);
            stats
                .metrics()
                .audit_lag(AuditStage::SealedToQueryable, lag as f64 / 1000.0);
        }
        stats.metrics().batch_duration(started.elapsed().as_secs_f64());
        let inserted = (
            (batch.events.len() + batch.event_candidates.len()) as u64,
            (batch.checkpoints.len() + batch.checkpoint_candidates.len()) as u64,
        );
        stats.emitted(inserted.0);
        batch.stored();
        Some((batch.last_offset + 1, inserted.0, inserted.1))
    }
}

pub(crate) struct SinkContext {
    pub(crate) shared: Arc<Shared>,
}

impl ClientContext for SinkContext {}

impl ConsumerContext for SinkContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            lock(&self.shared.rebalances).on_assign(consumer);
            self.shared.assign(consumer, tpl);
            return;
        }
        lock(&self.shared.rebalances).revoked();
        // Buffered rows of revoked partitions are dropped, not inserted: nothing was committed
        // for them, and the next owner reads them again.
        let mut batches = lock(&self.shared.batches);
        for element in tpl.elements() {
            batches.remove(&element.partition());
            let config = &self.shared.config;
            config
                .metrics
                .forget_partition(&config.sealed_topic, element.partition());
        }
        drop(batches);
        consumer.unassign().ok();
    }
}

/// Runs the sink until stopped (or `stop_after` records are read), or an error makes it unsafe
/// to continue.
pub fn run(
    config: SinkConfig,
    registry: &RegistryClient,
    runtime: Handle,
    stop: &StopSignal,
) -> Result<SinkSummary, SinkError> {
    let shared = Arc::new(Shared {
        client: config.clickhouse.client(),
        runtime,
        batches: Mutex::new(HashMap::new()),
        failure: Mutex::new(None),
        rebalances: Mutex::new(RebalanceWatch::new()),
        stop: stop.clone(),
        config,
    });
    let mut consumer_config = shared.config.kafka.consumer(&shared.config.group);
    consumer_config.set("partition.assignment.strategy", "range");
    if let Some(instance) = &shared.config.instance_id {
        consumer_config.set("group.instance.id", instance);
    }
    let consumer: BaseConsumer<SinkContext> = consumer_config
        .create_with_context(SinkContext {
            shared: Arc::clone(&shared),
        })
        .map_err(|e| SinkError::Client(e.to_string()))?;
    consumer
        .subscribe(&[&shared.config.sealed_topic])
        .map_err(|e| SinkError::Client(e.to_string()))?;
    tracing::info!(sealed = %shared.config.sealed_topic, clickhouse = %shared.config.clickhouse.url, "sink started");

    let mut readers = SealedReaders::new(registry.clone());
    let mut stats = ComponentStats::new(shared.config.metrics.clone());
    let mut summary = SinkSummary::default();
    let mut last_check = Instant::now();
    let mut last_lag: Option<Instant> = None;
    // High watermarks on a connection of their own: a stalled fetch cannot hide the lag.
    let mut probe = WatermarkProbe::new(&shared.config.kafka, Duration::from_secs(2))
        .map_err(|e| SinkError::Client(e.to_string()))?;
    // The whole group's lag, which also counts partitions no live member owns.
    let group_lag = GroupLagProbe::new(&shared.config.kafka, &shared.config.group, Duration::from_secs(2))
        .map_err(|e| SinkError::Client(e.to_string()))?;
    let outcome = loop {
        if let Some(error) = lock(&shared.failure).take() {
            break Err(error);
        }
        let limit_reached = shared.config.stop_after.is_some_and(|limit| summary.records >= limit);
        if stop.is_stopped() || limit_reached {
            // Insert what is buffered before leaving, so a stop loses no progress.
            flush_all(&shared, &consumer, stop, &mut stats, &mut summary, true);
            break Ok(());
        }
        if lock(&shared.rebalances).take_rejoin(Instant::now()) {
            stats.error("stale_assignment");
            if let Err(error) = rejoin(&consumer, &[&shared.config.sealed_topic]) {
                break Err(SinkError::Client(error.to_string()));
            }
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(error)) => {
                stats.error("consume");
                tracing::warn!(%error, "consume error");
            }
            Some(Ok(message)) => {
                if let Err(error) = buffer(&shared, &mut readers, &message, &mut summary, &mut stats) {
                    break Err(error);
                }
            }
        }
        if last_check.elapsed() >= Duration::from_millis(100) {
            last_check = Instant::now();
            flush_all(&shared, &consumer, stop, &mut stats, &mut summary, false);
            if last_lag.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                last_lag = Some(Instant::now());
                let lag = lag(&mut probe, &shared, &mut stats);
                stats.set_lag(lag);
                let sealed = &shared.config.sealed_topic;
                if let Some(whole) = group_lag.lag(&probe, sealed) {
                    shared.config.metrics.group_lag(sealed, whole);
                }
            }
            stats.report_if_due();
        }
    };
    // Leave the group, so the partitions move to the other instances now (a static member's
    // close alone does not).
    if let Err(error) = leave_group(&consumer) {
        tracing::warn!(%error, "leaving the group failed; the other instances take over when this one's session expires");
    }
    drop(consumer);
    stats.summary();
    outcome.map(|()| summary)
}

fn buffer(
    shared: &Shared,
    readers: &mut SealedReaders,
    message: &BorrowedMessage<'_>,
    summary: &mut SinkSummary,
    stats: &mut ComponentStats,
) -> Result<(), SinkError> {
    let (partition, offset) = (message.partition(), message.offset());
    let record = readers
        .decode(message.payload().unwrap_or_default())
        .map_err(|reason| SinkError::CorruptSealed {
            partition,
            offset,
            reason,
        })?;
    summary.records += 1;
    stats.received(1);
    let mut batches = lock(&shared.batches);
    let Some(batch) = batches.get_mut(&partition) else {
        return Ok(());
    };
    match record {
        SealedRecord::Event(event) => {
            // Ends when the row is stored: the span measures sealed -> queryable.
            let span = trace_context::record_span(message.headers(), || {
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
            batch.push_event(
                offset,
                EventRow::from_sealed(*event, shared.config.layout_epoch, partition, offset),
            );
        }
        SealedRecord::Checkpoint(checkpoint) => {
            if checkpoint.epoch != shared.config.layout_epoch {
                return Err(SinkError::WrongEpoch {
                    partition,
                    offset,
                    found: checkpoint.epoch,
                    expected: shared.config.layout_epoch,
                });
            }
            batch.push_checkpoint(offset, CheckpointRow::from_checkpoint(&checkpoint, offset));
        }
    }
    Ok(())
}

fn flush_all(
    shared: &Shared,
    consumer: &BaseConsumer<SinkContext>,
    stop: &StopSignal,
    stats: &mut ComponentStats,
    summary: &mut SinkSummary,
    everything: bool,
) {
    let due: Vec<i32> = lock(&shared.batches)
        .iter()
        .filter(|(_, batch)| {
            everything
                || batch.len() >= shared.config.batch_rows
                || batch
                    .first_buffered_at
                    .is_some_and(|at| at.elapsed() >= shared.config.batch_wait)
        })
        .map(|(partition, _)| *partition)
        .collect();
    let mut offsets = TopicPartitionList::new();
    for partition in due {
        if let Some((next, events, checkpoints)) = shared.flush(consumer, partition, stop, stats) {
            if events + checkpoints > 0 {
                summary.inserts += 1;
            }
            summary.events += events;
            summary.checkpoints += checkpoints;
            offsets
                .add_partition_offset(&shared.config.sealed_topic, partition, Offset::Offset(next))
                .ok();
        }
    }
    if offsets.count() > 0
        && let Err(error) = consumer.commit(&offsets, CommitMode::Async)
    {
        tracing::warn!(%error, "committing sealed offsets failed; ClickHouse is the source of truth, nothing is lost");
    }
}

/// The sealed records not inserted yet, per assigned partition (as gauges) and in total.
fn lag(probe: &mut WatermarkProbe, shared: &Shared, stats: &mut ComponentStats) -> i64 {
    let positions: Vec<(i32, i64)> = lock(&shared.batches)
        .iter()
        .map(|(partition, batch)| (*partition, batch.last_offset + 1))
        .collect();
    let topic = &shared.config.sealed_topic;
    let lags = probe.lags(topic, positions);
    if lags.iter().any(|partition| partition.stale) {
        stats.error("watermarks_unavailable");
    }
    let pairs: Vec<(i32, i64)> = lags.iter().map(|p| (p.partition, p.lag)).collect();
    shared.config.metrics.consumer_lags(topic, &pairs)
}

//! The seal loop: consume raw records, seal or reject each, produce the results, checkpoint.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError as ClientError;
use rdkafka::message::{BorrowedMessage, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sealtrail_core::avro::Framed;
use sealtrail_core::avro::Writer;
use sealtrail_core::avro::contract::{SEALED_RECORD_SCHEMA, encode_sealed_record};
use sealtrail_core::checkpoint::{CheckpointSigner, TrustedKey};
use sealtrail_core::layout::{CONTROL_HEADER, Handover, LAYOUT_CHANGE_CONTROL, Layout, LayoutChange};
use sealtrail_core::sealed::{Checkpoint, SealedRecord};
use sealtrail_core::sealer::{
    Disposition, PartitionSealer, RawRecord, RecoveryError, SchemaLookup, SealContext, SealerSettings,
};
use sealtrail_core::tokenize::Tokenizer;
use sealtrail_kafka::{
    CommittedOffsets, GroupLagProbe, KafkaError, PartitionReader, RebalanceWatch, WatermarkProbe, leave_group, rejoin,
    trace_context,
};
use sealtrail_runtime::keys::{self, KeyError};
use sealtrail_runtime::{AuditStage, ComponentStats, RegistryClient, SchemaVerdict, SealedReaders, StopSignal};

use crate::SealConfig;
use crate::deliveries::{Deliveries, Produced};
use crate::dlq;
use crate::layouts::{self, LayoutReadError};
use crate::recovery::{RecoverySources, recover};

/// Why the processor stopped with an error. Every variant is worth a restart except
/// `Topology`, `Keys` and the ones naming corrupt data, which need an operator.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("cannot create a Kafka client: {0}")]
    Client(String),
    #[error("schema registry: {0}")]
    Registry(String),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("{0}")]
    Topology(String),
    #[error(
        "sealed partition {partition} offset {offset} is not a sealed record ({reason}); only the seal processor may write the sealed topic"
    )]
    CorruptSealed {
        partition: i32,
        offset: i64,
        reason: String,
    },
    #[error(
        "the last checkpoint of sealed partition {partition} does not verify ({reason}); add the signing key's public half to the trusted keys, or investigate"
    )]
    UntrustedCheckpoint { partition: i32, reason: String },
    #[error(transparent)]
    Recovery(Box<RecoveryError>),
    #[error("{0}; exiting so a restart recovers from the sealed topic")]
    Delivery(String),
    #[error("partition layout: {0}")]
    Layout(Box<LayoutReadError>),
}

impl From<LayoutReadError> for SealError {
    fn from(error: LayoutReadError) -> Self {
        Self::Layout(Box::new(error))
    }
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SealSummary {
    pub records: u64,
    pub sealed: u64,
    pub rejected: u64,
    pub checkpoints: u64,
    /// From the first record read to the last output acknowledged (for throughput figures).
    pub busy: Duration,
}

struct PartitionState {
    sealer: PartitionSealer,
    covered_through: i64,
    /// After a rewind of the group: the last raw offset read again and recognised as handled.
    reread_through: i64,
}

/// What the loop and the rebalance callback share.
struct Shared {
    config: SealConfig,
    producer: BaseProducer<Deliveries>,
    reader: PartitionReader,
    sealed_readers: Mutex<SealedReaders>,
    trusted: Vec<TrustedKey>,
    signer: CheckpointSigner,
    sealed_schema_id: u32,
    /// The raw topic's partition count at start, which places every tenant.
    raw_partitions: i32,
    /// The layout epoch this processor seals, and where its chains start if it is not the first.
    epoch: u32,
    handover: Option<Arc<Handover>>,
    partitions: Mutex<HashMap<i32, PartitionState>>,
    /// An error met inside a rebalance callback, reported by the loop.
    failure: Mutex<Option<SealError>>,
    checkpoints: Mutex<u64>,
    /// Tells the loop when the coordinator handed back a stale assignment (see `group_heal`).
    rebalances: Mutex<RebalanceWatch>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Shared {
    fn settings(&self, partition: i32) -> SealerSettings {
        SealerSettings {
            source_topic: self.config.raw_topic.clone(),
            partition,
            partition_count: self.raw_partitions,
            epoch: self.epoch,
            handover: self.handover.clone(),
            limits: self.config.limits,
            checkpoint_every: self.config.checkpoint_every,
            checkpoint_interval_ms: i64::try_from(self.config.checkpoint_interval.as_millis()).unwrap_or(i64::MAX),
            idempotency_window_ms: i64::try_from(self.config.idempotency_window.as_millis()).unwrap_or(i64::MAX),
        }
    }

    fn fail(&self, error: SealError) {
        let mut failure = lock(&self.failure);
        if failure.is_none() {
            *failure = Some(error);
        }
    }

    /// Recovers every newly assigned partition and assigns it at the offset recovery found.
    fn assign(&self, consumer: &BaseConsumer<SealContextOf>, assigned: &TopicPartitionList) {
        let mut positions = TopicPartitionList::new();
        let committed = CommittedOffsets::read(consumer, assigned);
        for element in assigned.elements() {
            let partition = element.partition();
            let started = Instant::now();
            let mut sealed_readers = lock(&self.sealed_readers);
            let mut sources = RecoverySources {
                reader: &self.reader,
                sealed_readers: &mut sealed_readers,
                trusted: &self.trusted,
                sealed_topic: &self.config.sealed_topic,
                dlq_topic: &self.config.dlq_topic,
                raw_topic: &self.config.raw_topic,
            };
            match recover(&mut sources, self.settings(partition), now_ms()) {
                Ok(recovered) => {
                    let recovered_at = recovered.sealer.resume_offset();
                    // The sealed topic says where sealing stands; a group rewound below that is
                    // honoured by reading again from there, every record recognised by its offset.
                    let resume = committed.resume(partition, recovered_at);
                    tracing::info!(
                        partition,
                        resume,
                        last_checkpoint = recovered.last_checkpoint,
                        tail = recovered.tail,
                        tenants = recovered.sealer.tenant_count(),
                        idempotency_keys = recovered.remembered_keys,
                        ms = started.elapsed().as_millis(),
                        "partition recovered from the sealed topic"
                    );
                    if resume < recovered_at {
                        tracing::info!(
                            partition,
                            from = resume,
                            until = recovered_at,
                            "the committed offset is behind the sealed topic (a rewind, or commits lost in a crash): reading raw records again; those already sealed or rejected are recognised and skipped"
                        );
                    }
                    if let Some(number) = recovered.last_checkpoint {
                        self.config.metrics.last_checkpoint(partition, number);
                    }
                    self.producer
                        .context()
                        .lock()
                        .dlq_next
                        .insert(partition, recovered.dlq_next);
                    let covered_through = recovered.sealer.handled_through();
                    lock(&self.partitions).insert(
                        partition,
                        PartitionState {
                            sealer: recovered.sealer,
                            covered_through,
                            reread_through: -1,
                        },
                    );
                    if positions
                        .add_partition_offset(&self.config.raw_topic, partition, Offset::Offset(resume))
                        .is_err()
                    {
                        self.fail(SealError::Topology(format!(
                            "cannot position raw partition {partition} at {resume}"
                        )));
                    }
                }
                Err(error) => {
                    tracing::error!(partition, %error, "partition recovery failed");
                    self.fail(error);
                }
            }
        }
        if let Err(error) = consumer.assign(&positions) {
            self.fail(SealError::Client(format!(
                "cannot assign the recovered partitions: {error}"
            )));
        }
        self.config.metrics.set_ready();
    }

    /// Checkpoints and flushes the partitions being taken away, so the next owner starts from a
    /// complete sealed log.
    fn revoke(&self, consumer: &BaseConsumer<SealContextOf>, revoked: &[i32]) {
        for partition in revoked {
            if let Err(error) = self.checkpoint_if_pending(*partition, true) {
                self.fail(error);
            }
        }
        if let Err(error) = self.flush() {
            self.fail(error);
        }
        self.commit(consumer, CommitMode::Sync);
        let mut partitions = lock(&self.partitions);
        for partition in revoked {
            partitions.remove(partition);
            self.config.metrics.forget_partition(&self.config.raw_topic, *partition);
        }
    }

    fn check_deliveries(&self) -> Result<(), SealError> {
        match self.producer.context().lock().failure.clone() {
            Some(reason) => Err(SealError::Delivery(reason)),
            None => Ok(()),
        }
    }

    fn flush(&self) -> Result<(), SealError> {
        self.producer
            .flush(Duration::from_secs(60))
            .map_err(|e| SealError::Delivery(format!("the producer could not flush: {e}")))?;
        self.check_deliveries()
    }

    /// Writes a checkpoint for `partition` if it is due (or if anything is uncovered and
    /// `force`). A partition whose epoch is closed gets none: its final checkpoint was its last.
    fn checkpoint_if_pending(&self, partition: i32, force: bool) -> Result<bool, SealError> {
        let due = {
            let partitions = lock(&self.partitions);
            let Some(state) = partitions.get(&partition) else {
                return Ok(false);
            };
            let uncovered =
                state.sealer.pending_entries() > 0 || state.sealer.handled_through() > state.covered_through;
            if state.sealer.is_closed() {
                false
            } else if force {
                uncovered
            } else {
                state.sealer.checkpoint_due(now_ms(), state.covered_through)
            }
        };
        if !due {
            return Ok(false);
        }
        let dlq_next = self.settle_dlq(partition)?;
        let mut partitions = lock(&self.partitions);
        let Some(state) = partitions.get_mut(&partition) else {
            return Ok(false);
        };
        let started = Instant::now();
        let checkpoint = state.sealer.checkpoint(&self.signer, dlq_next, now_ms());
        state.covered_through = checkpoint.source_offset;
        drop(partitions);
        self.publish_checkpoint(partition, checkpoint, started)?;
        Ok(true)
    }

    /// Ends the partition's layout epoch at the signed layout change read at `offset`: the final
    /// checkpoint covers everything before it, and every later record goes to the DLQ.
    fn close_epoch(&self, partition: i32, offset: i64, change: &LayoutChange) -> Result<(), SealError> {
        let dlq_next = self.settle_dlq(partition)?;
        let mut partitions = lock(&self.partitions);
        let Some(state) = partitions.get_mut(&partition) else {
            return Ok(());
        };
        let started = Instant::now();
        let Some(last) = state.sealer.close_epoch(offset, &self.signer, dlq_next, now_ms()) else {
            return Ok(());
        };
        state.covered_through = last.source_offset;
        drop(partitions);
        tracing::info!(
            partition,
            offset,
            epoch = last.epoch,
            checkpoint = last.number,
            tenants = last.tenant_count,
            next_raw_topic = %change.to.raw_topic,
            "raw partition closed by a layout change: its final checkpoint hands every chain to the next layout"
        );
        self.publish_checkpoint(partition, last, started)
    }

    /// Waits until the partition's DLQ records are acknowledged, because a checkpoint vouches for
    /// them, and returns the offset the next one gets.
    fn settle_dlq(&self, partition: i32) -> Result<i64, SealError> {
        loop {
            self.check_deliveries()?;
            let pending = self
                .producer
                .context()
                .lock()
                .dlq_in_flight
                .get(&partition)
                .copied()
                .unwrap_or_default();
            if pending == 0 {
                break;
            }
            self.producer.poll(Duration::from_millis(10));
        }
        Ok(self
            .producer
            .context()
            .lock()
            .dlq_next
            .get(&partition)
            .copied()
            .unwrap_or_default())
    }

    fn publish_checkpoint(&self, partition: i32, checkpoint: Checkpoint, started: Instant) -> Result<(), SealError> {
        self.config.metrics.last_checkpoint(partition, checkpoint.number);
        let produced = Produced::Checkpoint {
            partition,
            source_offset: checkpoint.source_offset,
        };
        let bytes = self.encode(&SealedRecord::Checkpoint(Box::new(checkpoint)));
        self.send(&self.config.sealed_topic, partition, b"", &bytes, produced, None)?;
        *lock(&self.checkpoints) += 1;
        self.config.metrics.checkpoint();
        self.config.metrics.batch_duration(started.elapsed().as_secs_f64());
        Ok(())
    }

    fn encode(&self, record: &SealedRecord) -> Vec<u8> {
        let mut writer = Writer::with_capacity(2048);
        writer.raw(&[sealtrail_core::avro::MAGIC_BYTE]);
        writer.raw(&self.sealed_schema_id.to_be_bytes());
        encode_sealed_record(record, &mut writer);
        writer.into_bytes()
    }

    fn send(
        &self,
        topic: &str,
        partition: i32,
        key: &[u8],
        payload: &[u8],
        produced: Produced,
        headers: Option<OwnedHeaders>,
    ) -> Result<(), SealError> {
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(produced))
            .partition(partition)
            .key(key)
            .payload(payload);
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        self.producer.context().sent(produced);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((ClientError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(10));
                    self.check_deliveries()?;
                }
                Err((error, _)) => {
                    return Err(SealError::Delivery(format!(
                        "cannot queue a record for {topic}: {error}"
                    )));
                }
            }
        }
    }

    /// Commits, per partition, what the last acknowledged checkpoint covers, or how far a rewound
    /// group has read again if that is further.
    fn commit(&self, consumer: &BaseConsumer<SealContextOf>, mode: CommitMode) {
        let committable = self.producer.context().lock().committable.clone();
        let partitions = lock(&self.partitions);
        let mut offsets = TopicPartitionList::new();
        for (partition, state) in partitions.iter() {
            let covered = committable.get(partition).copied();
            let reread = (state.reread_through >= 0).then_some(state.reread_through + 1);
            if let Some(offset) = covered.max(reread) {
                offsets
                    .add_partition_offset(&self.config.raw_topic, *partition, Offset::Offset(offset))
                    .ok();
            }
        }
        drop(partitions);
        if offsets.count() > 0
            && let Err(error) = consumer.commit(&offsets, mode)
        {
            tracing::warn!(%error, "committing raw offsets failed; they are informational, recovery does not need them");
        }
    }
}

/// The consumer context: recovery on assignment, checkpoint and flush on revocation.
struct SealContextOf {
    shared: Arc<Shared>,
}

impl ClientContext for SealContextOf {}

impl ConsumerContext for SealContextOf {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                lock(&self.shared.rebalances).on_assign(consumer);
                self.shared.assign(consumer, tpl);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                lock(&self.shared.rebalances).revoked();
                let revoked: Vec<i32> = tpl
                    .elements()
                    .iter()
                    .map(rdkafka::topic_partition_list::TopicPartitionListElem::partition)
                    .collect();
                self.shared.revoke(consumer, &revoked);
                if let Err(error) = consumer.unassign() {
                    self.shared.fail(SealError::Client(format!("cannot unassign: {error}")));
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance failed");
                consumer.unassign().ok();
            }
        }
    }
}

/// Runs the seal processor until `stop` is set (or `stop_after` records are handled), or an
/// error makes it unsafe to continue.
pub fn run(config: SealConfig, registry: &RegistryClient, stop: &StopSignal) -> Result<SealSummary, SealError> {
    let (shared, tokenizer) = start(config, registry, stop)?;
    let mut consumer_config = shared.config.kafka.consumer(&shared.config.group);
    consumer_config.set("partition.assignment.strategy", "range");
    // Recovery (which reads back the idempotency window) runs inside the rebalance callback and
    // may take minutes on a busy partition; the group must not evict the instance meanwhile.
    consumer_config.set("max.poll.interval.ms", "1800000");
    if let Some(instance) = &shared.config.instance_id {
        consumer_config.set("group.instance.id", instance);
    }
    let consumer: BaseConsumer<SealContextOf> = consumer_config
        .create_with_context(SealContextOf {
            shared: Arc::clone(&shared),
        })
        .map_err(|e| SealError::Client(e.to_string()))?;
    consumer
        .subscribe(&[&shared.config.raw_topic])
        .map_err(|e| SealError::Client(e.to_string()))?;
    tracing::info!(raw = %shared.config.raw_topic, sealed = %shared.config.sealed_topic, dlq = %shared.config.dlq_topic, key_id = shared.signer.key_id(), "seal processor started");

    let mut work = Loop {
        probe: WatermarkProbe::new(&shared.config.kafka, Duration::from_secs(2))?,
        group_lag: GroupLagProbe::new(&shared.config.kafka, &shared.config.group, Duration::from_secs(2))?,
        last_record: Instant::now(),
        shared: &shared,
        registry,
        stop,
        tokenizer,
        verdicts: HashMap::new(),
        stats: ComponentStats::new(shared.config.metrics.clone()),
        summary: SealSummary::default(),
        first_record: None,
    };
    let outcome = work.until_stopped(&consumer);

    // Leave cleanly: checkpoint what is uncovered, flush, commit, then leave the group, so the
    // partitions move to the other instances now (a static member's close alone does not).
    let assigned: Vec<i32> = lock(&shared.partitions).keys().copied().collect();
    shared.revoke(&consumer, &assigned);
    if let Err(error) = leave_group(&consumer) {
        tracing::warn!(%error, "leaving the group failed; the other instances take over when this one's session expires");
    }
    work.summary.busy = work.first_record.map(|at| at.elapsed()).unwrap_or_default();
    drop(consumer);
    work.summary.checkpoints = *lock(&shared.checkpoints);
    work.stats.summary();
    if let Some(error) = lock(&shared.failure).take() {
        return Err(error);
    }
    outcome.map(|()| work.summary)
}

/// Loads the keys, checks the topics, registers the sealed schema and creates the producer.
fn start(
    config: SealConfig,
    registry: &RegistryClient,
    stop: &StopSignal,
) -> Result<(Arc<Shared>, Tokenizer), SealError> {
    let signer = keys::load_signer(&config.signing_key)?;
    let tokenizer = Tokenizer::new(&keys::load_tokenization_key(&config.tokenization_key)?).map_err(|reason| {
        SealError::Keys(KeyError::Invalid {
            path: config.tokenization_key.clone(),
            what: "tokenization key",
            reason,
        })
    })?;
    let mut trusted = match keys::load_trusted(&config.trusted_keys) {
        Ok(keys) => keys,
        Err(KeyError::NoTrustedKeys { .. }) => Vec::new(),
        Err(other) => return Err(other.into()),
    };
    let own = TrustedKey::new(signer.public_key().to_vec());
    if !trusted.contains(&own) {
        trusted.push(own);
    }

    let reader = PartitionReader::new(&config.kafka, Duration::from_secs(60))?;
    let raw_partitions = reader.partition_count(&config.raw_topic)?;
    for topic in [&config.sealed_topic, &config.dlq_topic] {
        let count = reader.partition_count(topic)?;
        if count != raw_partitions || count == 0 {
            return Err(SealError::Topology(format!(
                "topic {topic} has {count} partitions and {} has {raw_partitions}; they must exist with equal counts, \
                 because each raw partition is sealed into the partition of the same number (`sealtrail topics` creates them)",
                config.raw_topic
            )));
        }
    }
    let first = Layout::first(
        &config.raw_topic,
        &config.sealed_topic,
        &config.dlq_topic,
        raw_partitions,
    );
    let history = layouts::read_history(&reader, &config.layout_topic, first, &trusted)?;
    let layout = layouts::configured_layout(&history, &config.raw_topic, &config.sealed_topic, &config.dlq_topic)?;
    if layout.partitions as usize != raw_partitions {
        return Err(SealError::Topology(format!(
            "topic {} has {raw_partitions} partitions, but layout epoch {} was made with {}; adding partitions in place would move tenants to new chains: move to new topics with `sealtrail reshard`",
            config.raw_topic, layout.epoch, layout.partitions
        )));
    }
    if let Some(change) = history.change_after(layout.epoch) {
        tracing::warn!(
            epoch = layout.epoch,
            next_raw_topic = %change.to.raw_topic,
            "this layout has been replaced: its partitions are closed where the change is met, and every record after it goes to the DLQ as layout_closed; run the seal processors of epoch {} once this one is closed",
            change.to.epoch
        );
    }
    let mut sealed_readers = SealedReaders::new(registry.clone());
    let handover = layouts::wait_for_handover(&reader, &mut sealed_readers, &history, &layout, &trusted, stop)?;
    let sealed_schema_id = registry
        .register(&format!("{}-value", config.sealed_topic), None, SEALED_RECORD_SCHEMA)
        .map_err(SealError::Registry)?;
    let producer: BaseProducer<Deliveries> = config
        .kafka
        .producer()
        // A record that cannot be delivered must stop the processor rather than leave a hole.
        .set("enable.gapless.guarantee", "true")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .create_with_context(Deliveries::default())
        .map_err(|e| SealError::Client(e.to_string()))?;
    let shared = Arc::new(Shared {
        producer,
        reader,
        sealed_readers: Mutex::new(sealed_readers),
        trusted,
        signer,
        sealed_schema_id,
        raw_partitions: i32::try_from(raw_partitions).unwrap_or(i32::MAX),
        epoch: layout.epoch,
        handover,
        partitions: Mutex::new(HashMap::new()),
        failure: Mutex::new(None),
        checkpoints: Mutex::new(0),
        rebalances: Mutex::new(RebalanceWatch::new()),
        config,
    });
    Ok((shared, tokenizer))
}

/// Records waiting this long with none arriving is reported as a stalled fetch.
const FETCH_STALL_WARNING: Duration = Duration::from_secs(30);

/// The state of the consume loop.
struct Loop<'a> {
    shared: &'a Shared,
    /// Reads high watermarks on a connection of its own, so a stalled fetch cannot hide the lag.
    probe: WatermarkProbe,
    /// The whole group's lag, which also counts partitions no live member owns.
    group_lag: GroupLagProbe,
    /// When the last raw record arrived, to tell a stalled fetch from an idle topic.
    last_record: Instant,
    registry: &'a RegistryClient,
    stop: &'a StopSignal,
    tokenizer: Tokenizer,
    verdicts: HashMap<u32, SchemaVerdict>,
    stats: ComponentStats,
    summary: SealSummary,
    first_record: Option<Instant>,
}

impl Loop<'_> {
    fn until_stopped(&mut self, consumer: &BaseConsumer<SealContextOf>) -> Result<(), SealError> {
        let shared = self.shared;
        let mut last_housekeeping = Instant::now();
        let mut last_commit = Instant::now();
        let mut last_lag: Option<Instant> = None;
        loop {
            if let Some(error) = lock(&shared.failure).take() {
                return Err(error);
            }
            if self.stop.is_stopped()
                || shared
                    .config
                    .stop_after
                    .is_some_and(|limit| self.summary.records >= limit)
            {
                return Ok(());
            }
            shared.producer.poll(Duration::ZERO);
            shared.check_deliveries()?;
            if lock(&shared.rebalances).take_rejoin(Instant::now()) {
                self.stats.error("stale_assignment");
                rejoin(consumer, &[&shared.config.raw_topic])?;
            }
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Err(error)) => {
                    self.stats.error("consume");
                    tracing::warn!(%error, "consume error");
                }
                Some(Ok(message)) => self.handle(&message)?,
            }
            if last_housekeeping.elapsed() >= Duration::from_millis(50) {
                last_housekeeping = Instant::now();
                let assigned: Vec<i32> = lock(&shared.partitions).keys().copied().collect();
                for partition in assigned {
                    shared.checkpoint_if_pending(partition, false)?;
                }
                if last_commit.elapsed() >= Duration::from_secs(1) {
                    last_commit = Instant::now();
                    shared.commit(consumer, CommitMode::Async);
                    for (partition, state) in lock(&shared.partitions).iter() {
                        let handled = state.sealer.handled_through();
                        shared.config.metrics.chain_head(*partition, handled);
                    }
                }
                if last_lag.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                    last_lag = Some(Instant::now());
                    let lag = self.lag();
                    self.stats.set_lag(lag);
                    let raw = &shared.config.raw_topic;
                    if let Some(group_lag) = self.group_lag.lag(&self.probe, raw) {
                        shared.config.metrics.group_lag(raw, group_lag);
                    }
                    dlq_depth(&self.probe, shared);
                }
                self.stats.report_if_due();
            }
        }
    }

    /// The raw records not handled yet, per assigned partition (as gauges) and in total, from the
    /// high watermarks; warns when records wait but none has arrived for a while.
    fn lag(&mut self) -> i64 {
        let shared = self.shared;
        let positions: Vec<(i32, i64)> = lock(&shared.partitions)
            .iter()
            .map(|(partition, state)| (*partition, state.sealer.handled_through() + 1))
            .collect();
        let topic = &shared.config.raw_topic;
        let lags = self.probe.lags(topic, positions);
        if lags.iter().any(|partition| partition.stale) {
            self.stats.error("watermarks_unavailable");
        }
        let pairs: Vec<(i32, i64)> = lags.iter().map(|p| (p.partition, p.lag)).collect();
        let total = shared.config.metrics.consumer_lags(topic, &pairs);
        let idle = self.last_record.elapsed();
        if total > 0 && idle >= FETCH_STALL_WARNING {
            self.stats.error("fetch_stalled");
            tracing::warn!(
                lag = total,
                idle_s = idle.as_secs(),
                "raw records are waiting but none has arrived; fetches from the broker may be stalled"
            );
        }
        total
    }

    fn handle(&mut self, message: &BorrowedMessage<'_>) -> Result<(), SealError> {
        let shared = self.shared;
        let partition = message.partition();
        let payload = message.payload();
        if let Some(change) = self.layout_change(message) {
            self.summary.records += 1;
            self.stats.received(1);
            self.stats.skipped("layout_change");
            return shared.close_epoch(partition, message.offset(), &change);
        }
        // Learn what the schema id means before sealing; a registry that cannot be reached is
        // waited for (the record is not bad), a registry that does not know the id rejects it.
        if let Some(framed) = payload.and_then(|bytes| Framed::parse(bytes).ok()) {
            let mut backoff = Duration::from_millis(200);
            while let Err(error) = self.registry.event_reader(&mut self.verdicts, framed.schema_id) {
                if self.stop.is_stopped() {
                    return Ok(());
                }
                tracing::warn!(%error, retry_in = ?backoff, "schema registry unavailable; retrying");
                self.stats.error("registry_unavailable");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
        self.summary.records += 1;
        self.last_record = Instant::now();
        self.first_record.get_or_insert_with(Instant::now);
        self.stats.received(1);
        // Only records that carry a producer's trace context get a span of their own.
        let span = trace_context::record_span(message.headers(), || {
            tracing::info_span!(
                "seal.record",
                otel.kind = "consumer",
                partition,
                offset = message.offset(),
                tenant = tracing::field::Empty,
                seq = tracing::field::Empty,
                outcome = tracing::field::Empty,
                trace_id = tracing::field::Empty,
            )
        });
        let _entered = span.as_ref().map(tracing::Span::enter);
        let now = now_ms();
        let mut partitions = lock(&shared.partitions);
        let Some(assigned) = partitions.get_mut(&partition) else {
            return Ok(());
        };
        let record = RawRecord {
            offset: message.offset(),
            key: message.key(),
            value: payload,
        };
        let mut context = SealContext {
            policy: &shared.config.policy,
            tokenizer: &mut self.tokenizer,
            now_ms: now,
            key_id: shared.signer.key_id(),
        };
        let verdicts = &self.verdicts;
        let disposition = assigned.sealer.handle(
            &record,
            |id| match verdicts.get(&id) {
                Some(SchemaVerdict::Readable(reader)) => SchemaLookup::Found(reader),
                Some(SchemaVerdict::Incompatible(reason)) => SchemaLookup::Incompatible(reason),
                Some(SchemaVerdict::Unknown) | None => SchemaLookup::Unknown,
            },
            &mut context,
        );
        let due = assigned.sealer.pending_entries() >= shared.config.checkpoint_every;
        if matches!(disposition, Disposition::AlreadyHandled) {
            assigned.reread_through = message.offset();
        }
        drop(partitions);
        self.publish(message, disposition, span.as_ref(), now)?;
        if due {
            shared.checkpoint_if_pending(partition, false)?;
        }
        Ok(())
    }

    /// The signed layout change a record carries, if it is one that ends this processor's epoch.
    /// Anything else marked as a layout change goes down the normal path, to the DLQ.
    fn layout_change(&mut self, message: &BorrowedMessage<'_>) -> Option<LayoutChange> {
        use rdkafka::message::Headers as _;
        let marked = message.headers().is_some_and(|headers| {
            headers
                .iter()
                .any(|h| h.key == CONTROL_HEADER && h.value == Some(LAYOUT_CHANGE_CONTROL))
        });
        if !marked {
            return None;
        }
        let shared = self.shared;
        let problem = match LayoutChange::parse_verified(message.payload().unwrap_or_default(), &shared.trusted) {
            Ok(change) if change.from.raw_topic == shared.config.raw_topic && change.from.epoch == shared.epoch => {
                return Some(change);
            }
            Ok(change) => format!(
                "it changes layout epoch {} of {}, this is epoch {} of {}",
                change.from.epoch, change.from.raw_topic, shared.epoch, shared.config.raw_topic
            ),
            Err(error) => error.to_string(),
        };
        self.stats.error("bad_layout_change");
        tracing::warn!(partition = message.partition(), offset = message.offset(), %problem, "a record marked as a layout change is refused and goes to the DLQ");
        None
    }

    /// Sends a sealed event to the sealed topic, or a rejected record to the DLQ.
    fn publish(
        &mut self,
        message: &BorrowedMessage<'_>,
        disposition: Disposition,
        span: Option<&tracing::Span>,
        now: i64,
    ) -> Result<(), SealError> {
        let shared = self.shared;
        let partition = message.partition();
        let payload = message.payload();
        match disposition {
            Disposition::Sealed(sealed) => {
                let tenant = sealed.event.tenant_id.clone();
                let occurred_at = sealed.event.occurred_at;
                let headers = span.map(|span| {
                    span.record("tenant", tenant.as_str());
                    span.record("seq", sealed.seal.tenant_seq);
                    span.record("outcome", "sealed");
                    // The sink continues the trace from the sealed record.
                    trace_context::inject(span, OwnedHeaders::new())
                });
                let bytes = shared.encode(&SealedRecord::Event(sealed));
                shared.send(
                    &shared.config.sealed_topic,
                    partition,
                    tenant.as_bytes(),
                    &bytes,
                    Produced::Sealed { partition },
                    headers,
                )?;
                self.summary.sealed += 1;
                self.stats.emitted(1);
                self.stats
                    .metrics()
                    .audit_lag(AuditStage::OccurredToSealed, (now - occurred_at) as f64 / 1000.0);
            }
            Disposition::Rejected(rejection) => {
                if let Some(span) = span {
                    span.record("outcome", rejection.code.as_str());
                }
                tracing::info!(partition, offset = message.offset(), reason = rejection.code.as_str(), detail = %rejection.detail, "record rejected to the DLQ");
                let headers = dlq::headers(
                    message.headers(),
                    &rejection,
                    &shared.config.raw_topic,
                    partition,
                    message.offset(),
                    now,
                );
                shared.send(
                    &shared.config.dlq_topic,
                    partition,
                    message.key().unwrap_or_default(),
                    payload.unwrap_or_default(),
                    Produced::Rejected { partition },
                    Some(headers),
                )?;
                self.summary.rejected += 1;
                self.stats.rejected(rejection.code.as_str());
            }
            Disposition::AlreadyHandled => {
                if let Some(span) = span {
                    span.record("outcome", "already_sealed");
                }
                self.stats.skipped("already_sealed");
            }
        }
        Ok(())
    }
}

/// Records held in the DLQ partitions this instance writes.
fn dlq_depth(probe: &WatermarkProbe, shared: &Shared) {
    let assigned: Vec<i32> = lock(&shared.partitions).keys().copied().collect();
    let mut depth = 0;
    for partition in assigned {
        match probe.watermarks(&shared.config.dlq_topic, partition) {
            Some((low, high)) => depth += (high - low).max(0),
            None => return,
        }
    }
    shared.config.metrics.dlq_depth(&shared.config.dlq_topic, depth);
}

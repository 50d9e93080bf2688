//! The seal loop: consume raw records, seal or reject each, produce the results, checkpoint.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sealtrail_core::avro::contract::SEALED_RECORD_SCHEMA;
use sealtrail_core::checkpoint::{CheckpointSigner, TrustedKey};
use sealtrail_core::layout::{Handover, Layout};
use sealtrail_core::sealer::{PartitionSealer, RecoveryError, SealerSettings};
use sealtrail_core::tokenize::Tokenizer;
use sealtrail_kafka::{
    CommittedOffsets, GroupLagProbe, KafkaError, PartitionReader, RebalanceWatch, WatermarkProbe, leave_group,
};
use sealtrail_runtime::keys::{self, KeyError};
use sealtrail_runtime::{ComponentStats, RegistryClient, SealedReaders, StopSignal};

use crate::SealConfig;
use crate::deliveries::Deliveries;
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

pub(crate) struct PartitionState {
    pub(crate) sealer: PartitionSealer,
    pub(crate) covered_through: i64,
    /// After a rewind of the group: the last raw offset read again and recognised as handled.
    pub(crate) reread_through: i64,
}

/// What the loop and the rebalance callback share.
pub(crate) struct Shared {
    pub(crate) config: SealConfig,
    pub(crate) producer: BaseProducer<Deliveries>,
    pub(crate) reader: PartitionReader,
    pub(crate) sealed_readers: Mutex<SealedReaders>,
    pub(crate) trusted: Vec<TrustedKey>,
    pub(crate) signer: CheckpointSigner,
    pub(crate) sealed_schema_id: u32,
    /// The raw topic's partition count at start, which places every tenant.
    pub(crate) raw_partitions: i32,
    /// The layout epoch this processor seals, and where its chains start if it is not the first.
    pub(crate) epoch: u32,
    pub(crate) handover: Option<Arc<Handover>>,
    pub(crate) partitions: Mutex<HashMap<i32, PartitionState>>,
    /// An error met inside a rebalance callback, reported by the loop.
    pub(crate) failure: Mutex<Option<SealError>>,
    pub(crate) checkpoints: Mutex<u64>,
    /// Tells the loop when the coordinator handed back a stale assignment (see `group_heal`).
    pub(crate) rebalances: Mutex<RebalanceWatch>,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Shared {
    pub(crate) fn settings(&self, partition: i32) -> SealerSettings {
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

    pub(crate) fn fail(&self, error: SealError) {
        let mut failure = lock(&self.failure);
        if failure.is_none() {
            *failure = Some(error);
        }
    }

    /// Recovers every newly assigned partition and assigns it at the offset recovery found.
    pub(crate) fn assign(&self, consumer: &BaseConsumer<SealContextOf>, assigned: &TopicPartitionList) {
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
    pub(crate) fn revoke(&self, consumer: &BaseConsumer<SealContextOf>, revoked: &[i32]) {
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

    /// Commits, per partition, what the last acknowledged checkpoint covers, or how far a rewound
    /// group has read again if that is further.
    pub(crate) fn commit(&self, consumer: &BaseConsumer<SealContextOf>, mode: CommitMode) {
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
pub(crate) struct SealContextOf {
    pub(crate) shared: Arc<Shared>,
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

    let mut work = crate::consume::Loop {
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
    let mut trusted = keys::load_trusted_or_none(&config.trusted_keys)?;
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

//! The seal processor as the driver runs it: recovery when a partition is assigned, sealing per
//! record (consume.rs), checkpoints on ticks (outputs.rs), a last checkpoint when revoked.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sealtrail_core::checkpoint::{CheckpointSigner, TrustedKey};
use sealtrail_core::layout::Handover;
use sealtrail_core::sealer::{PartitionSealer, RecoveryError, SealerSettings};
use sealtrail_core::tokenize::Tokenizer;
use sealtrail_kafka::KafkaError;
use sealtrail_runtime::driver::{Committed, Control, InputRecord, PartitionedProcessor};
use sealtrail_runtime::keys::KeyError;
use sealtrail_runtime::log::{LogError, PartitionLog};
use sealtrail_runtime::{RegistryClient, SchemaVerdict, SealedReaders};

use crate::SealConfig;
use crate::layouts::LayoutReadError;
use crate::producer::Outputs;
use crate::recovery::{RecoverySources, recover};

/// Why the processor stopped with an error. Every variant is worth a restart except
/// `Topology`, `Keys` and the ones naming corrupt data, which need an operator.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Log(#[from] LogError),
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

/// What the processor is made of, whatever it runs on.
pub struct SealParts {
    pub config: SealConfig,
    pub outputs: Box<dyn Outputs>,
    /// Reads the sealed and DLQ partitions back for recovery.
    pub log: Box<dyn PartitionLog>,
    /// Reads DLQ watermarks for the depth gauge, with a short timeout of its own.
    pub probe: Box<dyn PartitionLog>,
    pub registry: RegistryClient,
    pub trusted: Vec<TrustedKey>,
    pub signer: CheckpointSigner,
    pub tokenizer: Tokenizer,
    /// The raw topic's partition count, which places every tenant.
    pub raw_partitions: i32,
    /// The layout epoch this processor seals, and where its chains start if it is not the first.
    pub epoch: u32,
    pub handover: Option<Arc<Handover>>,
}

impl std::fmt::Debug for SealParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealParts")
            .field("raw_topic", &self.config.raw_topic)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// The seal processor: one [`PartitionSealer`] per assigned raw partition.
pub struct SealProcessor {
    pub(crate) config: SealConfig,
    pub(crate) outputs: Box<dyn Outputs>,
    pub(crate) log: Box<dyn PartitionLog>,
    pub(crate) probe: Box<dyn PartitionLog>,
    pub(crate) registry: RegistryClient,
    pub(crate) sealed_readers: SealedReaders,
    pub(crate) trusted: Vec<TrustedKey>,
    pub(crate) signer: CheckpointSigner,
    pub(crate) tokenizer: Tokenizer,
    pub(crate) sealed_schema_id: u32,
    pub(crate) raw_partitions: i32,
    pub(crate) epoch: u32,
    pub(crate) handover: Option<Arc<Handover>>,
    pub(crate) partitions: HashMap<i32, PartitionState>,
    pub(crate) verdicts: HashMap<u32, SchemaVerdict>,
    pub(crate) summary: SealSummary,
    pub(crate) first_record: Option<Instant>,
    pub(crate) last_gauges: Instant,
}

impl std::fmt::Debug for SealProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealProcessor")
            .field("raw_topic", &self.config.raw_topic)
            .field("epoch", &self.epoch)
            .field("partitions", &self.partitions.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl SealProcessor {
    /// Registers the sealed schema and makes the processor.
    pub fn new(parts: SealParts) -> Result<Self, SealError> {
        let sealed_schema_id = parts
            .registry
            .register(
                &format!("{}-value", parts.config.sealed_topic),
                None,
                sealtrail_core::avro::contract::SEALED_RECORD_SCHEMA,
            )
            .map_err(SealError::Registry)?;
        let mut trusted = parts.trusted;
        let own = TrustedKey::new(parts.signer.public_key().to_vec());
        if !trusted.contains(&own) {
            trusted.push(own);
        }
        Ok(Self {
            sealed_readers: SealedReaders::new(parts.registry.clone()),
            config: parts.config,
            outputs: parts.outputs,
            log: parts.log,
            probe: parts.probe,
            registry: parts.registry,
            trusted,
            signer: parts.signer,
            tokenizer: parts.tokenizer,
            sealed_schema_id,
            raw_partitions: parts.raw_partitions,
            epoch: parts.epoch,
            handover: parts.handover,
            partitions: HashMap::new(),
            verdicts: HashMap::new(),
            summary: SealSummary::default(),
            first_record: None,
            last_gauges: Instant::now(),
        })
    }

    /// What the run did so far.
    pub fn summary(&self) -> SealSummary {
        SealSummary {
            busy: self.first_record.map(|at| at.elapsed()).unwrap_or_default(),
            ..self.summary
        }
    }

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

    /// Rebuilds `partition` from the sealed topic and the DLQ; returns where to read it from.
    fn recover_partition(&mut self, partition: i32, committed: &Committed) -> Result<i64, SealError> {
        let started = Instant::now();
        let settings = self.settings(partition);
        let mut sources = RecoverySources {
            log: self.log.as_ref(),
            sealed_readers: &mut self.sealed_readers,
            trusted: &self.trusted,
            sealed_topic: &self.config.sealed_topic,
            dlq_topic: &self.config.dlq_topic,
            raw_topic: &self.config.raw_topic,
        };
        let recovered = recover(&mut sources, settings, now_ms())?;
        let recovered_at = recovered.sealer.resume_offset();
        // The sealed topic says where sealing stands; a group rewound below that is honoured by
        // reading again from there, every record recognised by its offset.
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
        self.outputs
            .deliveries()
            .lock()
            .dlq_next
            .insert(partition, recovered.dlq_next);
        let covered_through = recovered.sealer.handled_through();
        self.partitions.insert(
            partition,
            PartitionState {
                sealer: recovered.sealer,
                covered_through,
                reread_through: -1,
            },
        );
        Ok(resume)
    }
}

impl PartitionedProcessor for SealProcessor {
    type Error = SealError;

    fn on_assign(
        &mut self,
        partitions: &[i32],
        committed: &Committed,
        _control: &mut dyn Control,
    ) -> Result<Vec<(i32, i64)>, SealError> {
        let mut positions = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let resume = self.recover_partition(*partition, committed).inspect_err(|error| {
                tracing::error!(partition, %error, "partition recovery failed");
            })?;
            positions.push((*partition, resume));
        }
        Ok(positions)
    }

    fn on_record(&mut self, record: &dyn InputRecord, control: &mut dyn Control) -> Result<(), SealError> {
        self.handle(record, control)
    }

    fn on_tick(&mut self, _control: &mut dyn Control) -> Result<(), SealError> {
        self.outputs.poll(Duration::ZERO);
        self.check_deliveries()?;
        let assigned: Vec<i32> = self.partitions.keys().copied().collect();
        for partition in assigned {
            self.checkpoint_if_pending(partition, false)?;
        }
        if self.last_gauges.elapsed() >= Duration::from_secs(1) {
            self.last_gauges = Instant::now();
            for (partition, state) in &self.partitions {
                self.config
                    .metrics
                    .chain_head(*partition, state.sealer.handled_through());
            }
        }
        Ok(())
    }

    /// Checkpoints and flushes the partitions being taken away, so the next owner starts from a
    /// complete sealed log.
    fn on_revoke(&mut self, partitions: &[i32], _control: &mut dyn Control) -> Result<(), SealError> {
        let mut outcome = Ok(());
        for partition in partitions {
            if let Err(error) = self.checkpoint_if_pending(*partition, true) {
                outcome = outcome.and(Err(error));
            }
        }
        outcome.and_then(|()| self.flush())
    }

    fn release(&mut self, partitions: &[i32]) {
        let mut deliveries = self.outputs.deliveries().lock();
        for partition in partitions {
            self.partitions.remove(partition);
            // Else a partition that comes back would commit its old offset again, moving the
            // group backwards (over an operator's rewind, say).
            deliveries.committable.remove(partition);
        }
    }

    fn positions(&self) -> Vec<(i32, i64)> {
        self.partitions
            .iter()
            .map(|(partition, state)| (*partition, state.sealer.handled_through() + 1))
            .collect()
    }

    /// Per partition, what the last acknowledged checkpoint covers, or how far a rewound group
    /// has read again if that is further.
    fn committable(&self) -> Vec<(i32, i64)> {
        let committable = self.outputs.deliveries().lock().committable.clone();
        self.partitions
            .iter()
            .filter_map(|(partition, state)| {
                let covered = committable.get(partition).copied();
                let reread = (state.reread_through >= 0).then_some(state.reread_through + 1);
                covered.max(reread).map(|offset| (*partition, offset))
            })
            .collect()
    }

    fn is_done(&self) -> bool {
        self.config
            .stop_after
            .is_some_and(|limit| self.summary.records >= limit)
    }

    fn report(&mut self, _control: &mut dyn Control) {
        // Records held in the DLQ partitions this instance writes.
        let mut depth = 0;
        for partition in self.partitions.keys() {
            match self.probe.watermarks(&self.config.dlq_topic, *partition) {
                Ok((low, high)) => depth += (high - low).max(0),
                Err(_) => return,
            }
        }
        self.config.metrics.dlq_depth(&self.config.dlq_topic, depth);
    }
}

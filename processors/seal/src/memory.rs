//! The seal processor without Kafka: its producer writes into a [`MemoryLog`], so unit tests
//! (this crate's and the sink's) run it on the driver's memory source, crashes included, over
//! a [`MemoryPipeline`].

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use std::path::PathBuf;

use sealtrail_core::avro::contract::{AUDIT_EVENT_SCHEMA, encode_audit_event};
use sealtrail_core::avro::{Framed, Writer};
use sealtrail_core::checkpoint::CheckpointSigner;
use sealtrail_core::event::{Actor, ActorType, AuditEvent, Outcome, OutcomeStatus, Resource};
use sealtrail_core::placement::partition_for_key;
use sealtrail_core::policy::Policy;
use sealtrail_core::tokenize::Tokenizer;
use sealtrail_core::validate::Limits;
use sealtrail_kafka::KafkaSettings;
use sealtrail_runtime::driver::memory::{Halt, MemoryLog, MemorySource, Rebalance, UntilIdle};
use sealtrail_runtime::driver::{self, Cadence};
use sealtrail_runtime::log::PartitionLog;
use sealtrail_runtime::{Metrics, RegistryClient, StopSignal, Telemetry};

use crate::deliveries::{Deliveries, Produced};
use crate::producer::{OutputRecord, Outputs};
use crate::{SealConfig, SealError, SealParts, SealProcessor};

/// A queued record not delivered yet.
#[derive(Debug)]
struct Queued {
    topic: String,
    partition: i32,
    key: Vec<u8>,
    payload: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    produced: Produced,
}

/// A producer into a [`MemoryLog`]: records wait in a queue until a poll delivers them, in
/// order, so a processor dropped before a poll loses what a crashed process would lose.
#[derive(Debug)]
pub struct MemoryOutputs {
    log: MemoryLog,
    deliveries: Deliveries,
    queue: Mutex<Vec<Queued>>,
    /// How many queued records one poll delivers (`usize::MAX`: all).
    per_poll: usize,
    now_ms: fn() -> i64,
}

impl MemoryOutputs {
    pub fn new(log: &MemoryLog, per_poll: usize) -> Self {
        Self {
            log: log.clone(),
            deliveries: Deliveries::default(),
            queue: Mutex::new(Vec::new()),
            per_poll: per_poll.max(1),
            now_ms: crate::processor::now_ms,
        }
    }

    fn deliver(&self, at_most: usize) {
        let delivered: Vec<Queued> = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            let count = at_most.min(queue.len());
            queue.drain(..count).collect()
        };
        for record in delivered {
            let offset = self.log.append(
                &record.topic,
                record.partition,
                Some(&record.key),
                Some(&record.payload),
                record.headers,
                (self.now_ms)(),
            );
            self.deliveries.record(record.produced, Ok(offset));
        }
    }
}

impl Outputs for MemoryOutputs {
    fn send(&self, record: OutputRecord<'_>, produced: Produced) -> Result<(), String> {
        self.deliveries.sent(produced);
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).push(Queued {
            topic: record.topic.to_owned(),
            partition: record.partition,
            key: record.key.to_vec(),
            payload: record.payload.to_vec(),
            headers: record
                .headers
                .into_iter()
                .map(|(key, value)| (key, value.unwrap_or_default()))
                .collect(),
            produced,
        });
        Ok(())
    }

    fn poll(&self, _timeout: Duration) {
        self.deliver(self.per_poll);
    }

    fn flush(&self, _timeout: Duration) -> Result<(), String> {
        self.deliver(usize::MAX);
        Ok(())
    }

    fn deliveries(&self) -> &Deliveries {
        &self.deliveries
    }
}

pub const RAW: &str = "raw";
pub const SEALED: &str = "sealed";
pub const DLQ: &str = "dlq";
pub const GROUP: &str = "seal";
pub const PARTITIONS: i32 = 2;
const SIGNING_SEED: [u8; 32] = [7; 32];

/// Raw, sealed and DLQ topics of [`PARTITIONS`] partitions in memory, a registry and keys: a
/// pipeline for unit tests, on which seal processors run as they would on Kafka.
#[derive(Debug)]
pub struct MemoryPipeline {
    pub log: MemoryLog,
    pub registry: RegistryClient,
    raw_schema_id: u32,
}

/// The key every pipeline's checkpoints are signed with.
pub fn signer() -> CheckpointSigner {
    CheckpointSigner::from_seed(&SIGNING_SEED).expect("a signing key")
}

/// A valid audit event of `tenant`, numbered `n`, occurring now.
pub fn event(tenant: &str, n: usize, idempotency_key: Option<&str>) -> AuditEvent {
    AuditEvent {
        event_id: format!("01JD7Z8Y9X0W1V2K3T4S{n:06}"),
        tenant_id: tenant.to_owned(),
        occurred_at: crate::processor::now_ms(),
        action: "configuration.changed".to_owned(),
        actor: Actor {
            id: format!("user-{n}@example.com"),
            kind: ActorType::User,
            display_name: None,
            authority: None,
            on_behalf_of: None,
        },
        resource: Resource {
            kind: "feature_flag".to_owned(),
            id: format!("flag-{n}"),
            path: None,
        },
        outcome: Outcome {
            status: OutcomeStatus::Success,
            reason_code: None,
            reason_text: None,
        },
        correlation_id: None,
        causation_id: None,
        trace_id: None,
        span_id: None,
        idempotency_key: idempotency_key.map(str::to_owned),
        policy_version: None,
        evidence: Vec::new(),
        changes: Vec::new(),
        attributes: Vec::new(),
        session_id: None,
    }
}

impl Default for MemoryPipeline {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryPipeline {
    pub fn new() -> Self {
        let log = MemoryLog::new();
        for topic in [RAW, SEALED, DLQ] {
            log.create_topic(topic, PARTITIONS as usize);
        }
        let registry = RegistryClient::in_memory();
        let raw_schema_id = registry
            .register(&format!("{RAW}-value"), None, AUDIT_EVENT_SCHEMA)
            .expect("registered");
        Self {
            log,
            registry,
            raw_schema_id,
        }
    }

    /// Produces an audit event where a producer would: keyed by tenant, in its partition.
    pub fn produce_event(&self, tenant: &str, n: usize, idempotency_key: Option<&str>) {
        let mut writer = Writer::default();
        encode_audit_event(&event(tenant, n, idempotency_key), &mut writer);
        let framed = Framed::frame(self.raw_schema_id, &writer.into_bytes());
        let partition = partition_for_key(tenant.as_bytes(), PARTITIONS);
        self.produce_raw(partition, Some(tenant.as_bytes()), Some(&framed));
    }

    pub fn produce_raw(&self, partition: i32, key: Option<&[u8]>, value: Option<&[u8]>) {
        self.log
            .append(RAW, partition, key, value, Vec::new(), crate::processor::now_ms());
    }

    pub fn raw_end(&self, partition: i32) -> i64 {
        self.log.watermarks(RAW, partition).expect("raw partition").1
    }

    /// A seal processor on this pipeline whose producer delivers `per_poll` records per poll.
    pub fn processor(&self, per_poll: usize) -> SealProcessor {
        let config = SealConfig {
            kafka: KafkaSettings::new("memory"),
            raw_topic: RAW.to_owned(),
            sealed_topic: SEALED.to_owned(),
            dlq_topic: DLQ.to_owned(),
            layout_topic: "layouts".to_owned(),
            group: GROUP.to_owned(),
            instance_id: None,
            signing_key: PathBuf::new(),
            tokenization_key: PathBuf::new(),
            trusted_keys: PathBuf::new(),
            policy: Policy::default_policy(),
            limits: Limits::default(),
            checkpoint_every: 3,
            checkpoint_interval: Duration::from_secs(3600),
            idempotency_window: Duration::from_secs(3600),
            stop_after: None,
            metrics: Metrics::new("seal"),
        };
        SealProcessor::new(SealParts {
            config,
            outputs: Box::new(MemoryOutputs::new(&self.log, per_poll)),
            log: Box::new(self.log.clone()),
            probe: Box::new(self.log.clone()),
            registry: self.registry.clone(),
            trusted: Vec::new(),
            signer: signer(),
            tokenizer: Tokenizer::new(&[9; 32]).expect("a tokenization key"),
            raw_partitions: PARTITIONS,
            epoch: 1,
            handover: None,
        })
        .expect("a processor")
    }

    /// Runs `processor` as one member of the group, which gets every partition and then
    /// rebalances as `script` says.
    pub fn run(
        &self,
        processor: &mut UntilIdle<SealProcessor>,
        script: &[(usize, Rebalance)],
    ) -> Result<(), Halt<SealError>> {
        let mut source = MemorySource::new(&self.log, RAW, GROUP);
        source.rebalance(Rebalance::Assign((0..PARTITIONS).collect()));
        for (after, rebalance) in script {
            source.rebalance_after(*after, rebalance.clone());
        }
        let mut telemetry = Telemetry::new(Metrics::new("seal"));
        let quick = Cadence {
            poll: Duration::ZERO,
            tick: Duration::ZERO,
            commit: Duration::ZERO,
            lag: Duration::from_secs(3600),
        };
        driver::run(&mut source, processor, &mut telemetry, &StopSignal::new(), quick)
    }

    /// One instance from start to a drained input, then a clean stop.
    pub fn run_to_end(&self, per_poll: usize) -> Result<(), Halt<SealError>> {
        self.run(&mut UntilIdle::new(self.processor(per_poll)), &[])
    }

    /// One instance killed when the record after the first `records` arrives.
    pub fn run_crashing(&self, per_poll: usize, records: u64) -> Result<(), Halt<SealError>> {
        self.run(&mut UntilIdle::new(self.processor(per_poll)).crash_after(records), &[])
    }

    /// One instance whose group rebalances as `script` says.
    pub fn run_with_script(&self, per_poll: usize, script: &[(usize, Rebalance)]) -> Result<(), Halt<SealError>> {
        self.run(&mut UntilIdle::new(self.processor(per_poll)), script)
    }
}

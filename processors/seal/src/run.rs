//! The seal processor on Kafka: checks the topics and the layout, then runs the driver with a
//! consumer of the raw topic and a producer of the sealed topic and the DLQ.

use std::time::Duration;

use sealtrail_core::layout::Layout;
use sealtrail_core::tokenize::Tokenizer;
use sealtrail_kafka::{KafkaSource, PartitionReader};
use sealtrail_runtime::driver::{self, Cadence};
use sealtrail_runtime::keys::{self, KeyError};
use sealtrail_runtime::{RegistryClient, SealedReaders, StopSignal, Telemetry};

use crate::SealConfig;
use crate::deliveries::Deliveries;
use crate::layouts;
use crate::processor::{SealError, SealParts, SealProcessor, SealSummary};
use crate::producer::KafkaOutputs;

/// Runs the seal processor until `stop` is set (or `stop_after` records are handled), or an
/// error makes it unsafe to continue.
pub fn run(config: SealConfig, registry: &RegistryClient, stop: &StopSignal) -> Result<SealSummary, SealError> {
    let mut processor = start(config, registry, stop)?;
    let config = &processor.config;
    // Recovery (which reads back the idempotency window) may take minutes on a busy partition;
    // the group must not evict the instance meanwhile.
    let mut source = KafkaSource::subscribe(
        &config.kafka,
        &config.group,
        &config.raw_topic,
        config.instance_id.as_deref(),
        &[("max.poll.interval.ms", "1800000")],
    )?;
    tracing::info!(raw = %config.raw_topic, sealed = %config.sealed_topic, dlq = %config.dlq_topic, key_id = processor.signer.key_id(), "seal processor started");
    let mut telemetry = Telemetry::new(config.metrics.clone());
    let cadence = Cadence {
        tick: Duration::from_millis(50),
        ..Cadence::default()
    };
    driver::run(&mut source, &mut processor, &mut telemetry, stop, cadence)?;
    Ok(processor.summary())
}

/// Loads the keys, checks the topics and the layout, and makes the processor.
fn start(config: SealConfig, registry: &RegistryClient, stop: &StopSignal) -> Result<SealProcessor, SealError> {
    let signer = keys::load_signer(&config.signing_key)?;
    let tokenizer = Tokenizer::new(&keys::load_tokenization_key(&config.tokenization_key)?).map_err(|reason| {
        SealError::Keys(KeyError::Invalid {
            path: config.tokenization_key.clone(),
            what: "tokenization key",
            reason,
        })
    })?;
    let trusted = keys::load_trusted_or_none(&config.trusted_keys)?;

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
    let mut producer_config = config.kafka.producer();
    producer_config
        // A record that cannot be delivered must stop the processor rather than leave a hole.
        .set("enable.gapless.guarantee", "true")
        // A record not delivered in time stops the seal, and an idempotent producer whose records
        // timed out bumps its epoch, which a broker may refuse (Tansu answers UNKNOWN_PRODUCER_ID).
        // A broker slowed by load gets Kafka's own default delivery timeout before either.
        .set("message.timeout.ms", "120000")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000");
    let tokens = config
        .kafka
        .oauth_tokens()
        .map_err(|e| SealError::Client(e.to_string()))?;
    let producer = config
        .kafka
        .create_with_context(&producer_config, Deliveries::new(tokens))
        .map_err(|e| SealError::Client(e.to_string()))?;
    let probe = PartitionReader::new(&config.kafka, Duration::from_secs(2))?;
    SealProcessor::new(SealParts {
        outputs: Box::new(KafkaOutputs(producer)),
        log: Box::new(reader),
        probe: Box::new(probe),
        registry: registry.clone(),
        trusted,
        signer,
        tokenizer,
        raw_partitions: i32::try_from(raw_partitions).unwrap_or(i32::MAX),
        epoch: layout.epoch,
        handover,
        config,
    })
}

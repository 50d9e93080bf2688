//! The seal processor on the broker, next to a plain copy of the same topic.

use sealtrail_runtime::RegistryConnection;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use sealtrail_core::policy::Policy;
use sealtrail_core::validate::Limits;
use sealtrail_emit::generator::{Generated, Generator, Workload};
use sealtrail_emit::{AuditEmitter, acknowledged};
use sealtrail_kafka::{KafkaContext, KafkaSettings, TopicSpec, ensure_topics};
use sealtrail_runtime::{RegistryClient, StopSignal};
use sealtrail_seal::SealConfig;

use sealtrail_runtime::run_blocking;

const PARTITIONS: i32 = 4;

#[derive(Debug)]
pub struct EndToEndFigures {
    pub copy_rounds: Vec<f64>,
    pub seal_rounds: Vec<f64>,
    pub copy_median: f64,
    pub seal_median: f64,
}

pub async fn measure(
    kafka: &KafkaSettings,
    registry: &RegistryConnection,
    events: u64,
    rounds: usize,
) -> anyhow::Result<EndToEndFigures> {
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let raw = format!("bench-raw-{run}");
    ensure_topics(kafka, &[TopicSpec::new(&raw, PARTITIONS)]).await?;
    eprintln!("bench: producing {events} events to {raw} (not timed)");
    fill(kafka, registry, &raw, events, 50).await?;

    let keys = std::env::temp_dir().join(format!("sealtrail-bench-keys-{run}"));
    sealtrail_runtime::keys::init_key_dir(&keys)?;
    let (mut copy_rounds, mut seal_rounds) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Alternate which goes first, so neither always gets the warmer broker.
        for seal_first in [round % 2 == 1, round % 2 == 0] {
            if seal_first {
                let sealed = format!("bench-sealed-{run}-{round}");
                let dlq = format!("bench-dlq-{run}-{round}");
                ensure_topics(
                    kafka,
                    &[TopicSpec::new(&sealed, PARTITIONS), TopicSpec::new(&dlq, PARTITIONS)],
                )
                .await?;
                let config = seal_config(kafka, &raw, &sealed, &dlq, &keys, &format!("bench-seal-{run}-{round}"));
                let rate = seal_round(registry, config, events).await?;
                eprintln!("bench: round {} seal {rate:.0} events/s", round + 1);
                seal_rounds.push(rate);
            } else {
                let target = format!("bench-copy-{run}-{round}");
                ensure_topics(kafka, &[TopicSpec::new(&target, PARTITIONS)]).await?;
                let settings = kafka.clone();
                let (raw, group) = (raw.clone(), format!("bench-copy-{run}-{round}"));
                let rate = run_blocking(move || plain_copy(&settings, &raw, &target, &group, events)).await??;
                eprintln!("bench: round {} plain copy {rate:.0} events/s", round + 1);
                copy_rounds.push(rate);
            }
        }
    }
    std::fs::remove_dir_all(&keys).ok();
    let (mut copy, mut seal) = (copy_rounds.clone(), seal_rounds.clone());
    Ok(EndToEndFigures {
        copy_median: crate::median(&mut copy),
        seal_median: crate::median(&mut seal),
        copy_rounds,
        seal_rounds,
    })
}

/// Produces `events` good events of `tenants` tenants to `topic`, waiting for every acknowledgement.
pub async fn fill(
    kafka: &KafkaSettings,
    registry: &RegistryConnection,
    topic: &str,
    events: u64,
    tenants: usize,
) -> anyhow::Result<()> {
    let emitter = AuditEmitter::connect(kafka, registry, topic).await?;
    let now_ms = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    let mut generator = Generator::new(Workload {
        tenants,
        bad_ratio: 0.0,
        seed: 3,
        now_ms,
        tenant_prefix: String::new(),
    });
    let mut in_flight = FuturesUnordered::new();
    for _ in 0..events {
        if let Generated::Good(event) = generator.next_record() {
            in_flight.push(acknowledged(emitter.enqueue(&event)?));
        }
        while in_flight.len() > 20_000 {
            in_flight.next().await.transpose()?;
        }
    }
    while let Some(result) = in_flight.next().await {
        result?;
    }
    Ok(())
}

/// Consumes `from` and produces every record unchanged to the same partition of `to`, with the
/// seal's producer guarantees; timed from the first record read to the last acknowledged.
fn plain_copy(kafka: &KafkaSettings, from: &str, to: &str, group: &str, events: u64) -> anyhow::Result<f64> {
    let consumer: BaseConsumer<KafkaContext> = kafka.create(&kafka.consumer(group)).context("consumer")?;
    consumer.subscribe(&[from]).context("subscribe")?;
    let producer: BaseProducer<KafkaContext> = kafka
        .create(
            kafka
                .producer()
                .set("batch.num.messages", "10000")
                .set("queue.buffering.max.messages", "200000"),
        )
        .context("producer")?;
    let mut copied = 0_u64;
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while copied < events {
        anyhow::ensure!(Instant::now() < deadline, "the copy did not finish within 10 minutes");
        producer.poll(Duration::ZERO);
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message?;
        first.get_or_insert_with(Instant::now);
        let mut record = BaseRecord::to(to)
            .partition(message.partition())
            .key(message.key().unwrap_or_default())
            .payload(message.payload().unwrap_or_default());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    back,
                )) => {
                    record = back;
                    producer.poll(Duration::from_millis(5));
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
        copied += 1;
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(crate::per_second(
        copied,
        first.map(|at| at.elapsed()).unwrap_or_default(),
    ))
}

/// The seal processor's configuration for a bench round: the given topics and group, stopping
/// after the backlog.
pub fn seal_config(
    kafka: &KafkaSettings,
    raw: &str,
    sealed: &str,
    dlq: &str,
    keys: &std::path::Path,
    group: &str,
) -> SealConfig {
    SealConfig {
        kafka: kafka.clone(),
        raw_topic: raw.to_owned(),
        sealed_topic: sealed.to_owned(),
        dlq_topic: dlq.to_owned(),
        layout_topic: format!("{raw}-layouts"),
        group: group.to_owned(),
        instance_id: None,
        signing_key: keys.join(sealtrail_runtime::keys::SIGNING_KEY_FILE),
        tokenization_key: keys.join(sealtrail_runtime::keys::TOKENIZATION_KEY_FILE),
        trusted_keys: keys.join(sealtrail_runtime::keys::TRUSTED_DIR),
        policy: Policy::default_policy(),
        limits: Limits::default(),
        checkpoint_every: 1000,
        checkpoint_interval: Duration::from_secs(2),
        idempotency_window: Duration::from_secs(600),
        stop_after: None,
        metrics: sealtrail_runtime::Metrics::new("seal"),
    }
}

/// Seals `events` records with `config`, timed from the first record read to the last one acknowledged.
pub async fn seal_round(registry: &RegistryConnection, mut config: SealConfig, events: u64) -> anyhow::Result<f64> {
    config.stop_after = Some(events);
    let registry = RegistryClient::new(registry, tokio::runtime::Handle::current()).map_err(anyhow::Error::msg)?;
    let stop = StopSignal::new();
    let summary = run_blocking(move || sealtrail_seal::run(config, &registry, &stop)).await??;
    anyhow::ensure!(summary.sealed == events, "sealed {} of {events}", summary.sealed);
    Ok(crate::per_second(summary.sealed, summary.busy))
}

//! sealtrail's side: `seal` and `sink` as `sealtrail seal` and `sealtrail sink` run them (their
//! default batching and checkpoint cadence), on the same raw topic, into a database of their own.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use sealtrail_clickhouse::{ClickHouseSettings, apply_migrations};
use sealtrail_kafka::{KafkaSettings, TopicSpec, ensure_topics};
use sealtrail_runtime::{Metrics, RegistryClient, RegistryConnection, StopSignal, run_blocking};
use sealtrail_sink::SinkConfig;

use super::{Queryable, wait_until_queryable};
use crate::end_to_end::seal_config;

/// What one round of the pipeline needs.
#[derive(Debug)]
pub struct PipelineRound<'a> {
    pub kafka: &'a KafkaSettings,
    pub registry: &'a RegistryConnection,
    pub clickhouse: &'a ClickHouseSettings,
    pub keys: &'a Path,
    pub raw_topic: &'a str,
    pub partitions: i32,
    /// Names this round's database, topics and groups.
    pub name: &'a str,
}

/// Seals the raw topic and sinks it into a fresh database, timed from the moment both processors
/// start until `events` rows are queryable. The database and topics exist before the clock starts,
/// as the peer's tables do.
pub async fn run(round: &PipelineRound<'_>, events: u64) -> anyhow::Result<Queryable> {
    let database = round.name.replace('-', "_");
    let mut clickhouse = round.clickhouse.clone();
    clickhouse.database.clone_from(&database);
    apply_migrations(&clickhouse).await?;
    let (sealed, dlq) = (format!("{}-sealed", round.name), format!("{}-dlq", round.name));
    ensure_topics(
        round.kafka,
        &[
            TopicSpec::new(&sealed, round.partitions),
            TopicSpec::new(&dlq, round.partitions),
        ],
    )
    .await?;
    let mut seal = seal_config(
        round.kafka,
        round.raw_topic,
        &sealed,
        &dlq,
        round.keys,
        &format!("{}-seal", round.name),
    );
    seal.stop_after = Some(events);
    let sink = SinkConfig {
        kafka: round.kafka.clone(),
        clickhouse: clickhouse.clone(),
        sealed_topic: sealed,
        layout_epoch: 1,
        group: format!("{}-sink", round.name),
        instance_id: None,
        // The `sealtrail sink` defaults.
        batch_rows: sealtrail_sink::DEFAULT_BATCH_ROWS,
        batch_wait: sealtrail_sink::DEFAULT_BATCH_WAIT,
        max_buffered_bytes: sealtrail_sink::DEFAULT_MAX_BUFFERED_BYTES,
        stop_after: None,
        metrics: Metrics::new("sink"),
    };
    let runtime = tokio::runtime::Handle::current();
    let registry = RegistryClient::new(round.registry, runtime.clone()).map_err(anyhow::Error::msg)?;
    let (seal_registry, stop) = (registry.clone(), StopSignal::new());
    let (seal_stop, sink_stop) = (stop.clone(), stop.clone());
    let started = Instant::now();
    // A seal that stopped on an error leaves the sink waiting for records that never come.
    let seal_failed = Arc::new(AtomicBool::new(false));
    let failed = seal_failed.clone();
    // Spawned so both threads start now, not when awaited.
    let sealing = tokio::spawn(run_blocking(move || {
        let summary = sealtrail_seal::run(seal, &seal_registry, &seal_stop);
        failed.store(summary.is_err(), Ordering::SeqCst);
        summary
    }));
    let sinking = tokio::spawn(run_blocking(move || {
        sealtrail_sink::run(sink, &registry, runtime, &sink_stop)
    }));
    let admin = clickhouse.server_client();
    let running = || !seal_failed.load(Ordering::SeqCst) && !sinking.is_finished();
    let result = wait_until_queryable(&admin, &database, events, started, "sealtrail seal + sink", running).await;
    stop.stop();
    let seal_outcome = sealing.await??;
    let sink_outcome = sinking.await??;
    admin
        .query(&format!("DROP DATABASE IF EXISTS {database} SYNC"))
        .execute()
        .await?;
    let sealed = seal_outcome?;
    sink_outcome?;
    anyhow::ensure!(
        sealed.sealed == events,
        "the seal sealed {} of {events} events ({} rejected)",
        sealed.sealed,
        sealed.rejected
    );
    result
}

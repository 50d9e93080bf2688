use std::time::Duration;

use sealtrail_clickhouse::{apply_migrations, wait_for_clickhouse};
use sealtrail_runtime::{RegistryClient, StopSignal};
use sealtrail_sink::SinkConfig;

use crate::settings::{ClickHouseArgs, KafkaArgs, KeyArgs, MetricsArgs, RegistryUrlArgs, TopicArgs};

use sealtrail_runtime::run_blocking;

#[derive(Debug, clap::Args)]
pub struct SinkArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryUrlArgs,
    #[command(flatten)]
    topics: TopicArgs,
    #[command(flatten)]
    clickhouse: ClickHouseArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    /// The trusted keys check the layout changes that say which epoch the sealed topic is.
    #[command(flatten)]
    keys: KeyArgs,
    /// Consumer group; more instances in the group share the partitions.
    #[arg(long, env = "SINK_GROUP", default_value = "sealtrail-sink")]
    group: String,
    /// A stable id per instance, as for `sealtrail seal --instance-id`.
    #[arg(long, env = "SINK_INSTANCE_ID")]
    instance_id: Option<String>,
    /// Insert when a partition has this many rows buffered...
    #[arg(long, env = "SINK_BATCH_ROWS", default_value_t = sealtrail_sink::DEFAULT_BATCH_ROWS)]
    batch_rows: usize,
    /// ...or its oldest buffered row has waited this many milliseconds...
    #[arg(long, env = "SINK_BATCH_WAIT_MS", default_value_t = sealtrail_sink::DEFAULT_BATCH_WAIT_MS)]
    batch_wait_ms: u64,
    /// ...and insert every partition's rows once their sealed records total this many MiB (the
    /// sink holds about twice that in memory).
    #[arg(long, env = "SINK_MAX_BUFFERED_MB", default_value_t = sealtrail_sink::DEFAULT_MAX_BUFFERED_BYTES >> 20)]
    max_buffered_mb: usize,
}

pub async fn run(args: SinkArgs) -> anyhow::Result<()> {
    let metrics = args.metrics.start("sink").await?;
    metrics.set_not_ready("waiting for the broker, ClickHouse and a partition assignment");
    let kafka = args.kafka.settings();
    let clickhouse = args.clickhouse.settings()?;
    sealtrail_kafka::wait_for_broker(&kafka, args.kafka.connect_timeout()).await?;
    wait_for_clickhouse(&clickhouse, Duration::from_secs(60)).await?;
    apply_migrations(&clickhouse).await?;
    let layout = {
        let (kafka, topics, trusted) = (kafka.clone(), args.topics.clone(), args.keys.trusted_keys());
        run_blocking(move || super::reshard::sealed_layout(&kafka, &topics, &trusted)).await??
    };
    tracing::info!(sealed = %layout.sealed_topic, epoch = layout.epoch, "the sealed topic's partition layout");
    let config = SinkConfig {
        kafka,
        clickhouse,
        layout_epoch: layout.epoch,
        sealed_topic: args.topics.sealed_topic,
        group: args.group,
        instance_id: args.instance_id,
        batch_rows: args.batch_rows.max(1),
        batch_wait: Duration::from_millis(args.batch_wait_ms),
        max_buffered_bytes: args.max_buffered_mb.max(1) << 20,
        stop_after: None,
        metrics,
    };
    let stop = StopSignal::new();
    stop.on_unix_signals();
    let runtime = tokio::runtime::Handle::current();
    let registry = RegistryClient::new(&args.registry.connection()?, runtime.clone()).map_err(anyhow::Error::msg)?;
    let summary = run_blocking(move || sealtrail_sink::run(config, &registry, runtime, &stop)).await??;
    println!(
        "sink stopped: {} sealed records read; {} events and {} checkpoints inserted in {} inserts",
        summary.records, summary.events, summary.checkpoints, summary.inserts
    );
    Ok(())
}

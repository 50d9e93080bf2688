use sealtrail_kafka::{TopicSpec, ensure_topics, wait_for_broker};

use crate::settings::{KafkaArgs, TopicArgs};

#[derive(Debug, clap::Args)]
pub struct TopicsArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    topics: TopicArgs,
    /// Partitions of each topic. The three must have the same count, and it must never change:
    /// a tenant's chain lives in the partition its key hashes to.
    #[arg(long, env = "TOPIC_PARTITIONS", default_value_t = 4)]
    partitions: i32,
    /// Hours the raw topic keeps records: long enough to outlast any seal processor outage, and
    /// short, because raw records may carry personal data that sealing redacts.
    #[arg(long, env = "RAW_RETENTION_HOURS", default_value_t = RAW_RETENTION_HOURS)]
    raw_retention_hours: u64,
}

pub use sealtrail_seal::layouts::reshard::RAW_RETENTION_HOURS;

/// The pipeline's three topics for `topics` (see `sealtrail_seal::layouts::reshard::topic_specs`).
pub fn specs(topics: &TopicArgs, partitions: i32, raw_retention_hours: u64) -> Vec<TopicSpec> {
    sealtrail_seal::layouts::reshard::topic_specs(
        &topics.raw_topic,
        &topics.sealed_topic,
        &topics.dlq_topic,
        partitions,
        raw_retention_hours,
    )
}

pub async fn run(args: TopicsArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.partitions > 0, "--partitions must be at least 1");
    let kafka = args.kafka.settings();
    wait_for_broker(&kafka, args.kafka.connect_timeout()).await?;
    anyhow::ensure!(args.raw_retention_hours > 0, "--raw-retention-hours must be at least 1");
    ensure_topics(&kafka, &specs(&args.topics, args.partitions, args.raw_retention_hours)).await?;
    println!(
        "topics ready on {}: {} (kept {} h), {} and {} (kept forever), {} partitions each",
        kafka.bootstrap,
        args.topics.raw_topic,
        args.raw_retention_hours,
        args.topics.sealed_topic,
        args.topics.dlq_topic,
        args.partitions
    );
    Ok(())
}

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

/// A week: the raw topic's default retention.
pub const RAW_RETENTION_HOURS: u64 = 168;

/// The pipeline's topics (docs/retention.md): raw kept `raw_retention_hours`; sealed and DLQ
/// kept forever, so the sealed topic outlives the longest retention policy (ClickHouse can always
/// be rebuilt from it) and no rejected record is lost before it is replayed.
pub fn specs(topics: &TopicArgs, partitions: i32, raw_retention_hours: u64) -> Vec<TopicSpec> {
    let raw_ms = raw_retention_hours.saturating_mul(3_600_000).to_string();
    vec![
        TopicSpec::new(&topics.raw_topic, partitions).with_config("retention.ms", &raw_ms),
        TopicSpec::new(&topics.sealed_topic, partitions).with_config("retention.ms", "-1"),
        TopicSpec::new(&topics.dlq_topic, partitions).with_config("retention.ms", "-1"),
    ]
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

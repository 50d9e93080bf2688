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
}

/// The pipeline's topics: raw, sealed (kept forever) and DLQ.
pub fn specs(topics: &TopicArgs, partitions: i32) -> Vec<TopicSpec> {
    vec![
        TopicSpec::new(&topics.raw_topic, partitions),
        TopicSpec::new(&topics.sealed_topic, partitions).with_config("retention.ms", "-1"),
        TopicSpec::new(&topics.dlq_topic, partitions).with_config("retention.ms", "-1"),
    ]
}

pub async fn run(args: TopicsArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.partitions > 0, "--partitions must be at least 1");
    let kafka = args.kafka.settings();
    wait_for_broker(&kafka, args.kafka.connect_timeout()).await?;
    ensure_topics(&kafka, &specs(&args.topics, args.partitions)).await?;
    println!(
        "topics ready on {}: {}, {}, {} ({} partitions each)",
        kafka.bootstrap, args.topics.raw_topic, args.topics.sealed_topic, args.topics.dlq_topic, args.partitions
    );
    Ok(())
}

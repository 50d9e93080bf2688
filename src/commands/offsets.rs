//! `sealtrail offsets describe|reset`: a consumer group's committed offsets, end offsets and lag,
//! and rewinding (or advancing) them to replay, with the selectors of Kafka's
//! `kafka-consumer-groups --reset-offsets`. A reset is a dry run unless `--execute` is given.

use std::time::Duration;

use anyhow::Context as _;
use sealtrail_kafka::{GroupOffsets, PartitionOffsets, ResetTarget};
use time::OffsetDateTime;

use crate::settings::{KafkaArgs, parse_time};

#[derive(Debug, clap::Args)]
pub struct OffsetsArgs {
    #[command(subcommand)]
    command: OffsetsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum OffsetsCommand {
    /// For each partition: the group's committed offset, the end offset and the lag.
    Describe(DescribeArgs),
    /// Move the group's offsets (a dry run printing before and after, unless --execute).
    Reset(ResetArgs),
}

#[derive(Debug, clap::Args)]
struct DescribeArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[arg(long)]
    group: String,
    /// Topics to describe (repeatable); the pipeline's raw, sealed and DLQ topics by default.
    #[arg(long = "topic")]
    topics: Vec<String>,
    #[command(flatten)]
    pipeline: crate::settings::TopicArgs,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true)))]
struct ResetArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[arg(long)]
    group: String,
    #[arg(long)]
    topic: String,
    /// Only these partitions (comma-separated); all by default.
    #[arg(long, value_delimiter = ',')]
    partitions: Option<Vec<i32>>,
    /// To the first offset still stored.
    #[arg(long, group = "target")]
    to_earliest: bool,
    /// To the end (skip everything not yet read).
    #[arg(long, group = "target")]
    to_latest: bool,
    /// To the first record at or after this time (RFC 3339), as the broker finds it by timestamp.
    #[arg(long, group = "target", value_parser = parse_time)]
    to_datetime: Option<OffsetDateTime>,
    /// To this offset (kept within what the partition stores).
    #[arg(long, group = "target", allow_negative_numbers = true)]
    to_offset: Option<i64>,
    /// By this many records from the committed offset (negative rewinds).
    #[arg(long, group = "target", allow_negative_numbers = true)]
    shift_by: Option<i64>,
    /// Apply the reset; without it, only print what it would do.
    #[arg(long)]
    execute: bool,
}

const TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(args: OffsetsArgs) -> anyhow::Result<()> {
    match args.command {
        OffsetsCommand::Describe(args) => describe(args).await,
        OffsetsCommand::Reset(args) => reset(args).await,
    }
}

fn committed_text(offsets: &PartitionOffsets) -> String {
    offsets
        .committed
        .map_or_else(|| "-".to_owned(), |offset| offset.to_string())
}

async fn describe(args: DescribeArgs) -> anyhow::Result<()> {
    let kafka = args.kafka.settings();
    sealtrail_kafka::wait_for_broker(&kafka, args.kafka.connect_timeout()).await?;
    let topics = if args.topics.is_empty() {
        vec![
            args.pipeline.raw_topic,
            args.pipeline.sealed_topic,
            args.pipeline.dlq_topic,
        ]
    } else {
        args.topics
    };
    let group = args.group.clone();
    let rows = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<PartitionOffsets>> {
        let offsets = GroupOffsets::new(&kafka, &group, TIMEOUT)?;
        let mut rows = Vec::new();
        for topic in &topics {
            rows.extend(offsets.describe(topic, None)?);
        }
        Ok(rows)
    })
    .await??;
    println!("group {}", args.group);
    println!(
        "{:<32} {:>9} {:>12} {:>12} {:>10}",
        "TOPIC", "PARTITION", "COMMITTED", "END", "LAG"
    );
    for row in &rows {
        println!(
            "{:<32} {:>9} {:>12} {:>12} {:>10}",
            row.topic,
            row.partition,
            committed_text(row),
            row.latest,
            row.lag()
        );
    }
    let committed = rows.iter().filter(|r| r.committed.is_some()).count();
    println!(
        "{} partitions, {committed} with a committed offset, total lag {}",
        rows.len(),
        rows.iter().map(PartitionOffsets::lag).sum::<i64>()
    );
    Ok(())
}

async fn reset(args: ResetArgs) -> anyhow::Result<()> {
    let target = if args.to_earliest {
        ResetTarget::Earliest
    } else if args.to_latest {
        ResetTarget::Latest
    } else if let Some(at) = args.to_datetime {
        ResetTarget::Datetime(sealtrail_clickhouse::unix_ms(at))
    } else if let Some(offset) = args.to_offset {
        ResetTarget::Offset(offset)
    } else if let Some(shift) = args.shift_by {
        ResetTarget::ShiftBy(shift)
    } else {
        anyhow::bail!("give a target: --to-earliest, --to-latest, --to-datetime, --to-offset or --shift-by");
    };
    let kafka = args.kafka.settings();
    sealtrail_kafka::wait_for_broker(&kafka, args.kafka.connect_timeout()).await?;
    let (group, topic, partitions, execute) = (
        args.group.clone(),
        args.topic.clone(),
        args.partitions.clone(),
        args.execute,
    );
    tokio::task::spawn_blocking(move || reset_blocking(&kafka, &group, &topic, partitions.as_deref(), target, execute))
        .await?
}

fn reset_blocking(
    kafka: &sealtrail_kafka::KafkaSettings,
    group: &str,
    topic: &str,
    partitions: Option<&[i32]>,
    target: ResetTarget,
    execute: bool,
) -> anyhow::Result<()> {
    let offsets = GroupOffsets::new(kafka, group, TIMEOUT)?;
    let plan = offsets.plan_reset(topic, partitions, target)?;
    println!("group {group}, topic {topic}: {target:?}");
    println!(
        "{:>9} {:>12} {:>12} {:>12} {:>10}",
        "PARTITION", "COMMITTED", "NEW", "END", "NEW LAG"
    );
    for (row, new) in &plan.moves {
        println!(
            "{:>9} {:>12} {:>12} {:>12} {:>10}",
            row.partition,
            committed_text(row),
            new,
            row.latest,
            row.latest - new
        );
    }
    if !execute {
        println!("dry run: nothing changed; add --execute to apply");
        return Ok(());
    }
    let applied = offsets
        .apply_reset(&plan)
        .with_context(|| format!("resetting the offsets of group {group}"))?;
    if let Some(why) = applied.unknown_members {
        eprintln!(
            "note: the broker cannot say whether group {group} had live members ({why}); make sure its processors are stopped, or they will overwrite the reset"
        );
    }
    println!(
        "reset applied: {} partitions of {topic} for group {group}",
        applied.partitions
    );
    Ok(())
}

//! `sealtrail dlq list|show|replay`: the dead-letter queue, read without a consumer group, and
//! replayed to the raw topic after a fix (the replay protocol: `sealtrail_seal::dlq`).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use sealtrail_kafka::{PartitionReader, PartitionRecord};
use sealtrail_seal::dlq::{self, Rejected};
use time::OffsetDateTime;

use crate::settings::{KafkaArgs, TopicArgs, parse_time};

#[derive(Debug, clap::Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DlqCommand {
    /// The rejected records: where from, when, why; and counts per reason.
    List(Selection),
    /// One record's headers and size (not its payload: it may hold unredacted personal data).
    Show {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        partition: i32,
        #[arg(long)]
        offset: i64,
    },
    /// Re-publish the selected records to the raw topic, with their provenance.
    Replay {
        #[command(flatten)]
        selection: Selection,
        /// Records already replayed this many times are left in the DLQ.
        #[arg(long, default_value_t = 3)]
        max_attempts: u32,
        /// Say what would be replayed, and replay nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Clone, clap::Args)]
struct Common {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    topics: TopicArgs,
}

#[derive(Debug, Clone, clap::Args)]
struct Selection {
    #[command(flatten)]
    common: Common,
    /// Only records rejected for this reason (`unknown_schema`, `not_avro`, ...).
    #[arg(long)]
    reason: Option<String>,
    /// Only records rejected at or after this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    since: Option<OffsetDateTime>,
    /// At most this many records are listed.
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

const TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(args: DlqArgs) -> anyhow::Result<()> {
    match args.command {
        DlqCommand::List(selection) => list(selection).await,
        DlqCommand::Show {
            common,
            partition,
            offset,
        } => show(common, partition, offset).await,
        DlqCommand::Replay {
            selection,
            max_attempts,
            dry_run,
        } => replay(selection, max_attempts, dry_run).await,
    }
}

/// Every DLQ record up to the end observed at the start, selected, in partition and offset order.
async fn selected(selection: &Selection) -> anyhow::Result<Vec<Rejected>> {
    let kafka = selection.common.kafka.settings();
    sealtrail_kafka::wait_for_broker(&kafka, selection.common.kafka.connect_timeout()).await?;
    let topic = selection.common.topics.dlq_topic.clone();
    let reason = selection.reason.clone();
    let since_ms = selection.since.map(sealtrail_clickhouse::unix_ms);
    Ok(tokio::task::spawn_blocking(move || dlq::read_rejected(&kafka, &topic, reason.as_deref(), since_ms)).await??)
}

async fn list(selection: Selection) -> anyhow::Result<()> {
    let records = selected(&selection).await?;
    println!(
        "{:>9} {:>9} {:<24} {:<20} {:>8}  DETAIL",
        "PARTITION", "OFFSET", "REJECTED AT", "REASON", "REPLAYS"
    );
    for rejected in records.iter().take(selection.limit) {
        let at = rejected
            .header(dlq::REJECTED_AT)
            .parse::<i64>()
            .ok()
            .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
            .and_then(|at| at.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        let mut detail = rejected.header(dlq::DETAIL);
        if detail.len() > 80 {
            let cut = (0..=77).rev().find(|i| detail.is_char_boundary(*i)).unwrap_or(0);
            detail.truncate(cut);
            detail.push_str("...");
        }
        println!(
            "{:>9} {:>9} {:<24} {:<20} {:>8}  {detail}",
            rejected.partition,
            rejected.record.offset,
            at,
            rejected.header(dlq::REASON),
            rejected.attempts()
        );
    }
    let mut by_reason: HashMap<String, usize> = HashMap::new();
    for rejected in &records {
        *by_reason.entry(rejected.header(dlq::REASON)).or_default() += 1;
    }
    let mut counts: Vec<_> = by_reason.into_iter().collect();
    counts.sort();
    let counts: Vec<String> = counts.iter().map(|(reason, n)| format!("{reason}: {n}")).collect();
    println!(
        "{} records selected ({} shown); by reason: {}",
        records.len(),
        records.len().min(selection.limit),
        if counts.is_empty() {
            "none".to_owned()
        } else {
            counts.join(", ")
        }
    );
    Ok(())
}

async fn show(common: Common, partition: i32, offset: i64) -> anyhow::Result<()> {
    let kafka = common.kafka.settings();
    let topic = common.topics.dlq_topic.clone();
    let record = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<PartitionRecord>> {
        let reader = PartitionReader::new(&kafka, TIMEOUT)?;
        Ok(reader.read(&topic, partition, offset, offset + 1)?.into_iter().next())
    })
    .await??
    .with_context(|| format!("no record at partition {partition} offset {offset} of the DLQ"))?;
    println!("DLQ record {partition}/{offset}");
    for (key, value) in &record.headers {
        println!("  {key}: {}", String::from_utf8_lossy(value));
    }
    println!(
        "  key: {}",
        record
            .key
            .as_deref()
            .map_or_else(|| "(none)".to_owned(), |k| String::from_utf8_lossy(k).into_owned())
    );
    println!(
        "  payload: {} bytes (not shown)",
        record.value.as_ref().map_or(0, Vec::len)
    );
    Ok(())
}

async fn replay(selection: Selection, max_attempts: u32, dry_run: bool) -> anyhow::Result<()> {
    let records = selected(&selection).await?;
    let kafka = selection.common.kafka.settings();
    let plan = dlq::plan_replay(&kafka, &selection.common.topics.dlq_topic, &records, max_attempts).await?;
    println!(
        "{} records selected: {} to replay, {} already replayed, {} left after {max_attempts} attempts, {} not_delivered (no record to replay)",
        records.len(),
        plan.due.len(),
        plan.done.len(),
        plan.exhausted.len(),
        plan.nothing_to_replay.len()
    );
    if dry_run || plan.due.is_empty() {
        return Ok(());
    }
    let raw = &selection.common.topics.raw_topic;
    let bar = ProgressBar::new(plan.due.len() as u64).with_style(ProgressStyle::with_template(
        "  replaying {bar:40} {pos}/{len} records",
    )?);
    let summary = dlq::replay(&kafka, &plan, raw, || bar.inc(1)).await?;
    bar.finish_and_clear();
    println!(
        "replayed {} records to {raw} ({} to the partition their key belongs to); records rejected again return to the DLQ with their attempt count (see `sealtrail dlq list`)",
        summary.replayed, summary.moved
    );
    Ok(())
}

//! `sealtrail reshard`: moves the pipeline to new topics with another partition count without
//! forking a chain (docs/operations.md, "Resharding").
//!
//! 1. creates the new layout's raw, sealed and DLQ topics;
//! 2. signs the layout change and records it in the layout topic;
//! 3. writes it into every raw partition of the old layout: each partition's seal processor meets
//!    it in order, seals everything before it, writes a final checkpoint and seals nothing after;
//! 4. waits until every old partition is closed and the sink has stored the final checkpoints.
//!
//! The new layout's seal processors continue every tenant's chain from those final checkpoints.
//! Running it again resumes: the change is recorded once, and only open partitions get it again.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use sealtrail_core::checkpoint::{CheckpointSigner, TrustedKey};
use sealtrail_core::layout::{Layout, LayoutChange, LayoutHistory};
use sealtrail_kafka::{KafkaSettings, PartitionReader, ensure_topics, wait_for_broker};
use sealtrail_runtime::keys;
use sealtrail_runtime::{RegistryClient, SealedReaders};
use sealtrail_seal::layouts;

use super::topics::{RAW_RETENTION_HOURS, specs};
use crate::settings::{ClickHouseArgs, KafkaArgs, KeyArgs, RegistryUrlArgs, TopicArgs};

#[derive(Debug, clap::Args)]
pub struct ReshardArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// The pipeline's first topics (the layout before any reshard) and the layout topic.
    #[command(flatten)]
    topics: TopicArgs,
    #[command(flatten)]
    registry: RegistryUrlArgs,
    #[command(flatten)]
    keys: KeyArgs,
    #[command(flatten)]
    clickhouse: ClickHouseArgs,
    /// Partitions of the new layout's topics.
    #[arg(long)]
    partitions: Option<u32>,
    /// The new raw topic (default: the first raw topic with `.epoch-N`).
    #[arg(long)]
    to_raw_topic: Option<String>,
    /// The new sealed topic (default: the first sealed topic with `.epoch-N`).
    #[arg(long)]
    to_sealed_topic: Option<String>,
    /// The new DLQ topic (default: the first DLQ topic with `.epoch-N`).
    #[arg(long)]
    to_dlq_topic: Option<String>,
    /// Only show the layout history and which partitions of the current layout are closed.
    #[arg(long)]
    status: bool,
    /// Give up waiting for the old layout to close after this many seconds (it goes on closing;
    /// run the command again to keep waiting).
    #[arg(long, default_value_t = 1800)]
    timeout_secs: u64,
}

/// What the command needs to read layouts and final checkpoints.
struct Reading {
    reader: PartitionReader,
    sealed: SealedReaders,
    trusted: Vec<TrustedKey>,
}

pub async fn run(args: ReshardArgs) -> anyhow::Result<()> {
    let kafka = args.kafka.settings();
    wait_for_broker(&kafka, args.kafka.connect_timeout()).await?;
    let runtime = tokio::runtime::Handle::current();
    // Reading partitions and the registry blocks, so the command runs on a thread of its own.
    sealtrail_runtime::run_blocking(move || reshard(&args, &kafka, &runtime)).await?
}

fn reshard(args: &ReshardArgs, kafka: &KafkaSettings, runtime: &tokio::runtime::Handle) -> anyhow::Result<()> {
    let trusted = keys::load_trusted_or_none(&args.keys.trusted_keys())?;
    let mut reading = Reading {
        reader: PartitionReader::new(kafka, Duration::from_secs(30))?,
        sealed: SealedReaders::new(RegistryClient::new(&args.registry.schema_registry_url, runtime.clone())),
        trusted,
    };
    let history = read_history(&reading.reader, &reading.trusted, &args.topics)?;
    if args.status {
        return print_status(&mut reading, &history);
    }
    let signer = keys::load_signer(&args.keys.signing_key())?;
    let own = TrustedKey::new(signer.public_key().to_vec());
    if !reading.trusted.contains(&own) {
        reading.trusted.push(own);
    }
    let (from, to, open) = if let Some((change, open)) = resumable(&mut reading, &history)? {
        anyhow::ensure!(
            args.partitions.is_none_or(|p| p == change.to.partitions),
            "a move to {} partitions ({}) is under way; finish it first (run without --partitions)",
            change.to.partitions,
            change.to.raw_topic
        );
        println!(
            "resuming the move from layout epoch {} to {}: partitions {open:?} are not closed yet",
            change.from.epoch, change.to.epoch
        );
        runtime.block_on(layouts::mark_partitions(kafka, &change, &open))?;
        (change.from, change.to, open)
    } else {
        let change = new_change(args, &history, &signer)?;
        change.verify(&reading.trusted)?;
        runtime.block_on(create_topics(kafka, &reading.reader, &change.to))?;
        runtime.block_on(layouts::record_change(kafka, &args.topics.layout_topic, &change))?;
        // Another reshard may have recorded its move first: the first one recorded wins.
        let recorded = read_history(&reading.reader, &reading.trusted, &args.topics)?;
        if let Some(winner) = recorded.change_after(change.from.epoch)
            && winner.to != change.to
        {
            anyhow::bail!(
                "another reshard recorded its move first (to {} with {} partitions), so this one is void; run `sealtrail reshard` without --partitions to finish that one",
                winner.to.raw_topic,
                winner.to.partitions
            );
        }
        let open: Vec<i32> = (0..i32::try_from(change.from.partitions).unwrap_or(i32::MAX)).collect();
        runtime.block_on(layouts::mark_partitions(kafka, &change, &open))?;
        (change.from, change.to, open)
    };
    println!(
        "layout change to epoch {} ({} partitions) recorded; {} raw partitions of {} marked, their seal processors close them in order",
        to.epoch,
        to.partitions,
        open.len(),
        from.raw_topic
    );
    wait_closed(&mut reading, &from, Duration::from_secs(args.timeout_secs))?;
    runtime.block_on(wait_stored(
        &args.clickhouse,
        &from,
        Duration::from_secs(args.timeout_secs),
    ))?;
    summarize(&mut reading, &from, &to)
}

/// The topics of the newest layout over the first topics `first` (for `sealtrail up`).
pub fn current_topics(
    kafka: &KafkaSettings,
    first: &TopicArgs,
    trusted_keys: &std::path::Path,
) -> anyhow::Result<TopicArgs> {
    let reader = PartitionReader::new(kafka, Duration::from_secs(30))?;
    let history = read_history(&reader, &keys::load_trusted_or_none(trusted_keys)?, first)?;
    let current = history.current();
    Ok(TopicArgs {
        raw_topic: current.raw_topic.clone(),
        sealed_topic: current.sealed_topic.clone(),
        dlq_topic: current.dlq_topic.clone(),
        layout_topic: first.layout_topic.clone(),
    })
}

/// The layout whose sealed topic is the configured one, for the sink.
pub fn sealed_layout(
    kafka: &KafkaSettings,
    topics: &TopicArgs,
    trusted_keys: &std::path::Path,
) -> anyhow::Result<Layout> {
    let reader = PartitionReader::new(kafka, Duration::from_secs(30))?;
    let history = read_history(&reader, &keys::load_trusted_or_none(trusted_keys)?, topics)?;
    history.by_sealed_topic(&topics.sealed_topic).cloned().with_context(|| {
        format!(
            "sealed topic {} is in no layout of this pipeline; the current layout (epoch {}) seals into {}: set SEALED_TOPIC to it",
            topics.sealed_topic,
            history.current().epoch,
            history.current().sealed_topic
        )
    })
}

/// The history over the configured first topics.
fn read_history(reader: &PartitionReader, trusted: &[TrustedKey], topics: &TopicArgs) -> anyhow::Result<LayoutHistory> {
    let first_partitions = reader.partition_count(&topics.raw_topic)?;
    let first = Layout::first(
        &topics.raw_topic,
        &topics.sealed_topic,
        &topics.dlq_topic,
        first_partitions,
    );
    Ok(layouts::read_history(reader, &topics.layout_topic, first, trusted)?)
}

/// The signed change from the current layout to one with `--partitions` on new topics.
fn new_change(args: &ReshardArgs, history: &LayoutHistory, signer: &CheckpointSigner) -> anyhow::Result<LayoutChange> {
    let partitions = args
        .partitions
        .context("--partitions is required: the new layout's partition count")?;
    anyhow::ensure!(partitions > 0, "--partitions must be at least 1");
    let from = history.current().clone();
    let next = from.epoch + 1;
    let to = Layout {
        epoch: next,
        raw_topic: args
            .to_raw_topic
            .clone()
            .unwrap_or_else(|| epoch_name(&from.raw_topic, next)),
        sealed_topic: args
            .to_sealed_topic
            .clone()
            .unwrap_or_else(|| epoch_name(&from.sealed_topic, next)),
        dlq_topic: args
            .to_dlq_topic
            .clone()
            .unwrap_or_else(|| epoch_name(&from.dlq_topic, next)),
        partitions,
    };
    Ok(LayoutChange::sign(from, to, now_ms(), signer))
}

/// A recorded change whose old layout still has open partitions: a move under way.
fn resumable(reading: &mut Reading, history: &LayoutHistory) -> anyhow::Result<Option<(LayoutChange, Vec<i32>)>> {
    let Some(previous) = history.current().epoch.checked_sub(1) else {
        return Ok(None);
    };
    let Some(change) = history.change_after(previous).cloned() else {
        return Ok(None);
    };
    let open = open_partitions(reading, &change.from)?;
    Ok((!open.is_empty()).then_some((change, open)))
}

/// `audit-events` becomes `audit-events.epoch-2`; an earlier `.epoch-N` suffix is replaced.
fn epoch_name(first: &str, epoch: u32) -> String {
    let base = first.split_once(".epoch-").map_or(first, |(base, _)| base);
    format!("{base}.epoch-{epoch}")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn open_partitions(reading: &mut Reading, layout: &Layout) -> anyhow::Result<Vec<i32>> {
    let finals = layouts::final_checkpoints(&reading.reader, &mut reading.sealed, layout)?;
    Ok(finals
        .iter()
        .enumerate()
        .filter(|(_, last)| last.is_none())
        .map(|(partition, _)| i32::try_from(partition).unwrap_or(i32::MAX))
        .collect())
}

async fn create_topics(kafka: &KafkaSettings, reader: &PartitionReader, to: &Layout) -> anyhow::Result<()> {
    let partitions = i32::try_from(to.partitions).context("--partitions is too large")?;
    let topics = TopicArgs {
        raw_topic: to.raw_topic.clone(),
        sealed_topic: to.sealed_topic.clone(),
        dlq_topic: to.dlq_topic.clone(),
        layout_topic: String::new(),
    };
    ensure_topics(kafka, &specs(&topics, partitions, RAW_RETENTION_HOURS)).await?;
    for topic in [&to.raw_topic, &to.sealed_topic, &to.dlq_topic] {
        let count = reader.partition_count(topic)?;
        anyhow::ensure!(
            count == to.partitions as usize,
            "topic {topic} exists with {count} partitions, not {}; name new topics with --to-raw-topic, --to-sealed-topic and --to-dlq-topic",
            to.partitions
        );
    }
    Ok(())
}

fn progress(total: u64, what: &str) -> anyhow::Result<ProgressBar> {
    Ok(ProgressBar::new(total).with_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {what}"
        ))
        .context("progress template")?,
    ))
}

/// Waits until every partition of `from` ends with its final checkpoint.
fn wait_closed(reading: &mut Reading, from: &Layout, timeout: Duration) -> anyhow::Result<()> {
    let bar = progress(
        u64::from(from.partitions),
        "old partitions closed by their seal processors",
    )?;
    let started = Instant::now();
    loop {
        let open = open_partitions(reading, from)?;
        bar.set_position(u64::from(from.partitions) - open.len() as u64);
        if open.is_empty() {
            bar.finish();
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < timeout,
            "partitions {open:?} of {} are not closed after {timeout:?}: are the seal processors of layout epoch {} running? Run `sealtrail reshard` again to keep waiting",
            from.raw_topic,
            from.epoch
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits until ClickHouse holds every final checkpoint of `from`: the old sink has stored all of
/// the old layout, and may be stopped.
async fn wait_stored(clickhouse: &ClickHouseArgs, from: &Layout, timeout: Duration) -> anyhow::Result<()> {
    let client = clickhouse.settings().client();
    let bar = progress(
        u64::from(from.partitions),
        "final checkpoints stored in ClickHouse by the sink",
    )?;
    let started = Instant::now();
    loop {
        let stored: u64 = client
            .query("SELECT uniqExact(sealed_partition) FROM checkpoints WHERE layout_epoch = ? AND closes_epoch")
            .bind(from.epoch)
            .fetch_one()
            .await
            .context("asking ClickHouse for the final checkpoints")?;
        bar.set_position(stored);
        if stored >= u64::from(from.partitions) {
            bar.finish();
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < timeout,
            "ClickHouse holds {stored} of {} final checkpoints of layout epoch {} after {timeout:?}: is its sink running?",
            from.partitions,
            from.epoch
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn summarize(reading: &mut Reading, from: &Layout, to: &Layout) -> anyhow::Result<()> {
    let handover = match layouts::handover(&reading.reader, &mut reading.sealed, from, &reading.trusted)? {
        Ok(handover) => handover,
        Err(open) => anyhow::bail!("partitions {open:?} reopened while the command ran"),
    };
    println!(
        "layout epoch {} is closed: {} partitions, {} tenant chains handed over (epoch link {}).",
        from.epoch,
        from.partitions,
        handover.tenants(),
        handover.link
    );
    println!("Next:");
    println!(
        "  1. restart the seal and sink processors with RAW_TOPIC={} SEALED_TOPIC={} DLQ_TOPIC={} ({} partitions)",
        to.raw_topic, to.sealed_topic, to.dlq_topic, to.partitions
    );
    println!("  2. point producers at {}", to.raw_topic);
    println!(
        "  3. move records that reached {} after the change: DLQ_TOPIC={} RAW_TOPIC={} sealtrail dlq replay --reason layout_closed",
        from.raw_topic, from.dlq_topic, to.raw_topic
    );
    Ok(())
}

fn print_status(reading: &mut Reading, history: &LayoutHistory) -> anyhow::Result<()> {
    for layout in history.layouts() {
        let open = open_partitions(reading, layout)?;
        let state = if open.is_empty() {
            "closed".to_owned()
        } else if open.len() == layout.partitions as usize {
            "open".to_owned()
        } else {
            format!("closing (open partitions {open:?})")
        };
        println!(
            "epoch {}: raw {} -> sealed {} (DLQ {}), {} partitions, {state}",
            layout.epoch, layout.raw_topic, layout.sealed_topic, layout.dlq_topic, layout.partitions
        );
    }
    Ok(())
}

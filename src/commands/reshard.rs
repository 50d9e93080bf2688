//! `sealtrail reshard`: moves the pipeline to new topics with another partition count without
//! forking a chain (docs/operations.md, "Resharding"; the protocol is
//! `sealtrail_seal::layouts::reshard`). Running it again resumes a move under way.

use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use sealtrail_core::layout::{Layout, LayoutHistory};
use sealtrail_kafka::{KafkaSettings, PartitionReader, wait_for_broker};
use sealtrail_runtime::RegistryClient;
use sealtrail_runtime::keys;
use sealtrail_seal::layouts::reshard::{PipelineTopics, Resharder, Target, pipeline_history};

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

pub async fn run(args: ReshardArgs) -> anyhow::Result<()> {
    let kafka = args.kafka.settings();
    wait_for_broker(&kafka, args.kafka.connect_timeout()).await?;
    let runtime = tokio::runtime::Handle::current();
    // Reading partitions and the registry blocks, so the command runs on a thread of its own.
    sealtrail_runtime::run_blocking(move || reshard(&args, &kafka, &runtime)).await?
}

fn pipeline_topics(topics: &TopicArgs) -> PipelineTopics {
    PipelineTopics {
        raw_topic: topics.raw_topic.clone(),
        sealed_topic: topics.sealed_topic.clone(),
        dlq_topic: topics.dlq_topic.clone(),
        layout_topic: topics.layout_topic.clone(),
    }
}

fn reshard(args: &ReshardArgs, kafka: &KafkaSettings, runtime: &tokio::runtime::Handle) -> anyhow::Result<()> {
    let mut resharder = Resharder::new(
        kafka,
        pipeline_topics(&args.topics),
        RegistryClient::new(&args.registry.connection()?, runtime.clone()).map_err(anyhow::Error::msg)?,
        keys::load_trusted_or_none(&args.keys.trusted_keys())?,
        runtime.clone(),
    )?;
    if args.status {
        return print_status(&mut resharder);
    }
    let signer = keys::load_signer(&args.keys.signing_key())?;
    let target = Target {
        partitions: args.partitions,
        raw_topic: args.to_raw_topic.clone(),
        sealed_topic: args.to_sealed_topic.clone(),
        dlq_topic: args.to_dlq_topic.clone(),
    };
    let under_way = resharder.begin(&target, &signer)?;
    let (from, to) = (&under_way.change.from, &under_way.change.to);
    if under_way.resumed {
        println!(
            "resuming the move from layout epoch {} to {}: partitions {:?} are not closed yet",
            from.epoch, to.epoch, under_way.open
        );
    }
    println!(
        "layout change to epoch {} ({} partitions) recorded; {} raw partitions of {} marked, their seal processors close them in order",
        to.epoch,
        to.partitions,
        under_way.open.len(),
        from.raw_topic
    );
    let timeout = Duration::from_secs(args.timeout_secs);
    let closed = progress(
        u64::from(from.partitions),
        "old partitions closed by their seal processors",
    )?;
    resharder.wait_closed(from, timeout, &mut |n| closed.set_position(n))?;
    closed.finish();
    let stored = progress(
        u64::from(from.partitions),
        "final checkpoints stored in ClickHouse by the sink",
    )?;
    let client = args.clickhouse.settings()?.client();
    runtime.block_on(sealtrail_clickhouse::wait_for_final_checkpoints(
        &client,
        from,
        timeout,
        &mut |n| stored.set_position(n),
    ))?;
    stored.finish();
    let handover = resharder.handover(from)?;
    summarize(from, to, handover.tenants(), &handover.link.to_string());
    Ok(())
}

/// The topics of the newest layout over the first topics `first` (for `sealtrail up`).
pub fn current_topics(
    kafka: &KafkaSettings,
    first: &TopicArgs,
    trusted_keys: &std::path::Path,
) -> anyhow::Result<TopicArgs> {
    let reader = PartitionReader::new(kafka, Duration::from_secs(30))?;
    let history = pipeline_history(
        &reader,
        &pipeline_topics(first),
        &keys::load_trusted_or_none(trusted_keys)?,
    )?;
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
    Ok(sealed_history(kafka, topics, trusted_keys)?.1)
}

/// The pipeline's layout history, and the layout whose sealed topic is `topics.sealed_topic`.
pub fn sealed_history(
    kafka: &KafkaSettings,
    topics: &TopicArgs,
    trusted_keys: &std::path::Path,
) -> anyhow::Result<(LayoutHistory, Layout)> {
    let reader = PartitionReader::new(kafka, Duration::from_secs(30))?;
    let history = pipeline_history(
        &reader,
        &pipeline_topics(topics),
        &keys::load_trusted_or_none(trusted_keys)?,
    )?;
    let layout = history.by_sealed_topic(&topics.sealed_topic).cloned().with_context(|| {
        format!(
            "sealed topic {} is in no layout of this pipeline; the current layout (epoch {}) seals into {}: set SEALED_TOPIC to it",
            topics.sealed_topic,
            history.current().epoch,
            history.current().sealed_topic
        )
    })?;
    Ok((history, layout))
}

fn progress(total: u64, what: &str) -> anyhow::Result<ProgressBar> {
    Ok(ProgressBar::new(total).with_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {what}"
        ))
        .context("progress template")?,
    ))
}

fn summarize(from: &Layout, to: &Layout, tenants: usize, link: &str) {
    println!(
        "layout epoch {} is closed: {} partitions, {tenants} tenant chains handed over (epoch link {link}).",
        from.epoch, from.partitions
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
}

fn print_status(resharder: &mut Resharder) -> anyhow::Result<()> {
    for (layout, open) in resharder.status()? {
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

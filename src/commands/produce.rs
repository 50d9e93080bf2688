use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use sealtrail_emit::generator::{Generator, Workload};
use sealtrail_emit::{AuditEmitter, send_workload};

use crate::settings::{KafkaArgs, RegistryUrlArgs, TopicArgs};

#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryUrlArgs,
    #[command(flatten)]
    topics: TopicArgs,
    /// Number of tenants; their share of events follows a Zipf distribution.
    #[arg(long, default_value_t = 20)]
    tenants: usize,
    /// Records to send, malformed ones included.
    #[arg(long, default_value_t = 10_000)]
    events: u64,
    /// Records per second (unlimited when absent).
    #[arg(long)]
    rate: Option<f64>,
    /// Share of records that are malformed on purpose (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    bad_ratio: f64,
    /// Seed of the workload, for a reproducible run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Prefix of the tenant ids, to keep workloads apart.
    #[arg(long, default_value = "")]
    tenant_prefix: String,
}

pub async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.bad_ratio),
        "--bad-ratio must be between 0 and 1, got {}",
        args.bad_ratio
    );
    anyhow::ensure!(args.tenants > 0, "--tenants must be at least 1");
    let kafka = args.kafka.settings();
    sealtrail_kafka::wait_for_broker(&kafka, args.kafka.connect_timeout()).await?;
    let emitter = AuditEmitter::connect(&kafka, &args.registry.connection()?, &args.topics.raw_topic).await?;
    let now_ms = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    let mut generator = Generator::new(Workload {
        tenants: args.tenants,
        bad_ratio: args.bad_ratio,
        seed: args.seed,
        now_ms,
        tenant_prefix: args.tenant_prefix.clone(),
    });

    let bar = ProgressBar::new(args.events).with_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} acknowledged ({per_sec}, eta {eta})",
        )
        .context("progress template")?,
    );
    let sent = send_workload(&emitter, &mut generator, args.events, args.rate, || bar.inc(1)).await?;
    bar.finish_and_clear();

    let elapsed = sent.elapsed.as_secs_f64().max(0.001);
    println!(
        "sent {} records to {} in {elapsed:.1}s ({:.0}/s): {} acknowledged, {} failed",
        args.events,
        args.topics.raw_topic,
        sent.acknowledged as f64 / elapsed,
        sent.acknowledged,
        sent.failed
    );
    println!("  good events: {} over {} tenants", sent.good(), sent.per_tenant.len());
    let mut busiest: Vec<(&String, &u64)> = sent.per_tenant.iter().collect();
    busiest.sort_by(|a, b| b.1.cmp(a.1));
    let top: Vec<String> = busiest.iter().take(5).map(|(t, n)| format!("{t}={n}")).collect();
    println!("  busiest tenants: {}", top.join(", "));
    if sent.malformed_total() > 0 {
        let kinds: Vec<String> = sent.malformed.iter().map(|(k, n)| format!("{k}={n}")).collect();
        println!(
            "  malformed on purpose: {} ({})",
            sent.malformed_total(),
            kinds.join(", ")
        );
    }
    if let Some(failure) = sent.first_failure {
        anyhow::bail!("{} records were not acknowledged; the first: {failure}", sent.failed);
    }
    Ok(())
}

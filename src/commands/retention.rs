//! `sealtrail retention`: the retention processor. Every interval it deletes expired events from
//! ClickHouse (except those under an active legal hold), leaving tombstones, and records each
//! tenant's result as a sealed `policy.applied` event.

use std::time::Duration;

use anyhow::Context as _;
use sealtrail_clickhouse::{apply_migrations, wait_for_clickhouse};
use sealtrail_core::retention::{RetentionPolicy, parse_policy};
use sealtrail_emit::AuditEmitter;
use sealtrail_retention::{PassReported, run_every, run_once};
use sealtrail_runtime::Telemetry;
use time::OffsetDateTime;

use crate::settings::{ClickHouseArgs, KafkaArgs, MetricsArgs, RegistryUrlArgs, TopicArgs};

#[derive(Debug, clap::Args)]
pub struct RetentionArgs {
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    clickhouse: ClickHouseArgs,
    /// Each run is recorded as `policy.applied` events on the raw topic, through this broker.
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryUrlArgs,
    #[command(flatten)]
    topics: TopicArgs,
    /// A policy, `TENANT:CATEGORY:DAYS` with `*` for any tenant or category (repeatable); the
    /// most specific one governs an event, and policies set through the API win over these.
    #[arg(long = "policy", env = "RETENTION_POLICIES", value_delimiter = ',', value_parser = parse_policy)]
    policies: Vec<RetentionPolicy>,
    /// Seconds between runs.
    #[arg(long, env = "RETENTION_INTERVAL_SECS", default_value_t = 3600)]
    every: u64,
    /// Run once and exit.
    #[arg(long)]
    once: bool,
}

pub async fn run(args: RetentionArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.every > 0, "--every must be at least 1 second");
    let metrics = args.metrics.start("retention").await?;
    metrics.set_not_ready("waiting for the broker and ClickHouse");
    let kafka = args.kafka.settings();
    sealtrail_kafka::wait_for_broker(&kafka, args.kafka.connect_timeout()).await?;
    let recorder = AuditEmitter::connect(&kafka, &args.registry.connection()?, &args.topics.raw_topic)
        .await
        .context("retention records every run in the audit trail, and cannot publish to it")?;
    let clickhouse = args.clickhouse.settings()?;
    wait_for_clickhouse(&clickhouse, Duration::from_secs(30)).await?;
    apply_migrations(&clickhouse).await?;
    let client = clickhouse.client();
    // Installed now, so a stop asked for during a run ends the loop after it.
    let stop = sealtrail_runtime::termination();
    metrics.set_ready();
    let mut telemetry = Telemetry::new(metrics.clone());
    if args.policies.is_empty() {
        tracing::info!("no configured retention policies; only those set through the API apply");
    }
    if !args.once {
        let every = Duration::from_secs(args.every);
        run_every(&client, &args.policies, &recorder, every, stop, &mut telemetry).await;
        return Ok(());
    }
    let started = std::time::Instant::now();
    let report = run_once(&client, &args.policies, &recorder, OffsetDateTime::now_utc()).await?;
    telemetry.emit(PassReported {
        report: &report,
        took: started.elapsed(),
    });
    for failure in &report.failures {
        eprintln!("  not applied: {failure}");
    }
    println!("{}", report.summary(started.elapsed()));
    anyhow::ensure!(
        report.failures.is_empty(),
        "{} tenant policies were not applied (above); nothing of theirs was deleted without a tombstone",
        report.failures.len()
    );
    Ok(())
}

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use indicatif::{ProgressBar, ProgressStyle};
use sealtrail_emit::generator::{Generated, Generator, Payload, Workload};
use sealtrail_emit::{AuditEmitter, acknowledged};

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

/// How many records may wait for their acknowledgement at once.
const IN_FLIGHT: usize = 20_000;

pub async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.bad_ratio),
        "--bad-ratio must be between 0 and 1, got {}",
        args.bad_ratio
    );
    anyhow::ensure!(args.tenants > 0, "--tenants must be at least 1");
    let kafka = args.kafka.settings();
    sealtrail_kafka::wait_for_broker(&kafka, args.kafka.connect_timeout()).await?;
    let emitter = AuditEmitter::connect(&kafka, &args.registry.schema_registry_url, &args.topics.raw_topic).await?;
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
    let started = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    let mut per_tenant: BTreeMap<String, u64> = BTreeMap::new();
    let mut bad: BTreeMap<&'static str, u64> = BTreeMap::new();
    let (mut acked, mut failed) = (0_u64, 0_u64);
    let mut first_failure = None;
    for sent in 0..args.events {
        if let Some(rate) = args.rate {
            let due = Duration::from_secs_f64(sent as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        let delivery = match generator.next_record() {
            Generated::Good(event) => {
                *per_tenant.entry(event.tenant_id.clone()).or_default() += 1;
                // With traces exported, each event starts a trace that seal and sink continue.
                if sealtrail_telemetry::trace_context::is_enabled() {
                    let span = tracing::info_span!("produce.event", otel.kind = "producer", tenant = %event.tenant_id);
                    span.in_scope(|| emitter.enqueue(&event))?
                } else {
                    emitter.enqueue(&event)?
                }
            }
            Generated::Bad { kind, key, payload } => {
                *bad.entry(kind.reason()).or_default() += 1;
                let bytes = match payload {
                    Payload::Bytes(bytes) => bytes,
                    Payload::Event(event) => emitter.encode(&event),
                };
                emitter.enqueue_raw(key.as_deref(), &bytes)?
            }
        };
        in_flight.push(acknowledged(delivery));
        while in_flight.len() >= IN_FLIGHT {
            settle(
                in_flight.next().await,
                &mut acked,
                &mut failed,
                &mut first_failure,
                &bar,
            );
        }
    }
    while let Some(result) = in_flight.next().await {
        settle(Some(result), &mut acked, &mut failed, &mut first_failure, &bar);
    }
    bar.finish_and_clear();

    let elapsed = started.elapsed();
    let bad_total: u64 = bad.values().sum();
    println!(
        "sent {} records to {} in {:.1}s ({:.0}/s): {} acknowledged, {failed} failed",
        args.events,
        args.topics.raw_topic,
        elapsed.as_secs_f64(),
        acked as f64 / elapsed.as_secs_f64().max(0.001),
        acked
    );
    println!(
        "  good events: {} over {} tenants",
        args.events - bad_total,
        per_tenant.len()
    );
    let mut busiest: Vec<(&String, &u64)> = per_tenant.iter().collect();
    busiest.sort_by(|a, b| b.1.cmp(a.1));
    let top: Vec<String> = busiest.iter().take(5).map(|(t, n)| format!("{t}={n}")).collect();
    println!("  busiest tenants: {}", top.join(", "));
    if bad_total > 0 {
        let kinds: Vec<String> = bad.iter().map(|(k, n)| format!("{k}={n}")).collect();
        println!("  malformed on purpose: {bad_total} ({})", kinds.join(", "));
    }
    if let Some(failure) = first_failure {
        anyhow::bail!("{failed} records were not acknowledged; the first: {failure}");
    }
    Ok(())
}

fn settle(
    result: Option<Result<(i32, i64), sealtrail_emit::EmitError>>,
    acked: &mut u64,
    failed: &mut u64,
    first_failure: &mut Option<String>,
    bar: &ProgressBar,
) {
    match result {
        Some(Ok(_)) => *acked += 1,
        Some(Err(error)) => {
            *failed += 1;
            first_failure.get_or_insert_with(|| error.to_string());
        }
        None => {}
    }
    bar.inc(1);
}

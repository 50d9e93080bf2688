//! `sealtrail bench-latency`: produce -> queryable latency at a steady rate through the running
//! pipeline (the measurement: `sealtrail_bench::latency`), against the objective of docs/slo.md.

use std::time::Duration;

use sealtrail_bench::latency::{LatencyBench, measure};

use crate::settings::{ClickHouseArgs, KafkaArgs, RegistryUrlArgs, TopicArgs};

#[derive(Debug, clap::Args)]
pub struct BenchLatencyArgs {
    #[command(flatten)]
    clickhouse: ClickHouseArgs,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryUrlArgs,
    #[command(flatten)]
    topics: TopicArgs,
    /// Events produced per second.
    #[arg(long, default_value_t = 5000)]
    rate: u64,
    /// Seconds to produce for (at least 60 for the objective's figures).
    #[arg(long, default_value_t = 60)]
    duration_secs: u64,
    /// Tenants the events are spread over.
    #[arg(long, default_value_t = 64)]
    tenants: usize,
    /// Milliseconds between polls of ClickHouse (a latency is measured up to one poll late).
    #[arg(long, default_value_t = 50)]
    poll_ms: u64,
}

pub async fn run(args: BenchLatencyArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rate > 0 && args.duration_secs > 0 && args.tenants > 0,
        "--rate, --duration-secs and --tenants must be positive"
    );
    let report = measure(LatencyBench {
        kafka: args.kafka.settings(),
        registry: args.registry.connection()?,
        clickhouse: args.clickhouse.settings()?,
        raw_topic: args.topics.raw_topic,
        rate: args.rate,
        duration: Duration::from_secs(args.duration_secs),
        tenants: args.tenants,
        poll: Duration::from_millis(args.poll_ms.max(1)),
    })
    .await?;
    println!(
        "produce -> queryable at {:.0} events/s for {} s: {} of {} events queryable; p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms; {:.2}% within 2 s (objective: 99%); warm-up before the clock started: {:.1} s",
        report.achieved_rate,
        args.duration_secs,
        report.seen,
        report.sent,
        report.p50_ms,
        report.p95_ms,
        report.p99_ms,
        report.max_ms,
        report.within_2s * 100.0,
        report.warm_up.as_secs_f64()
    );
    anyhow::ensure!(
        report.seen == report.sent,
        "{} events were not queryable within 2 minutes of the end",
        report.sent - report.seen
    );
    Ok(())
}

//! `sealtrail bench-api`: latency of the query API on a large table, next to the same query sent
//! to ClickHouse directly (the measurement: `sealtrail_bench::api`).

use sealtrail_bench::api::{ApiBench, measure};

use crate::settings::{ClickHouseArgs, KafkaArgs, RegistryUrlArgs};

#[derive(Debug, clap::Args)]
pub struct BenchApiArgs {
    #[command(flatten)]
    clickhouse: ClickHouseArgs,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryUrlArgs,
    /// Rows in the benchmark's events table.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Tenants the rows are spread over.
    #[arg(long, default_value_t = 100)]
    tenants: u64,
    /// Requests timed per query kind.
    #[arg(long, default_value_t = 300)]
    requests: usize,
    /// Keep the generated database afterwards (it is dropped by default).
    #[arg(long)]
    keep: bool,
}

pub async fn run(args: BenchApiArgs) -> anyhow::Result<()> {
    let report = measure(ApiBench {
        clickhouse: args.clickhouse.settings()?,
        kafka: args.kafka.settings(),
        kafka_connect_timeout: args.kafka.connect_timeout(),
        registry: args.registry.connection()?,
        rows: args.rows,
        tenants: args.tenants,
        requests: args.requests,
        keep: args.keep,
    })
    .await?;
    println!(
        "{} rows over {} tenants; tenant {}, {} rows answered by the filter",
        args.rows, args.tenants, report.tenant, report.filter_rows
    );
    for (name, figures) in [
        ("tenant window + actor filter (GET /v1/events)", &report.filter),
        ("GROUP BY action over one month (POST /v1/query)", &report.group),
        (
            "the filter, ClickHouse alone (no API, no audit record)",
            &report.direct_filter,
        ),
    ] {
        println!(
            "{name}: p50 {:.1} ms, p99 {:.1} ms over {} requests",
            figures.p50_ms, figures.p99_ms, figures.count
        );
    }
    if let Some(database) = report.kept_in {
        println!("the generated rows are kept in database {database}");
    }
    Ok(())
}

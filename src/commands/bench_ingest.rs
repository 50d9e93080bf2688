//! `sealtrail bench-ingest`: events per second through the ingest edge next to direct Kafka
//! produce of the same events (the measurement: `sealtrail_bench::ingest`).

use sealtrail_bench::ingest::{IngestBench, measure};

use crate::settings::{ClickHouseArgs, KafkaArgs, RegistryUrlArgs};

#[derive(Debug, clap::Args)]
pub struct BenchIngestArgs {
    #[command(flatten)]
    clickhouse: ClickHouseArgs,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryUrlArgs,
    /// Events sent each way.
    #[arg(long, default_value_t = 50_000)]
    events: usize,
    /// Events per REST request (and per gRPC batch).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// REST requests (and gRPC unary calls, and streams) in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Tenants the events are spread over.
    #[arg(long, default_value_t = 8)]
    tenants: usize,
}

pub async fn run(args: BenchIngestArgs) -> anyhow::Result<()> {
    let report = measure(IngestBench {
        clickhouse: args.clickhouse.settings()?,
        kafka: args.kafka.settings(),
        kafka_connect_timeout: args.kafka.connect_timeout(),
        registry: args.registry.connection()?,
        events: args.events,
        batch: args.batch,
        concurrency: args.concurrency,
        tenants: args.tenants,
    })
    .await?;
    println!(
        "through the edge (REST, batches of {}, {} in flight): {:.0} events/s; per request p50 {:.1} ms, p99 {:.1} ms over {} requests",
        args.batch,
        args.concurrency,
        report.rest_per_second,
        report.rest_latency.p50_ms,
        report.rest_latency.p99_ms,
        report.rest_latency.count
    );
    println!(
        "through the edge (gRPC streams, batches of {}, {} streams): {:.0} events/s",
        args.batch,
        args.concurrency.min(args.tenants),
        report.grpc_stream_per_second
    );
    println!(
        "through the edge (gRPC unary, batches of {}, {} in flight): {:.0} events/s; per call p50 {:.1} ms, p99 {:.1} ms",
        args.batch,
        args.concurrency,
        report.grpc_unary_per_second,
        report.grpc_latency.p50_ms,
        report.grpc_latency.p99_ms
    );
    println!(
        "direct Kafka produce: {:.0} events/s; per event p50 {:.1} ms, p99 {:.1} ms",
        report.direct_per_second, report.direct_latency.p50_ms, report.direct_latency.p99_ms
    );
    println!(
        "edge / direct: REST {:.2}, gRPC stream {:.2}, gRPC unary {:.2} (target: at least 0.5)",
        report.rest_per_second / report.direct_per_second,
        report.grpc_stream_per_second / report.direct_per_second,
        report.grpc_unary_per_second / report.direct_per_second
    );
    Ok(())
}

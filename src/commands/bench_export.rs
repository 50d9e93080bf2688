//! `sealtrail bench-export`: export throughput and memory, next to the raw ClickHouse read rate of
//! the same rows, in one run (the measurement: `sealtrail_bench::export`).

use crate::settings::ClickHouseArgs;

#[derive(Debug, clap::Args)]
pub struct BenchExportArgs {
    #[command(flatten)]
    clickhouse: ClickHouseArgs,
    /// Events of the exported tenant.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
}

pub async fn run(args: BenchExportArgs) -> anyhow::Result<()> {
    let report = sealtrail_bench::export::measure(&args.clickhouse.settings()?, args.events).await?;
    println!(
        "{} events of one tenant, {} files ({:.1} MiB compressed), {} checkpoints",
        report.events,
        report.files,
        report.compressed_bytes as f64 / 1024.0 / 1024.0,
        report.checkpoints
    );
    println!("raw ClickHouse read of the same rows: {:.0} events/s", report.raw_rate);
    println!(
        "export (read, prove, encode, gzip, hash, sign): {:.0} events/s",
        report.export_rate
    );
    println!("ratio export / raw read: {:.2}", report.export_rate / report.raw_rate);
    println!("resident memory growth during the export: {:.1} MiB", report.growth_mib);
    Ok(())
}

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
    /// Keep the database the events were stored in (it is dropped otherwise), and write the
    /// public key of its checkpoints, so `sealtrail verify` or another export can be measured on
    /// the same rows.
    #[arg(long)]
    keep: bool,
}

pub async fn run(args: BenchExportArgs) -> anyhow::Result<()> {
    let report = sealtrail_bench::export::measure(&args.clickhouse.settings()?, args.events, args.keep).await?;
    println!(
        "{} events of one tenant, {} files ({:.1} MiB compressed), {} checkpoints",
        report.events,
        report.files,
        report.compressed_bytes as f64 / 1024.0 / 1024.0,
        report.checkpoints
    );
    println!("raw ClickHouse read of the same rows: {:.0} events/s", report.raw_rate);
    println!(
        "export from stored entries (read, re-hash, prove, encode, gzip, hash, sign): {:.0} events/s",
        report.export_rate
    );
    println!(
        "export rebuilding every entry from `events` (the same files): {:.0} events/s",
        report.rebuilt_rate
    );
    println!("ratio export / raw read: {:.2}", report.export_rate / report.raw_rate);
    println!(
        "ratio export rebuilding entries / raw read: {:.2}",
        report.rebuilt_rate / report.raw_rate
    );
    println!("resident memory growth during the export: {:.1} MiB", report.growth_mib);
    let (events, entries) = report.stored_bytes;
    println!(
        "stored (compressed): events {:.1} MiB, event_entries {:.1} MiB ({:.0}% more)",
        events as f64 / 1024.0 / 1024.0,
        entries as f64 / 1024.0 / 1024.0,
        100.0 * entries as f64 / events.max(1) as f64
    );
    if let Some((database, key_dir)) = &report.kept {
        println!("kept database {database}; to verify its tenant:");
        println!(
            "  sealtrail verify --tenant {} --clickhouse-database {database} --trusted-keys {}",
            sealtrail_bench::export::TENANT,
            key_dir.display()
        );
        println!("  (drop it with: DROP DATABASE {database})");
    }
    Ok(())
}

//! `sealtrail export`: a signed export of one tenant's sealed events, written from ClickHouse.

use std::path::PathBuf;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use sealtrail_api::exporter::{ExportRequest, write_export};
use time::OffsetDateTime;

use crate::settings::{ClickHouseArgs, KeyArgs, parse_time};

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    clickhouse: ClickHouseArgs,
    /// The manifest is signed with the checkpoint signing key from here.
    #[command(flatten)]
    keys: KeyArgs,
    #[arg(long)]
    tenant: String,
    /// Events that occurred at or after (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    from: Option<OffsetDateTime>,
    /// Events that occurred before (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    to: Option<OffsetDateTime>,
    /// Directory to write the export into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Size bound of each events file, in MiB of uncompressed NDJSON.
    #[arg(long, default_value_t = 64)]
    max_file_mib: u64,
}

fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub async fn run(args: ExportArgs) -> anyhow::Result<()> {
    let signer = sealtrail_runtime::keys::load_signer(&args.keys.signing_key())?;
    let clickhouse = args.clickhouse.settings();
    let total: u64 = clickhouse
        .client()
        .query(
            "SELECT count() FROM events WHERE tenant_id = {tenant:String} \
             AND occurred_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') \
             AND occurred_at < fromUnixTimestamp64Milli({to:Int64}, 'UTC')",
        )
        .param("tenant", &args.tenant)
        .param("from", args.from.map_or(0, millis))
        .param("to", args.to.map_or(i64::MAX / 4, millis))
        .fetch_one()
        .await
        .with_context(|| format!("cannot reach ClickHouse at {}", clickhouse.url))?;
    let bar = ProgressBar::new(total).with_style(ProgressStyle::with_template(
        "  exporting {bar:40} {pos}/{len} events ({per_sec})",
    )?);
    let request = ExportRequest {
        export_id: format!("exp_{}", ulid::Ulid::new().to_string().to_lowercase()),
        tenant: args.tenant.clone(),
        from: args.from,
        to: args.to,
        out_dir: args.out.clone(),
        max_file_bytes: args.max_file_mib.max(1) * 1024 * 1024,
    };
    let manifest = write_export(&clickhouse, &signer, &request, |done| bar.set_position(done)).await?;
    bar.finish_and_clear();
    println!(
        "export {} of tenant {}: {} events in {} files, covered by {} signed checkpoints ({} at the end not yet covered), manifest signed by key {}",
        manifest.export_id,
        manifest.tenant_id,
        manifest.event_count,
        manifest.files.len(),
        manifest.checkpoints.len(),
        manifest.unsigned_tail,
        manifest.key_id
    );
    println!(
        "written to {}; check it with `sealtrail verify-export {} --public-key <signing-key.pub>`",
        args.out.display(),
        args.out.display()
    );
    Ok(())
}

//! `sealtrail export`: the export processor, which consumes export jobs from Kafka and writes
//! signed artifacts; or, with `--tenant`, one export written straight to a directory.

use std::path::PathBuf;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use sealtrail_api::scope::EventScope;
use sealtrail_export::exporter::{ExportRequest, write_export};
use sealtrail_export::{ProcessorConfig, new_export_id, run_processor};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::settings::{ClickHouseArgs, ExportQueueArgs, KafkaArgs, KeyArgs, MetricsArgs, parse_time};

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    clickhouse: ClickHouseArgs,
    /// The manifest is signed with the checkpoint signing key from here.
    #[command(flatten)]
    keys: KeyArgs,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    queue: ExportQueueArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    /// Consumer group of the export processors (they share the jobs).
    #[arg(long, env = "EXPORT_GROUP", default_value = "sealtrail-export")]
    group: String,
    /// Export this tenant once, to `--out`, instead of processing queued jobs.
    #[arg(long, requires = "out")]
    tenant: Option<String>,
    /// Events that occurred at or after (RFC 3339); with --tenant.
    #[arg(long, value_parser = parse_time, requires = "tenant")]
    from: Option<OffsetDateTime>,
    /// Events that occurred before (RFC 3339); with --tenant.
    #[arg(long, value_parser = parse_time, requires = "tenant")]
    to: Option<OffsetDateTime>,
    /// Directory to write the one export into (created if missing); with --tenant.
    #[arg(long, requires = "tenant")]
    out: Option<PathBuf>,
    /// Size bound of each events file, in MiB of uncompressed NDJSON.
    #[arg(long, default_value_t = 64)]
    max_file_mib: u64,
}

pub async fn run(args: ExportArgs) -> anyhow::Result<()> {
    match (&args.tenant, &args.out) {
        (Some(tenant), Some(out)) => export_once(&args, tenant, out).await,
        _ => process_jobs(args).await,
    }
}

async fn process_jobs(args: ExportArgs) -> anyhow::Result<()> {
    let metrics = args.metrics.start("export").await?;
    metrics.set_not_ready("waiting for the broker");
    let signer = sealtrail_runtime::keys::load_signer(&args.keys.signing_key())?;
    let kafka = args.kafka.settings();
    sealtrail_kafka::wait_for_broker(&kafka, args.kafka.connect_timeout()).await?;
    let artifacts_dir = args.queue.artifacts_dir.clone();
    std::fs::create_dir_all(&artifacts_dir)
        .with_context(|| format!("cannot create the artifacts directory {}", artifacts_dir.display()))?;
    let config = ProcessorConfig {
        kafka,
        group: args.group.clone(),
        topics: args.queue.topics(),
        artifacts_dir,
        clickhouse: args.clickhouse.settings()?,
        signer,
        max_file_bytes: args.max_file_mib.max(1) * 1024 * 1024,
    };
    tracing::info!(jobs = %config.topics.jobs, status = %config.topics.status, dir = %config.artifacts_dir.display(), "export processor waiting for jobs");
    metrics.set_ready();
    // A job in progress is finished first; its offset is committed only once it is done.
    run_processor(config, metrics, sealtrail_runtime::termination()).await?;
    Ok(())
}

async fn export_once(args: &ExportArgs, tenant: &str, out: &std::path::Path) -> anyhow::Result<()> {
    let signer = sealtrail_runtime::keys::load_signer(&args.keys.signing_key())?;
    let clickhouse = args.clickhouse.settings()?;
    let rfc3339 = |at: Option<OffsetDateTime>| at.and_then(|at| at.format(&Rfc3339).ok());
    let scope = EventScope {
        from: rfc3339(args.from),
        to: rfc3339(args.to),
        ..EventScope::default()
    };
    let window = scope.window().map_err(|e| anyhow::anyhow!(e.message))?;
    let total = sealtrail_clickhouse::chain_stretch(&clickhouse.client(), tenant, (window.from_ms, window.to_ms))
        .await
        .with_context(|| format!("cannot reach ClickHouse at {}", clickhouse.url))?
        .seqs()
        .count() as u64;
    let bar = ProgressBar::new(total).with_style(ProgressStyle::with_template(
        "  exporting {bar:40} {pos}/{len} lines ({per_sec})",
    )?);
    let request = ExportRequest {
        export_id: new_export_id(),
        tenant: tenant.to_owned(),
        scope,
        out_dir: out.to_owned(),
        max_file_bytes: args.max_file_mib.max(1) * 1024 * 1024,
    };
    let manifest = write_export(&clickhouse, &signer, &request, |done| bar.set_position(done)).await?;
    bar.finish_and_clear();
    println!(
        "export {} of tenant {}: {} events and {} witness lines in {} files, covered by {} signed checkpoints ({} at the end not yet covered), manifest signed by key {}",
        manifest.export_id,
        manifest.tenant_id,
        manifest.event_count,
        manifest.omitted_count,
        manifest.files.len(),
        manifest.checkpoints.len(),
        manifest.unsigned_tail,
        manifest.key_id
    );
    println!(
        "written to {}; check it with `sealtrail verify-export {} --public-key <signing-key.pub>`",
        out.display(),
        out.display()
    );
    Ok(())
}

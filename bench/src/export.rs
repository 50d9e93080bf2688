//! Export throughput and memory (`sealtrail bench-export`), next to the raw ClickHouse read rate of
//! the same rows, in one run.
//!
//! The rows are real sealed events: the demo workload for one tenant, sealed in process by the seal
//! core with a signed checkpoint every 1,000 events, inserted as the sink inserts them. The export
//! runs twice: from the stored entries, then (`event_entries` emptied) rebuilding every entry from
//! `events`, which must give the same files.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressStyle};
use sealtrail_clickhouse::{
    CheckpointRow, ClickHouseSettings, EntryRow, EventRow, apply_migrations, wait_for_clickhouse,
};
use sealtrail_core::avro::contract::{EventReader, audit_event_schema, encode_audit_event};
use sealtrail_core::avro::{Framed, Writer};
use sealtrail_core::checkpoint::CheckpointSigner;
use sealtrail_core::policy::Policy;
use sealtrail_core::sealer::{Disposition, PartitionSealer, RawRecord, SchemaLookup, SealContext, SealerSettings};
use sealtrail_core::tokenize::Tokenizer;
use sealtrail_core::validate::Limits;
use sealtrail_emit::generator::{Generated, Generator, Workload};
use sealtrail_export::exporter::{ExportRequest, write_export};

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct ExportReport {
    pub events: u64,
    pub files: usize,
    pub compressed_bytes: u64,
    pub checkpoints: usize,
    /// Rows per second of a plain ClickHouse read of the same rows.
    pub raw_rate: f64,
    /// Events per second of the export: read, prove, encode, gzip, hash, sign.
    pub export_rate: f64,
    /// The same export with every entry rebuilt from `events` (as before `event_entries`, and
    /// for rows written before it).
    pub rebuilt_rate: f64,
    /// Growth of the process's resident memory during the export.
    pub growth_mib: f64,
    /// Compressed bytes on disk of `events` and of `event_entries`, the stored entries' cost.
    pub stored_bytes: (u64, u64),
    /// The database and the bench key's public key file, when the database was kept.
    pub kept: Option<(String, std::path::PathBuf)>,
}

/// The one tenant whose events are exported.
pub const TENANT: &str = "bench-export";
const BATCH: usize = 50_000;

/// Seals and inserts `events` events of one tenant into a database of its own, then measures.
/// With `keep`, the database is left whole (for `sealtrail verify` and exports to be measured on
/// it again) and the public key of its checkpoints is written next to it.
pub async fn measure(clickhouse: &ClickHouseSettings, events: u64, keep: bool) -> anyhow::Result<ExportReport> {
    let mut clickhouse = clickhouse.clone();
    wait_for_clickhouse(&clickhouse, Duration::from_secs(30)).await?;
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    clickhouse.database = format!("bench_export_{run}");
    apply_migrations(&clickhouse).await?;
    let signer = CheckpointSigner::from_seed(&[7; 32]).map_err(anyhow::Error::msg)?;
    fill(&clickhouse, &signer, events).await?;

    let stored_bytes = (
        compressed_bytes(&clickhouse, "events").await?,
        compressed_bytes(&clickhouse, "event_entries").await?,
    );
    let started = Instant::now();
    let mut cursor = clickhouse
        .client()
        .query("SELECT ?fields FROM events WHERE tenant_id = {tenant:String} ORDER BY seq")
        .param("tenant", TENANT)
        .fetch::<EventRow>()?;
    let mut read = 0_u64;
    while cursor.next().await?.is_some() {
        read += 1;
    }
    let raw_rate = read as f64 / started.elapsed().as_secs_f64();

    let out = tempfile_dir(run)?;
    let baseline = resident_kib();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(baseline));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(resident_kib(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let request = ExportRequest {
        export_id: format!("exp_bench_{run}"),
        tenant: TENANT.to_owned(),
        scope: sealtrail_query::scope::EventScope::default(),
        out_dir: out.clone(),
        max_file_bytes: 64 * 1024 * 1024,
    };
    let started = Instant::now();
    let manifest = write_export(&clickhouse, &signer, &request, |_| {}).await?;
    let export_rate = manifest.event_count as f64 / started.elapsed().as_secs_f64();
    sampler.abort();
    let growth_mib = peak.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(baseline) as f64 / 1024.0;

    std::fs::remove_dir_all(&out).ok();
    std::fs::create_dir_all(&out)?;
    let (rebuilt, rebuilt_rate) = export_rebuilding_entries(&clickhouse, &signer, &request).await?;
    anyhow::ensure!(
        rebuilt.files == manifest.files,
        "the export from rebuilt entries differs from the one from stored entries"
    );
    let report = ExportReport {
        events: manifest.event_count,
        files: manifest.files.len(),
        compressed_bytes: manifest.files.iter().map(|f| f.bytes).sum(),
        checkpoints: manifest.checkpoints.len(),
        raw_rate,
        export_rate,
        rebuilt_rate,
        growth_mib,
        stored_bytes,
        kept: None,
    };
    std::fs::remove_dir_all(&out).ok();
    if keep {
        let key_dir = std::env::temp_dir().join(format!("sealtrail-bench-export-{run}-key"));
        std::fs::create_dir_all(&key_dir)?;
        let key_file = key_dir.join("bench-export.pub");
        std::fs::write(
            &key_file,
            format!("{}\n", sealtrail_core::digest::to_hex(signer.public_key())),
        )?;
        return Ok(ExportReport {
            kept: Some((clickhouse.database, key_dir)),
            ..report
        });
    }
    clickhouse
        .server_client()
        .query("DROP DATABASE IF EXISTS ?")
        .bind(clickhouse::sql::Identifier(&clickhouse.database))
        .execute()
        .await?;
    Ok(report)
}

/// The export again, rebuilding each entry from `events`: the stored entries are set aside (an
/// empty table in their place) and put back after. Returns its manifest and rate.
async fn export_rebuilding_entries(
    clickhouse: &ClickHouseSettings,
    signer: &CheckpointSigner,
    request: &ExportRequest,
) -> anyhow::Result<(sealtrail_core::export::Manifest, f64)> {
    let client = clickhouse.client();
    for statement in [
        "RENAME TABLE event_entries TO event_entries_aside",
        "CREATE TABLE event_entries AS event_entries_aside",
    ] {
        client.query(statement).execute().await?;
    }
    let started = Instant::now();
    let rebuilt = write_export(clickhouse, signer, request, |_| {}).await?;
    let rate = rebuilt.event_count as f64 / started.elapsed().as_secs_f64();
    for statement in [
        "DROP TABLE event_entries",
        "RENAME TABLE event_entries_aside TO event_entries",
    ] {
        client.query(statement).execute().await?;
    }
    Ok((rebuilt, rate))
}

async fn compressed_bytes(clickhouse: &ClickHouseSettings, table: &str) -> anyhow::Result<u64> {
    Ok(clickhouse
        .client()
        .query("SELECT sum(data_compressed_bytes) FROM system.parts WHERE database = ? AND table = ? AND active")
        .bind(&clickhouse.database)
        .bind(table)
        .fetch_one::<u64>()
        .await?)
}

fn tempfile_dir(run: u64) -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("sealtrail-bench-export-{run}"));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Resident set size of this process, in KiB (Linux).
fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or_default()
}

/// Seals `events` demo events for one tenant and inserts them in batches (not timed).
async fn fill(clickhouse: &ClickHouseSettings, signer: &CheckpointSigner, events: u64) -> anyhow::Result<()> {
    let now_ms = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    let mut generator = Generator::new(Workload {
        tenants: 1,
        bad_ratio: 0.0,
        seed: 3,
        now_ms,
        tenant_prefix: String::new(),
    });
    let reader = EventReader::for_writer(audit_event_schema())?;
    let policy = Policy::default_policy();
    let mut tokenizer = Tokenizer::new(&[42; 32]).map_err(anyhow::Error::msg)?;
    let mut sealer = PartitionSealer::new(
        SealerSettings {
            source_topic: "bench".to_owned(),
            partition: 0,
            partition_count: 1,
            epoch: 1,
            handover: None,
            limits: Limits::default(),
            checkpoint_every: usize::MAX,
            checkpoint_interval_ms: i64::MAX,
            idempotency_window_ms: 600_000,
        },
        now_ms,
    );
    let bar = ProgressBar::new(events).with_style(ProgressStyle::with_template(
        "  sealing and inserting {bar:40} {pos}/{len} events",
    )?);
    let client = clickhouse.client();
    let (mut rows, mut entries, mut checkpoints) = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH), Vec::new());
    let mut sealed_offset = 0_i64;
    let mut done = 0_u64;
    while done < events {
        let Generated::Good(mut event) = generator.next_record() else {
            continue;
        };
        TENANT.clone_into(&mut event.tenant_id);
        let mut writer = Writer::with_capacity(512);
        encode_audit_event(&event, &mut writer);
        let framed = Framed::frame(1, &writer.into_bytes());
        let record = RawRecord {
            offset: i64::try_from(done)?,
            key: Some(TENANT.as_bytes()),
            value: Some(&framed),
        };
        let mut context = SealContext {
            policy: &policy,
            tokenizer: &mut tokenizer,
            now_ms,
            key_id: signer.key_id(),
        };
        let Disposition::Sealed(made) = sealer.handle(&record, |_| SchemaLookup::Found(&reader), &mut context) else {
            anyhow::bail!("a demo event was not sealed");
        };
        entries.push(EntryRow::from_sealed(&made, (1, 0, sealed_offset))?);
        rows.push(EventRow::from_sealed(*made, 1, 0, sealed_offset));
        sealed_offset += 1;
        done += 1;
        if done.is_multiple_of(1000) || done == events {
            let checkpoint = sealer.checkpoint(signer, 0, now_ms);
            checkpoints.push(CheckpointRow::from_checkpoint(&checkpoint, sealed_offset));
            sealed_offset += 1;
        }
        if rows.len() == BATCH || done == events {
            // As the sink stores them: the entries, then the events.
            let mut insert = client.insert::<EntryRow>("event_entries").await?;
            for entry in entries.drain(..) {
                insert.write(&entry).await?;
            }
            insert.end().await?;
            let mut insert = client.insert::<EventRow>("events").await?;
            for row in rows.drain(..) {
                insert.write(&row).await?;
            }
            insert.end().await?;
            bar.set_position(done);
        }
    }
    let mut insert = client.insert::<CheckpointRow>("checkpoints").await?;
    for row in &checkpoints {
        insert.write(row).await?;
    }
    insert.end().await?;
    bar.finish_and_clear();
    Ok(())
}

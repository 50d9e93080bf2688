use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use sealtrail_emit::generator::{Generator, Workload};
use sealtrail_emit::{AuditEmitter, Destination, DurableEmitter, OutboxSettings, Settled, WorkloadSent, send_workload};

use crate::settings::{KafkaArgs, MetricsArgs, RegistryUrlArgs, TopicArgs};

#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryUrlArgs,
    #[command(flatten)]
    topics: TopicArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    outbox: OutboxArgs,
    /// Number of tenants; their share of events follows a Zipf distribution.
    #[arg(long, default_value_t = 20)]
    tenants: usize,
    /// Records to send, malformed ones included (0 with `--outbox`: only send what the outbox holds).
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
    /// Appends the id of every event as soon as it is acknowledged (by Kafka or the outbox) to
    /// FILE, one per line: the list of what this run was told is safe.
    #[arg(long, value_name = "FILE")]
    acknowledged_ids: Option<PathBuf>,
}

/// The durable outbox (see docs/ingest.md).
#[derive(Debug, clap::Args)]
struct OutboxArgs {
    /// Keep events in a durable outbox in DIR while Kafka does not acknowledge them; they are sent
    /// when it answers again, and a later run with the same DIR sends what this one left.
    #[arg(long = "outbox", value_name = "DIR", env = "SEALTRAIL_OUTBOX_DIR")]
    dir: Option<PathBuf>,
    /// Largest size of the outbox on disk, in MiB; events beyond it are refused.
    #[arg(long = "outbox-max-mib", default_value_t = 1024, requires = "dir")]
    max_mib: u64,
    /// Seconds Kafka may take to acknowledge an event before it goes to the outbox.
    #[arg(long = "outbox-spill-after", default_value_t = 10.0, requires = "dir")]
    spill_after_secs: f64,
    /// Seconds to wait at the end for the outbox to drain; what is left stays for the next run.
    #[arg(long = "outbox-drain-timeout", default_value_t = 60, requires = "dir")]
    drain_timeout_secs: u64,
}

impl OutboxArgs {
    fn settings(&self) -> anyhow::Result<Option<OutboxSettings>> {
        let Some(dir) = &self.dir else { return Ok(None) };
        anyhow::ensure!(
            self.spill_after_secs.is_finite() && self.spill_after_secs >= 0.1,
            "--outbox-spill-after must be at least 0.1 seconds, got {}",
            self.spill_after_secs
        );
        anyhow::ensure!(self.max_mib > 0, "--outbox-max-mib must be at least 1");
        Ok(Some(OutboxSettings {
            dir: dir.clone(),
            max_bytes: self.max_mib.saturating_mul(1 << 20),
            spill_after: Duration::from_secs_f64(self.spill_after_secs),
        }))
    }
}

pub async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.bad_ratio),
        "--bad-ratio must be between 0 and 1, got {}",
        args.bad_ratio
    );
    anyhow::ensure!(args.tenants > 0, "--tenants must be at least 1");
    let outbox = args.outbox.settings()?;
    let metrics = args.metrics.start("produce").await?;
    let kafka = args.kafka.settings();
    let registry = args.registry.connection()?;
    let mut acknowledged_ids = match &args.acknowledged_ids {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open --acknowledged-ids {}", path.display()))?,
        ),
        None => None,
    };
    // With an outbox, a broker that is down at start is what the outbox is for.
    let durable = match &outbox {
        Some(settings) => Some(
            DurableEmitter::connect(
                &kafka,
                &registry,
                &args.topics.raw_topic,
                settings,
                Some(metrics.clone()),
            )
            .await?,
        ),
        None => None,
    };
    let direct = if durable.is_some() {
        None
    } else {
        sealtrail_kafka::wait_for_broker(&kafka, args.kafka.connect_timeout()).await?;
        Some(AuditEmitter::connect(&kafka, &registry, &args.topics.raw_topic).await?)
    };
    let destination = match (&durable, &direct) {
        (Some(durable), _) => Destination::Durable(durable),
        (None, Some(emitter)) => Destination::Kafka(emitter),
        (None, None) => anyhow::bail!("no emitter was made"),
    };
    metrics.set_ready();
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
    let mut unrecorded = None;
    let on_settled = |settled: Settled<'_>| {
        bar.inc(1);
        if let (Some(file), Some(id), Some(_)) = (&mut acknowledged_ids, settled.event_id, settled.accepted) {
            // One write per id, unbuffered: a kill -9 of this process keeps every line written.
            if let Err(error) = file.write_all(format!("{id}\n").as_bytes()) {
                unrecorded.get_or_insert(error);
            }
        }
    };
    let sent = send_workload(destination, &mut generator, args.events, args.rate, on_settled).await?;
    bar.finish_and_clear();
    report(&args, &sent);
    if let Some(error) = unrecorded {
        anyhow::bail!("cannot append to --acknowledged-ids: {error}");
    }
    if let Some(durable) = &durable {
        drain_outbox(durable, &args.outbox).await;
    }
    if let Some(failure) = sent.first_failure {
        anyhow::bail!("{} records were not acknowledged; the first: {failure}", sent.failed);
    }
    Ok(())
}

fn report(args: &ProduceArgs, sent: &WorkloadSent) {
    let elapsed = sent.elapsed.as_secs_f64().max(0.001);
    println!(
        "sent {} records to {} in {elapsed:.1}s ({:.0}/s): {} acknowledged, {} failed",
        args.events,
        args.topics.raw_topic,
        sent.acknowledged as f64 / elapsed,
        sent.acknowledged,
        sent.failed
    );
    if sent.outboxed > 0 {
        println!(
            "  {} of them were acknowledged by the outbox (Kafka did not answer within {}s)",
            sent.outboxed, args.outbox.spill_after_secs
        );
    }
    println!("  good events: {} over {} tenants", sent.good(), sent.per_tenant.len());
    let mut busiest: Vec<(&String, &u64)> = sent.per_tenant.iter().collect();
    busiest.sort_by(|a, b| b.1.cmp(a.1));
    let top: Vec<String> = busiest.iter().take(5).map(|(t, n)| format!("{t}={n}")).collect();
    println!("  busiest tenants: {}", top.join(", "));
    if sent.malformed_total() > 0 {
        let kinds: Vec<String> = sent.malformed.iter().map(|(k, n)| format!("{k}={n}")).collect();
        println!(
            "  malformed on purpose: {} ({})",
            sent.malformed_total(),
            kinds.join(", ")
        );
    }
}

/// Waits for the outbox to drain, showing how much is left; what remains stays on disk.
async fn drain_outbox(durable: &DurableEmitter, args: &OutboxArgs) {
    let left = durable.stats().records;
    if left == 0 {
        println!("  the outbox is empty");
        return;
    }
    let bar = ProgressBar::new(left).with_style(
        ProgressStyle::with_template("{spinner} draining the outbox: {pos}/{len} sent to Kafka ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.drain_timeout_secs);
    let remaining = loop {
        let stats = durable.drain(Duration::from_millis(500)).await;
        bar.set_position(left.saturating_sub(stats.records));
        if stats.records == 0 || tokio::time::Instant::now() >= deadline {
            break stats.records;
        }
    };
    bar.finish_and_clear();
    match (remaining, &args.dir) {
        (0, _) => println!("  the outbox is drained: {left} events sent to Kafka"),
        (remaining, Some(dir)) => println!(
            "  {remaining} events stay in the outbox {} (Kafka did not take them within {}s); a run with --outbox {} sends them",
            dir.display(),
            args.drain_timeout_secs,
            dir.display()
        ),
        (remaining, None) => println!("  {remaining} events stay in the outbox"),
    }
}

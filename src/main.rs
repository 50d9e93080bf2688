//! `sealtrail`: one binary for every sealtrail component and for the local stack.

mod commands;
mod settings;
mod telemetry;

use clap::{Parser, Subcommand};

// Processors allocate for every event; mimalloc roughly halves that cost.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "sealtrail",
    version,
    about = "Tamper-evident, multi-tenant audit trails on Kafka and ClickHouse"
)]
struct Cli {
    #[command(flatten)]
    telemetry: telemetry::TelemetryArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the local stack (Kafka broker, ClickHouse, schema registry) on loopback.
    Up(commands::up::UpArgs),
    /// Stop the local stack running on a data directory.
    Down(commands::down::DownArgs),
    /// Install what the local stack runs (Tansu, the ClickHouse engine) if missing.
    Setup(commands::setup::SetupArgs),
    /// Show the endpoints of the local stack and whether each answers.
    Status(commands::status::StatusArgs),
    /// Serve the Confluent-compatible schema registry, keeping its log in Kafka.
    Registry(commands::registry::RegistryArgs),
    /// Create the pipeline's topics (raw, sealed, DLQ) if missing.
    Topics(commands::topics::TopicsArgs),
    /// Manage keys: `init` makes the checkpoint signing and tokenization keys; `create`, `list` and
    /// `revoke` manage API keys.
    Keys(commands::keys::KeysArgs),
    /// Send a realistic audit workload (with malformed records on request) to the raw topic.
    Produce(commands::produce::ProduceArgs),
    /// Seal raw audit events: validate, classify, redact, hash-chain; rejects to the DLQ.
    Seal(commands::seal::SealArgs),
    /// Project sealed events and checkpoints into ClickHouse.
    Sink(commands::sink::SinkArgs),
    /// Verify every checkpoint of the sealed topic as it lands, and the ClickHouse projection
    /// against it; raise integrity incidents.
    Monitor(commands::monitor::MonitorArgs),
    /// An independent witness: cosigns checkpoints that extend what it cosigned before, refuses
    /// forks.
    Witness(commands::witness::WitnessArgs),
    /// Serve the HTTP API: tenant-isolated SQL over the sealed events.
    Api(Box<commands::api::ApiArgs>),
    /// Serve the ingest edge alone (`POST /v1/ingest/events`, health, metrics): writes scaled
    /// apart from reads; the same settings as `api`.
    Ingest(Box<commands::api::ApiArgs>),
    /// Verify a tenant's trail from ClickHouse: chain, checkpoint signatures and links.
    Verify(commands::verify::VerifyArgs),
    /// The export processor: run queued export jobs; with --tenant, write one signed export to a directory.
    Export(commands::export::ExportArgs),
    /// Move to new topics with another partition count, continuing every chain (see `--status`).
    Reshard(commands::reshard::ReshardArgs),
    /// The dead-letter queue: list, show and replay rejected records.
    Dlq(commands::dlq::DlqArgs),
    /// A consumer group's offsets: `describe` (committed, end, lag), `reset` to replay.
    Offsets(commands::offsets::OffsetsArgs),
    /// The retention processor: delete expired events (tombstoned, holds respected) every interval.
    Retention(commands::retention::RetentionArgs),
    /// Verify an export offline with the signing public key; exit code 0 only if it all holds.
    VerifyExport(commands::verify_export::VerifyExportArgs),
    /// Measure seal throughput: the core in process, and end to end next to a plain copy.
    Bench(commands::bench::BenchArgs),
    /// Measure export throughput and memory next to the raw ClickHouse read rate.
    BenchExport(commands::bench_export::BenchExportArgs),
    /// Measure query API latency (p50, p99) on a large generated table.
    BenchApi(commands::bench_api::BenchApiArgs),
    /// Events per second through the ingest edge next to direct Kafka produce of the same events.
    BenchIngest(commands::bench_ingest::BenchIngestArgs),
    /// Produce -> queryable latency (p50, p95, p99) at a steady rate through the running pipeline.
    BenchLatency(commands::bench_latency::BenchLatencyArgs),
    /// ClickHouse's Kafka engine and `seal` + `sink` making the same raw topic queryable, side by side.
    BenchPeer(commands::bench_peer::BenchPeerArgs),
    /// Apply the ClickHouse schema migrations that have not been applied yet.
    Migrate(commands::migrate::MigrateArgs),
    /// Write the ClickHouse users file (grants, row policies, limits) of the tenant-bound readers.
    ClickhouseAccess(commands::clickhouse_access::ClickHouseAccessArgs),
    /// Serve the ClickHouse engine library over HTTP (started by `up`; not for direct use).
    #[command(hide = true)]
    ClickhouseServer(commands::clickhouse_server::ClickHouseServerArgs),
}

impl Command {
    /// How the process is named in traces (`OTEL_SERVICE_NAME` overrides it).
    fn service_name(&self) -> &'static str {
        match self {
            Self::Seal(_) => "sealtrail-seal",
            Self::Sink(_) => "sealtrail-sink",
            Self::Monitor(_) => "sealtrail-monitor",
            Self::Witness(_) => "sealtrail-witness",
            Self::Api(_) => "sealtrail-api",
            Self::Ingest(_) => "sealtrail-ingest",
            Self::Export(_) => "sealtrail-export",
            Self::Retention(_) => "sealtrail-retention",
            Self::Produce(_) => "sealtrail-produce",
            Self::Registry(_) => "sealtrail-registry",
            _ => "sealtrail",
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The launcher must block its stop signals before any thread exists, so it runs before the
    // async runtime and without the usual telemetry.
    if let Command::ClickhouseServer(args) = &cli.command {
        return commands::clickhouse_server::run(args);
    }
    let telemetry = telemetry::init(&cli.telemetry, cli.command.service_name());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => commands::up::run(args).await,
            Command::Down(args) => commands::down::run(args).await,
            Command::Setup(args) => commands::setup::run(args).await,
            Command::Status(args) => commands::status::run(args).await,
            Command::Registry(args) => commands::registry::run(args).await,
            Command::Migrate(args) => commands::migrate::run(args).await,
            Command::ClickhouseAccess(args) => commands::clickhouse_access::run(&args),
            Command::Topics(args) => commands::topics::run(args).await,
            Command::Keys(args) => commands::keys::run(args).await,
            Command::Api(args) => commands::api::run(*args, sealtrail_api::server::ServedRoutes::All).await,
            Command::Ingest(args) => commands::api::run(*args, sealtrail_api::server::ServedRoutes::Ingest).await,
            Command::Produce(args) => commands::produce::run(args).await,
            Command::Seal(args) => commands::seal::run(args).await,
            Command::Sink(args) => commands::sink::run(args).await,
            Command::Monitor(args) => commands::monitor::run(args).await,
            Command::Witness(args) => commands::witness::run(args).await,
            Command::Verify(args) => commands::verify::run(args).await,
            Command::Retention(args) => commands::retention::run(args).await,
            Command::Offsets(args) => commands::offsets::run(args).await,
            Command::Dlq(args) => commands::dlq::run(args).await,
            Command::Reshard(args) => commands::reshard::run(args).await,
            Command::Bench(args) => commands::bench::run(args).await,
            Command::Export(args) => commands::export::run(args).await,
            Command::VerifyExport(args) => commands::verify_export::run(&args),
            Command::BenchApi(args) => commands::bench_api::run(args).await,
            Command::BenchIngest(args) => commands::bench_ingest::run(args).await,
            Command::BenchLatency(args) => commands::bench_latency::run(args).await,
            Command::BenchPeer(args) => commands::bench_peer::run(args).await,
            Command::BenchExport(args) => commands::bench_export::run(args).await,
            Command::ClickhouseServer(_) => unreachable!("handled before the runtime starts"),
        }
    });
    // Work still pending (a probe, a stuck read) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    telemetry.shutdown();
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One line that says what went wrong and what to do; details are in the logs.
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

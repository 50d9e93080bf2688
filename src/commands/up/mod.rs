use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use sealtrail_clickhouse::access::READER_PASSWORD_ENV;
use sealtrail_clickhouse::{ClickHouseSettings, apply_migrations};
use sealtrail_kafka::KafkaSettings;
use sealtrail_local::{
    CacheDir, DataDir, Endpoints, EngineAccess, ManagedProcess, PortChoice, PortOverrides, StackPorts,
    SupervisedProcessor, ensure_clickhouse_engine, ensure_tansu, prepare_engine_access, start_broker, start_clickhouse,
    stop_leftovers, stored_reader_password,
};
use sealtrail_registry::{RegistryService, RegistrySettings};
use tokio::task::JoinHandle;

use crate::settings::TopicArgs;

mod demo;
mod pipeline;
mod supervise;

use pipeline::start_pipeline;
pub use supervise::stop_requested;
use supervise::supervise;

/// Partitions of the pipeline's topics on the local broker.
const LOCAL_PARTITIONS: i32 = 4;

/// How long each child gets to stop cleanly before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

#[expect(clippy::struct_excessive_bools, reason = "independent command-line switches")]
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Where the stack keeps its data; it persists across restarts.
    #[arg(long, env = "SEALTRAIL_DATA_DIR", default_value = ".sealtrail")]
    pub data_dir: PathBuf,
    /// `standard` uses 9092, 8123, 9000, 8081 and 8080; `auto` picks free ports. Either way the ports
    /// chosen are recorded and reused by the next start.
    #[arg(long, value_enum, default_value = "standard")]
    pub ports: PortsArg,
    #[arg(long)]
    pub kafka_port: Option<u16>,
    #[arg(long)]
    pub clickhouse_port: Option<u16>,
    #[arg(long)]
    pub clickhouse_tcp_port: Option<u16>,
    #[arg(long)]
    pub registry_port: Option<u16>,
    #[arg(long)]
    pub api_port: Option<u16>,
    /// Fail instead of installing missing components.
    #[arg(long)]
    pub no_install: bool,
    /// Also stop when standard input closes (lets a parent process, such as a test harness,
    /// tie the stack's life to its own).
    #[arg(long, hide = true)]
    pub exit_on_stdin_close: bool,
    /// Once up, send a demo workload through the pipeline and verify every tenant's chain.
    #[arg(long)]
    pub demo: bool,
    /// Records the demo sends (1% of them malformed on purpose).
    #[arg(long, default_value_t = 5000)]
    pub demo_events: u64,
    /// Run only the infrastructure (broker, ClickHouse, registry), not the seal and sink.
    #[arg(long)]
    pub no_pipeline: bool,
    /// A further database whose events and checkpoints the tenant-bound ClickHouse users may read
    /// (behind row policies), besides `sealtrail`; repeatable. For test suites that give each
    /// test a database of its own.
    #[arg(long = "scoped-database", hide = true)]
    pub scoped_databases: Vec<String>,
    /// How many seal and how many sink processes to run, each in its processor's consumer group
    /// (at most the raw topic's partition count: more would sit idle).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=4))]
    pub instances: u16,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PortsArg {
    Standard,
    Auto,
}

/// What is running, in start order; stopped in reverse.
struct Stack {
    processes: Vec<ManagedProcess>,
    registry: Option<(tokio::sync::oneshot::Sender<()>, JoinHandle<std::io::Result<()>>)>,
    processors: Vec<SupervisedProcessor>,
}

impl Stack {
    async fn stop(mut self) {
        for processor in self.processors.iter_mut().rev() {
            processor.stop(STOP_GRACE).await;
        }
        if let Some((stop, server)) = self.registry.take() {
            stop.send(()).ok();
            server.await.ok();
        }
        while let Some(process) = self.processes.pop() {
            let what = process.what();
            let status = process.stop(STOP_GRACE).await;
            tracing::info!(what, %status, "stopped");
        }
    }
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let data_dir = DataDir::open(&args.data_dir)?;
    let _lock = data_dir.lock()?;
    stop_leftovers(&data_dir.run_dir()).await;
    // A stale file would point clients at a stack that is not up (yet).
    std::fs::remove_file(data_dir.endpoints_file()).ok();

    let cache = CacheDir::from_env();
    let tansu = ensure_tansu(&cache, !args.no_install).await?;
    let engine = ensure_clickhouse_engine(&cache, !args.no_install).await?;
    let choice = match args.ports {
        PortsArg::Standard => PortChoice::Standard,
        PortsArg::Auto => PortChoice::Auto,
    };
    let overrides = PortOverrides {
        kafka: args.kafka_port,
        clickhouse_http: args.clickhouse_port,
        clickhouse_tcp: args.clickhouse_tcp_port,
        registry: args.registry_port,
        api: args.api_port,
    };
    let ports = StackPorts::resolve(&data_dir, choice, overrides)?;

    let mut stack = Stack {
        processes: Vec::new(),
        registry: None,
        processors: Vec::new(),
    };
    let access = prepare_engine_access(&data_dir, &args.scoped_databases)?;
    let mut started = start(&mut stack, &data_dir, &tansu.path, &engine.path, ports, &access).await;
    let mut metrics_urls = Vec::new();
    let mut topics = default_topics();
    if let Ok(endpoints) = &started
        && !args.no_pipeline
    {
        match start_pipeline(&mut stack, &data_dir, endpoints, ports.api, &access, args.instances).await {
            Ok((urls, current)) => {
                metrics_urls = urls;
                topics = current;
            }
            Err(error) => started = Err(error),
        }
    }
    let mut endpoints = match started {
        Ok(endpoints) => endpoints,
        Err(error) => {
            stack.stop().await;
            return Err(error);
        }
    };
    if args.no_pipeline {
        endpoints.extra = vec![reader_password_env(&data_dir)];
    } else {
        endpoints.extra = pipeline_env(&data_dir, &topics);
        endpoints
            .extra
            .push(("METRICS_URLS".to_owned(), metrics_urls.join(" ")));
        endpoints.api_url = Some(api_url(ports.api));
    }
    endpoints.write(&data_dir.endpoints_file())?;
    println!("{}", endpoints.to_env().trim_end());
    println!(
        "sealtrail is up on {} (endpoints in {}); Ctrl-C or `sealtrail down --data-dir {}` stops it",
        data_dir.root().display(),
        data_dir.endpoints_file().display(),
        data_dir.root().display()
    );

    if args.demo
        && let Err(error) = demo::run(&endpoints, &data_dir, &topics.raw_topic, args.demo_events).await
    {
        eprintln!("demo failed: {error:#}");
    }

    let outcome = supervise(&mut stack, &data_dir, args.exit_on_stdin_close).await;
    eprintln!("stopping the local stack...");
    stack.stop().await;
    std::fs::remove_file(data_dir.endpoints_file()).ok();
    eprintln!("stopped; data kept in {}", data_dir.root().display());
    outcome
}

async fn start(
    stack: &mut Stack,
    data_dir: &DataDir,
    tansu: &std::path::Path,
    engine: &std::path::Path,
    ports: StackPorts,
    access: &EngineAccess,
) -> anyhow::Result<Endpoints> {
    eprintln!(
        "starting the Kafka broker (Tansu, SQLite storage) on 127.0.0.1:{}",
        ports.kafka
    );
    stack.processes.push(start_broker(data_dir, tansu, ports.kafka).await?);

    eprintln!("starting ClickHouse on 127.0.0.1:{} (HTTP)", ports.clickhouse_http);
    let launcher = std::env::current_exe().context("cannot locate the sealtrail executable to launch ClickHouse")?;
    stack.processes.push(
        start_clickhouse(
            data_dir,
            &launcher,
            engine,
            ports.clickhouse_http,
            ports.clickhouse_tcp,
            &access.config_file,
        )
        .await?,
    );
    let clickhouse = ClickHouseSettings::new(format!("http://127.0.0.1:{}", ports.clickhouse_http));
    let migrations = apply_migrations(&clickhouse).await?;
    tracing::info!(migrations = migrations.len(), "ClickHouse schema up to date");

    eprintln!("starting the schema registry on 127.0.0.1:{}", ports.registry);
    let kafka = KafkaSettings::new(format!("127.0.0.1:{}", ports.kafka));
    let registry = RegistryService::start(&RegistrySettings::new(kafka.clone())).await?;
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, ports.registry));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} for the schema registry; pass --registry-port"))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, registry.router())
            .with_graceful_shutdown(async {
                stopped.await.ok();
            })
            .await
    });
    stack.registry = Some((stop, server));

    Ok(Endpoints {
        kafka_bootstrap: kafka.bootstrap,
        schema_registry_url: format!("http://{address}"),
        clickhouse_url: clickhouse.url,
        api_url: None,
        extra: Vec::new(),
    })
}

/// The settings the local pipeline's processors share, beyond the endpoints; `topics` are the
/// current layout's (the first topics until a `sealtrail reshard`).
fn pipeline_env(data_dir: &DataDir, topics: &TopicArgs) -> Vec<(String, String)> {
    let topics = topics.clone();
    let keys = data_dir.root().join("keys");
    vec![
        ("RAW_TOPIC".to_owned(), topics.raw_topic),
        ("SEALED_TOPIC".to_owned(), topics.sealed_topic),
        ("DLQ_TOPIC".to_owned(), topics.dlq_topic),
        ("LAYOUT_TOPIC".to_owned(), topics.layout_topic),
        (
            "CLICKHOUSE_DATABASE".to_owned(),
            ClickHouseSettings::DEFAULT_DATABASE.to_owned(),
        ),
        ("SEALTRAIL_KEY_DIR".to_owned(), keys.display().to_string()),
        reader_password_env(data_dir),
        // The processors' consumer groups, for `sealtrail offsets describe|reset --group`.
        ("SEAL_GROUP".to_owned(), "sealtrail-seal".to_owned()),
        ("SINK_GROUP".to_owned(), "sealtrail-sink".to_owned()),
        ("EXPORT_GROUP".to_owned(), "sealtrail-export".to_owned()),
        (
            "SEALTRAIL_ARTIFACTS_DIR".to_owned(),
            data_dir.root().join("exports").display().to_string(),
        ),
        (
            "SEALTRAIL_TRUSTED_KEYS".to_owned(),
            keys.join("trusted").display().to_string(),
        ),
    ]
}

/// `CLICKHOUSE_READER_PASSWORD`: what the API and the export processor log in to ClickHouse with
/// as the tenant-bound readers.
fn reader_password_env(data_dir: &DataDir) -> (String, String) {
    let password = stored_reader_password(data_dir).unwrap_or_default();
    (READER_PASSWORD_ENV.to_owned(), password)
}

fn default_topics() -> TopicArgs {
    TopicArgs {
        raw_topic: "audit-events".to_owned(),
        sealed_topic: "audit-events-sealed".to_owned(),
        dlq_topic: "audit-events-dlq".to_owned(),
        layout_topic: "audit-events-layouts".to_owned(),
    }
}

fn api_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

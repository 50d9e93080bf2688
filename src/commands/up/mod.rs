use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use sealtrail_clickhouse::{ClickHouseSettings, apply_migrations};
use sealtrail_kafka::KafkaSettings;
use sealtrail_local::{
    ADMIN_USER, CacheDir, DataDir, Endpoints, EngineAccess, ManagedProcess, PortChoice, PortOverrides, StackIdentity,
    StackPorts, StackSecurity, SupervisedProcessor, TlsFront, admin_settings, ensure_clickhouse_engine, ensure_tansu,
    prepare_engine_access, start_broker, start_clickhouse, start_secured_broker, stop_leftovers,
};
use sealtrail_registry::{RegistryAccess, RegistryService, RegistrySettings};
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
    #[arg(long)]
    pub ingest_port: Option<u16>,
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
    /// Plain TCP and HTTP everywhere, no Kafka or registry credentials: for quick experiments on
    /// a machine nobody else uses. By default every hop runs TLS with the data directory's CA,
    /// and every component has credentials of its own.
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PortsArg {
    Standard,
    Auto,
}

/// What is running, in start order; stopped in reverse.
struct Stack {
    processes: Vec<ManagedProcess>,
    /// The TLS listeners in front of the broker and ClickHouse.
    fronts: Vec<TlsFront>,
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
        self.fronts.clear();
    }
}

/// How the stack is secured, and what its components and operators are told.
struct Security<'a> {
    stack: Option<&'a StackSecurity>,
    access: &'a EngineAccess,
}

impl Security<'_> {
    fn scheme(&self) -> &'static str {
        if self.stack.is_some() { "https" } else { "http" }
    }

    /// What clients of the stack trust.
    fn trust(&self) -> sealtrail_http::TrustSettings {
        self.stack
            .map(|secured| sealtrail_http::TrustSettings::with_ca(&secured.ca.ca_file))
            .unwrap_or_default()
    }

    /// The settings `identity` runs with: file names, never secrets.
    fn env(&self, identity: StackIdentity) -> Vec<(String, String)> {
        let mut env = vec![(
            "CLICKHOUSE_READER_PASSWORD_FILE".to_owned(),
            self.access.reader_password_file.display().to_string(),
        )];
        if let Some(stack) = self.stack {
            let properties = stack.client_properties(identity).display().to_string();
            env.extend([
                ("SEALTRAIL_CA_FILE".to_owned(), stack.ca.ca_file.display().to_string()),
                ("KAFKA_CONFIG_FILE".to_owned(), properties.clone()),
                ("SCHEMA_REGISTRY_CONFIG_FILE".to_owned(), properties),
            ]);
        }
        env
    }

    /// What endpoints.env adds for operators: the above, and ClickHouse's administrator.
    fn operator_env(&self) -> Vec<(String, String)> {
        let mut env = self.env(StackIdentity::Operator);
        env.extend([
            ("CLICKHOUSE_USER".to_owned(), ADMIN_USER.to_owned()),
            (
                "CLICKHOUSE_PASSWORD_FILE".to_owned(),
                self.access.admin_password_file.display().to_string(),
            ),
        ]);
        env
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
        ingest: args.ingest_port,
    };
    let ports = StackPorts::resolve(&data_dir, choice, overrides)?;

    let mut stack = Stack {
        processes: Vec::new(),
        fronts: Vec::new(),
        registry: None,
        processors: Vec::new(),
    };
    let access = prepare_engine_access(&data_dir, &args.scoped_databases)?;
    let stack_security = if args.insecure {
        None
    } else {
        Some(StackSecurity::prepare(&data_dir)?)
    };
    let security = Security {
        stack: stack_security.as_ref(),
        access: &access,
    };
    let mut started = start(&mut stack, &data_dir, (&tansu.path, &engine.path), ports, &security).await;
    let mut metrics_urls = Vec::new();
    let mut topics = default_topics();
    if let Ok(endpoints) = &started
        && !args.no_pipeline
    {
        match start_pipeline(&mut stack, &data_dir, endpoints, ports, &security, args.instances).await {
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
    endpoints.extra = security.operator_env();
    if !args.no_pipeline {
        endpoints.extra.extend(pipeline_env(&data_dir, &topics));
        endpoints
            .extra
            .push(("METRICS_URLS".to_owned(), metrics_urls.join(" ")));
        endpoints.api_url = Some(api_url(&security, ports.api));
        endpoints
            .extra
            .push(("INGEST_URL".to_owned(), api_url(&security, ports.ingest)));
        // gRPC is served on the same port (HTTP/2); tools such as grpcurl take host:port.
        endpoints
            .extra
            .push(("INGEST_GRPC".to_owned(), format!("127.0.0.1:{}", ports.ingest)));
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
    (tansu, engine): (&std::path::Path, &std::path::Path),
    ports: StackPorts,
    security: &Security<'_>,
) -> anyhow::Result<Endpoints> {
    let tls = if security.stack.is_some() {
        ", TLS and SCRAM"
    } else {
        ""
    };
    eprintln!(
        "starting the Kafka broker (Tansu, SQLite storage{tls}) on 127.0.0.1:{}",
        ports.kafka
    );
    let bootstrap = format!("127.0.0.1:{}", ports.kafka);
    let kafka = match security.stack {
        None => {
            stack.processes.push(start_broker(data_dir, tansu, ports.kafka).await?);
            KafkaSettings::new(&bootstrap)
        }
        Some(secured) => {
            let served = start_secured_broker(data_dir, tansu, &ports, secured).await?;
            stack.processes.push(served.process);
            stack.fronts.extend(served.front);
            secured.kafka_settings(&bootstrap, StackIdentity::Registry)?
        }
    };

    let scheme = security.scheme();
    eprintln!(
        "starting ClickHouse on 127.0.0.1:{} ({})",
        ports.clickhouse_http,
        scheme.to_uppercase()
    );
    let launcher = std::env::current_exe().context("cannot locate the sealtrail executable to launch ClickHouse")?;
    let served = start_clickhouse(data_dir, &launcher, engine, &ports, security.access, security.stack).await?;
    stack.processes.push(served.process);
    stack.fronts.extend(served.front);
    let clickhouse_url = format!("{scheme}://127.0.0.1:{}", ports.clickhouse_http);
    let clickhouse = admin_settings(clickhouse_url.clone(), security.access, security.stack)?;
    let migrations = apply_migrations(&clickhouse).await?;
    tracing::info!(migrations = migrations.len(), "ClickHouse schema up to date");

    eprintln!(
        "starting the schema registry on 127.0.0.1:{} ({})",
        ports.registry,
        scheme.to_uppercase()
    );
    let registry = RegistryService::start(&RegistrySettings::new(kafka)).await?;
    let (router, tls) = match security.stack {
        None => (registry.router(), None),
        Some(secured) => {
            let users = sealtrail_http::secret_file::read_secret(&secured.registry_users_file(), "registry users")?;
            let access = RegistryAccess::parse(&users)?;
            (registry.guarded_router(access), Some(secured.server_tls()?))
        }
    };
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, ports.registry));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} for the schema registry; pass --registry-port"))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let registry_server = tokio::spawn(sealtrail_http::serve::serve(listener, router, tls, async {
        stopped.await.ok();
    }));
    stack.registry = Some((stop, registry_server));

    Ok(Endpoints {
        kafka_bootstrap: bootstrap,
        schema_registry_url: format!("{scheme}://{address}"),
        clickhouse_url,
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

fn default_topics() -> TopicArgs {
    TopicArgs {
        raw_topic: "audit-events".to_owned(),
        sealed_topic: "audit-events-sealed".to_owned(),
        dlq_topic: "audit-events-dlq".to_owned(),
        layout_topic: "audit-events-layouts".to_owned(),
    }
}

fn api_url(security: &Security<'_>, port: u16) -> String {
    format!("{}://127.0.0.1:{port}", security.scheme())
}

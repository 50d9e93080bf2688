use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::Context as _;
use sealtrail_clickhouse::{ClickHouseSettings, apply_migrations};
use sealtrail_kafka::KafkaSettings;
use sealtrail_local::{
    CacheDir, DataDir, Endpoints, ManagedProcess, PortChoice, PortOverrides, StackPorts, ensure_clickhouse_engine,
    ensure_tansu, start_broker, start_clickhouse, stop_leftovers,
};
use sealtrail_registry::{RegistryService, RegistrySettings};
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;

/// How long each child gets to stop cleanly before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Where the stack keeps its data; it persists across restarts.
    #[arg(long, env = "SEALTRAIL_DATA_DIR", default_value = ".sealtrail")]
    pub data_dir: PathBuf,
    /// `standard` uses 9092, 8123, 9000 and 8081; `auto` picks free ports. Either way the ports
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
    /// Fail instead of installing missing components.
    #[arg(long)]
    pub no_install: bool,
    /// Also stop when standard input closes (lets a parent process, such as a test harness,
    /// tie the stack's life to its own).
    #[arg(long, hide = true)]
    pub exit_on_stdin_close: bool,
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
}

impl Stack {
    async fn stop(mut self) {
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
    };
    let ports = StackPorts::resolve(&data_dir, choice, overrides)?;

    let mut stack = Stack {
        processes: Vec::new(),
        registry: None,
    };
    let started = start(&mut stack, &data_dir, &tansu.path, &engine.path, ports).await;
    let endpoints = match started {
        Ok(endpoints) => endpoints,
        Err(error) => {
            stack.stop().await;
            return Err(error);
        }
    };
    endpoints.write(&data_dir.endpoints_file())?;
    println!("{}", endpoints.to_env().trim_end());
    println!(
        "sealtrail is up on {} (endpoints in {}); Ctrl-C or `sealtrail down --data-dir {}` stops it",
        data_dir.root().display(),
        data_dir.endpoints_file().display(),
        data_dir.root().display()
    );

    let outcome = supervise(&mut stack, args.exit_on_stdin_close).await;
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
) -> anyhow::Result<Endpoints> {
    eprintln!(
        "starting the Kafka broker (Tansu, SQLite storage) on 127.0.0.1:{}",
        ports.kafka
    );
    stack.processes.push(start_broker(data_dir, tansu, ports.kafka).await?);

    eprintln!("starting ClickHouse on 127.0.0.1:{} (HTTP)", ports.clickhouse_http);
    let launcher = std::env::current_exe().context("cannot locate the sealtrail executable to launch ClickHouse")?;
    stack
        .processes
        .push(start_clickhouse(data_dir, &launcher, engine, ports.clickhouse_http, ports.clickhouse_tcp).await?);
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
    })
}

/// Waits until the stack is asked to stop (`Ok`) or one of its parts fails (`Err`).
async fn supervise(stack: &mut Stack, exit_on_stdin_close: bool) -> anyhow::Result<()> {
    let stdin_closed = async {
        if !exit_on_stdin_close {
            return std::future::pending::<()>().await;
        }
        // A plain thread, not the runtime's blocking pool: a read blocked on stdin must never
        // hold up the process's exit.
        let (closed, on_close) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut buffer = [0_u8; 256];
            let mut stdin = std::io::stdin().lock();
            while matches!(std::io::Read::read(&mut stdin, &mut buffer), Ok(read) if read > 0) {}
            closed.send(()).ok();
        });
        on_close.await.ok();
    };
    let (first, rest) = stack.processes.split_at_mut(1);
    let broker = &mut first[0];
    let clickhouse = &mut rest[0];
    let registry = &mut stack.registry.as_mut().expect("started").1;
    tokio::select! {
        () = stop_requested() => Ok(()),
        () = stdin_closed => Ok(()),
        status = broker.exited() => Err(died(broker.what(), status)),
        status = clickhouse.exited() => Err(died(clickhouse.what(), status)),
        result = registry => Err(anyhow::anyhow!("the schema registry stopped unexpectedly ({result:?}); everything was stopped, run `sealtrail up` again")),
    }
}

fn died(what: &str, status: ExitStatus) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} exited unexpectedly ({status}); everything was stopped and the data kept, run `sealtrail up` again"
    )
}

/// Resolves on Ctrl-C, SIGTERM or SIGHUP.
pub async fn stop_requested() {
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut hangup = signal(SignalKind::hangup()).expect("SIGHUP handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
        _ = hangup.recv() => {}
    }
}

//! Starts real local stacks (`sealtrail up`) for the tests: a broker, ClickHouse and the schema
//! registry on free loopback ports, in a temporary data directory.
//!
//! One stack is shared by the whole test binary; tests that kill or restart things start their
//! own. A stack lives as long as the test process: `up` runs with `--exit-on-stdin-close`, and the
//! pipe to its standard input closes when the process ends, however it ends.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use sealtrail_clickhouse::ClickHouseSettings;
use sealtrail_kafka::KafkaSettings;
use sealtrail_local::Endpoints;

pub const SEALTRAIL: &str = env!("CARGO_BIN_EXE_sealtrail");

/// A running `sealtrail up`.
#[derive(Debug)]
pub struct TestStack {
    pub data_dir: PathBuf,
    pub endpoints: Endpoints,
    child: Child,
    stdin: Option<ChildStdin>,
}

/// How many databases of the shared stack the tenant-bound ClickHouse users may read: ClickHouse
/// binds row policies to named databases, and the engine reads its users once, at start.
const SCOPED_DATABASES: usize = 64;

/// The stack shared by every test of this binary, started on first use.
pub fn shared() -> &'static TestStack {
    static SHARED: OnceLock<TestStack> = OnceLock::new();
    SHARED.get_or_init(|| {
        let mut args = Vec::new();
        for index in 0..SCOPED_DATABASES {
            args.push("--scoped-database".to_owned());
            args.push(scoped_database_name(index));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        TestStack::try_start(&fresh_data_dir("shared"), &args).unwrap_or_else(|failure| panic!("{failure}"))
    })
}

fn scoped_database_name(index: usize) -> String {
    format!("scoped_{index:02}")
}

/// A fresh database of the shared stack that the tenant-bound users may read (behind their row
/// policies), for a test that needs one of its own.
pub fn scoped_database() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let index = NEXT.fetch_add(1, Ordering::Relaxed);
    assert!(
        index < SCOPED_DATABASES,
        "more than {SCOPED_DATABASES} tests want a scoped database: raise SCOPED_DATABASES in tests/it/harness.rs"
    );
    scoped_database_name(index)
}

/// A new, empty data directory for one stack, removed by a later run once this process is gone.
pub fn fresh_data_dir(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let root = std::env::temp_dir().join("sealtrail-it");
    remove_stale_runs(&root);
    let dir = root.join(format!(
        "{}-{name}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create the test data dir");
    dir
}

fn remove_stale_runs(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.split('-').next().and_then(|pid| pid.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            std::fs::remove_dir_all(entry.path()).ok();
        }
    }
}

impl TestStack {
    /// Runs `sealtrail up` on `data_dir` and returns once it reports the stack is up.
    pub fn start(data_dir: &Path) -> Self {
        Self::try_start(data_dir, &[]).unwrap_or_else(|failure| panic!("{failure}"))
    }

    /// Like `start`, returning what `up` printed on failure instead of panicking.
    pub fn try_start(data_dir: &Path, extra_args: &[&str]) -> Result<Self, String> {
        Self::try_start_with_env(data_dir, extra_args, &[])
    }

    /// Like `try_start`, with `env` set for `up` and every process it starts.
    pub fn try_start_with_env(data_dir: &Path, extra_args: &[&str], env: &[(&str, &str)]) -> Result<Self, String> {
        let stderr_log = data_dir.join("up.stderr.log");
        let stderr = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&stderr_log)
            .expect("open the stderr log");
        let mut child = Command::new(SEALTRAIL)
            .args(["up", "--ports", "auto", "--exit-on-stdin-close", "--data-dir"])
            .arg(data_dir)
            .args(extra_args)
            // Processors killed by the chaos tests come back quickly.
            .env("SEALTRAIL_RESTART_BACKOFF_MS", "200")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("run sealtrail up");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        // `up` prints the endpoints, then this line, once everything answers. Installing on a
        // fresh machine happens before, on stderr.
        let up = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|line| line.starts_with("sealtrail is up"));
        if !up {
            let status = child.wait().expect("wait for sealtrail up");
            let printed = std::fs::read_to_string(&stderr_log).unwrap_or_default();
            return Err(format!(
                "sealtrail up exited with {status} before the stack was up:\n{printed}"
            ));
        }
        // Keep draining stdout so `up` never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let endpoints_text =
            std::fs::read_to_string(data_dir.join("endpoints.env")).expect("up writes endpoints.env before reporting");
        Ok(Self {
            data_dir: data_dir.to_owned(),
            endpoints: Endpoints::parse(&endpoints_text),
            stdin: child.stdin.take(),
            child,
        })
    }

    /// For a stack started with `--no-pipeline`: the keys and topics `up` would make.
    pub fn init_keys_and_topics(&self) {
        let keys = self.data_dir.join("keys").display().to_string();
        let bootstrap = &self.endpoints.kafka_bootstrap;
        for args in [
            vec!["keys", "init", "--dir", keys.as_str()],
            vec!["topics", "--kafka-bootstrap", bootstrap.as_str()],
        ] {
            let (status, stdout, stderr) = self.sealtrail(&args, &[]);
            assert!(status.success(), "{args:?}: {stdout}{stderr}");
        }
    }

    /// The broker, as the operator (endpoints.env's `KAFKA_CONFIG_FILE`).
    pub fn kafka(&self) -> KafkaSettings {
        self.endpoints.kafka().expect("the operator's Kafka client properties")
    }

    /// ClickHouse as its administrator, with the readers' password.
    pub fn clickhouse(&self) -> ClickHouseSettings {
        self.endpoints
            .clickhouse()
            .expect("the operator's ClickHouse credentials")
    }

    pub fn registry_url(&self) -> &str {
        &self.endpoints.schema_registry_url
    }

    /// The registry with the operator's credentials.
    pub fn registry(&self) -> sealtrail_runtime::RegistryConnection {
        self.endpoints.registry().expect("the operator's registry credentials")
    }

    /// An HTTP client trusting the stack's CA (for the API and the registry).
    pub fn http(&self) -> reqwest::Client {
        self.endpoints.http_client().expect("an HTTP client")
    }

    /// A request to the registry with the operator's credentials.
    pub fn registry_request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http().request(method, format!("{}{path}", self.registry_url()));
        match self.registry().credentials {
            Some(credentials) => request.basic_auth(credentials.user, Some(credentials.password)),
            None => request,
        }
    }

    /// Everything endpoints.env sets, as `set -a; . endpoints.env` would give a command.
    pub fn env(&self) -> Vec<(String, String)> {
        self.endpoints
            .to_env()
            .lines()
            .filter_map(|line| {
                let (key, value) = line.split_once('=')?;
                Some((key.to_owned(), value.trim_matches('"').to_owned()))
            })
            .collect()
    }

    /// Runs `sealtrail <args>` configured by this stack's endpoints.env, with `env` on top.
    pub fn sealtrail(&self, args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
        let mut all: Vec<(String, String)> = self.env();
        all.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let borrowed: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_sealtrail(args, &borrowed)
    }

    /// The key directory `up` made for the pipeline.
    pub fn trusted_keys(&self) -> Vec<sealtrail_core::checkpoint::TrustedKey> {
        sealtrail_runtime::keys::load_trusted(&self.data_dir.join("keys/trusted")).expect("trusted keys")
    }

    /// The pid a child recorded in the data directory (`tansu`, `clickhouse`, `seal-1`...).
    pub fn child_pid(&self, name: &str) -> i32 {
        self.try_child_pid(name).expect("a pid file with a pid")
    }

    /// Like `child_pid`; `None` while the child is not running (a processor being restarted).
    pub fn try_child_pid(&self, name: &str) -> Option<i32> {
        let stamp = std::fs::read_to_string(self.data_dir.join("run").join(format!("{name}.pid"))).ok()?;
        stamp.split_whitespace().next()?.parse().ok()
    }

    /// What `up` has written to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("up.stderr.log")).unwrap_or_default()
    }

    /// Stops the stack the way Ctrl-C does and waits for `up` to exit.
    pub fn stop(mut self) -> ExitStatus {
        drop(self.stdin.take());
        self.child.wait().expect("wait for sealtrail up")
    }

    /// Waits for `up` to exit on its own (after one of its children died).
    pub fn wait_for_exit(mut self) -> (ExitStatus, String) {
        let status = self.child.wait().expect("wait for sealtrail up");
        (status, self.stderr())
    }
}

/// Runs `sealtrail <args>` to completion and returns its status, stdout and stderr.
pub fn run_sealtrail(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let output = Command::new(SEALTRAIL)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run sealtrail");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A name no other test uses, for topics, groups and tables.
/// A port nothing listens on now, on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A processor the test starts and stops (SIGTERM, as an orchestrator would).
pub struct Processor {
    child: Child,
    metrics_url: String,
}

/// A processor a failing test leaves behind must not keep running against a stack that is gone.
impl Drop for Processor {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
}

impl Processor {
    /// Starts `sealtrail <name>` (seal or sink) on `stack` in consumer group `group`, with its
    /// metrics on a free port and `env` on top.
    pub fn start(stack: &TestStack, name: &str, group: &str, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(stack.data_dir.join(format!("{name}.log")))
            .expect("log file");
        let child = Command::new(SEALTRAIL)
            .arg(name)
            .envs(stack.env())
            .env("KAFKA_BOOTSTRAP", &stack.endpoints.kafka_bootstrap)
            .env("SCHEMA_REGISTRY_URL", stack.registry_url())
            .env("CLICKHOUSE_URL", &stack.endpoints.clickhouse_url)
            .env("SEALTRAIL_KEY_DIR", stack.data_dir.join("keys"))
            .env(
                match name {
                    "seal" => "SEAL_GROUP",
                    "monitor" => "MONITOR_GROUP",
                    _ => "SINK_GROUP",
                },
                group,
            )
            .env("SEAL_CHECKPOINT_INTERVAL_MS", "200")
            .env("SINK_BATCH_WAIT_MS", "100")
            .env("SEALTRAIL_METRICS_ADDR", format!("127.0.0.1:{port}"))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the processor");
        Self {
            child,
            metrics_url: format!("http://127.0.0.1:{port}/metrics"),
        }
    }

    pub fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "stopped cleanly: {status}");
    }

    /// Kills the processor with SIGKILL, as a crash or an OOM kill would, and reaps it.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("wait");
    }

    /// The value of one counter sample, `name{labels}`, as the exposition prints it (0 when absent).
    pub async fn metric(&self, sample: &str) -> u64 {
        let text = reqwest::get(&self.metrics_url)
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("text");
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    }
}

/// Serves the app `make` builds for its own base URL over HTTPS, on a free loopback port with the
/// shared stack's server certificate (which the stack's CA signs), as an outside service the
/// stack talks to would; that base URL.
pub async fn serve_https_as_the_stack(make: impl FnOnce(&str) -> axum::Router) -> String {
    serve_https_as(shared(), make).await
}

/// Like [`serve_https_as_the_stack`], with the certificate of `stack`.
pub async fn serve_https_as(stack: &TestStack, make: impl FnOnce(&str) -> axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("address"));
    let app = make(&url);
    let tls_dir = stack.data_dir.join("tls");
    let tls = sealtrail_http::ServerTls::load(&sealtrail_http::ServerTlsFiles {
        cert: tls_dir.join("server.pem"),
        key: tls_dir.join("server.key"),
    })
    .expect("the stack's certificate");
    tokio::spawn(sealtrail_http::serve::serve(
        listener,
        app,
        Some(tls),
        std::future::pending(),
    ));
    url
}

/// The sorted ids of `tenant`'s events in `clickhouse`, once there are `expected` of them (the
/// deadline only bounds a broken run).
pub async fn stored_event_ids(clickhouse: &ClickHouseSettings, tenant: &str, expected: usize) -> Vec<String> {
    let client = clickhouse.client();
    let started = std::time::Instant::now();
    loop {
        let mut ids: Vec<String> = client
            .query("SELECT event_id FROM events WHERE tenant_id = ?")
            .bind(tenant)
            .fetch_all()
            .await
            .expect("events");
        if ids.len() >= expected || started.elapsed() > std::time::Duration::from_secs(600) {
            ids.sort();
            return ids;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

//! Starting the broker and ClickHouse as supervised children, and waiting until they serve.

use std::path::Path;
use std::time::Duration;

use sealtrail_clickhouse::{ClickHouseSettings, wait_for_clickhouse};
use sealtrail_kafka::{KafkaSettings, wait_for_broker};
use tokio::process::Command;

use crate::clickhouse_access::ADMIN_USER;
use crate::stack_security::{StackIdentity, StackSecurity};
use crate::{DataDir, EngineAccess, LocalError, ManagedProcess, StackPorts, TlsFront};

const BROKER_READY_WITHIN: Duration = Duration::from_secs(60);
const CLICKHOUSE_READY_WITHIN: Duration = Duration::from_secs(120);
/// The SCRAM users made on the broker, with digests of their passwords, so each is made once.
const SCRAM_USERS_MARKER: &str = "scram-users";
/// Tansu reads these from the environment; a stray value would override the flags given here.
const TANSU_ENV: [&str; 8] = [
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "KAFKA_CLUSTER_ID",
    "KAFKA_LISTENER_URL",
];

/// A running service and, on the secured stack, the TLS front clients reach it through.
#[derive(Debug)]
pub struct Served {
    pub process: ManagedProcess,
    pub front: Option<TlsFront>,
}

fn tansu_command(data_dir: &DataDir, tansu: &Path, port: u16, advertised: u16, authentication: bool) -> Command {
    let mut command = Command::new(tansu);
    command
        .arg("broker")
        .args(["--listener-url", &format!("tcp://127.0.0.1:{port}")])
        .args(["--advertised-listener-url", &format!("tcp://127.0.0.1:{advertised}")])
        // Relative to the working directory, which is why the broker starts in its own folder.
        .args(["--storage-engine", "sqlite://tansu.db"])
        .args(["--cluster-id", "sealtrail-local"])
        .current_dir(data_dir.kafka_dir());
    if authentication {
        command.arg("--authentication");
    }
    for variable in TANSU_ENV {
        command.env_remove(variable);
    }
    command
}

async fn spawn_broker(
    data_dir: &DataDir,
    command: Command,
    ready: &KafkaSettings,
) -> Result<ManagedProcess, LocalError> {
    let mut broker = ManagedProcess::spawn(
        "the Kafka broker (Tansu)",
        "tansu",
        command,
        &data_dir.run_dir(),
        &data_dir.logs_dir(),
    )?;
    tokio::select! {
        status = broker.exited() => Err(broker.start_failure(status)),
        ready = wait_for_broker(ready, BROKER_READY_WITHIN) => match ready {
            Ok(()) => Ok(broker),
            Err(error) => Err(not_ready(broker, BROKER_READY_WITHIN, &error).await),
        },
    }
}

/// Starts Tansu on `127.0.0.1:port` with durable SQLite storage in the data directory, and waits
/// until it answers metadata requests.
pub async fn start_broker(data_dir: &DataDir, tansu: &Path, port: u16) -> Result<ManagedProcess, LocalError> {
    data_dir.check_broker_storage()?;
    let command = tansu_command(data_dir, tansu, port, port, false);
    spawn_broker(data_dir, command, &KafkaSettings::new(format!("127.0.0.1:{port}"))).await
}

/// Starts Tansu requiring SCRAM, behind a TLS front on `127.0.0.1:port` (Tansu 0.6 serves no TLS
/// itself); the broker listens on a loopback port of its own, which also requires SCRAM. The
/// SCRAM users are made on the first start, by a broker that requires nothing and that only
/// this process knows the port of.
pub async fn start_secured_broker(
    data_dir: &DataDir,
    tansu: &Path,
    ports: &StackPorts,
    security: &StackSecurity,
) -> Result<Served, LocalError> {
    data_dir.check_broker_storage()?;
    let port = ports.kafka;
    let inner_port = ports.free_internal_port(&[])?;
    ensure_scram_users(data_dir, tansu, inner_port, security).await?;
    let front = TlsFront::start(
        ("the Kafka broker's TLS listener", "--kafka-port"),
        ([127, 0, 0, 1], port).into(),
        ([127, 0, 0, 1], inner_port).into(),
        &security.server_tls()?,
    )
    .await?;
    let command = tansu_command(data_dir, tansu, inner_port, port, true);
    let ready = security.kafka_settings(&format!("127.0.0.1:{port}"), StackIdentity::Operator)?;
    let process = spawn_broker(data_dir, command, &ready).await?;
    Ok(Served {
        process,
        front: Some(front),
    })
}

/// Makes the SCRAM users the broker lacks, or whose password changed. The marker keeps one
/// `<user> <SHA-256 of the password>` line per user the broker was given, so a password file
/// made again (deleted, or rotated on purpose) is given to the broker at the next start.
async fn ensure_scram_users(
    data_dir: &DataDir,
    tansu: &Path,
    port: u16,
    security: &StackSecurity,
) -> Result<(), LocalError> {
    use sha2::{Digest as _, Sha256};
    let marker = data_dir.kafka_dir().join(SCRAM_USERS_MARKER);
    let made = std::fs::read_to_string(&marker).unwrap_or_default();
    let line = |user: &str, password: &str| {
        format!(
            "{user} {}",
            sealtrail_core::digest::to_hex(&Sha256::digest(password.as_bytes()))
        )
    };
    let missing: Vec<(String, &str)> = security
        .kafka_users()
        .filter(|(user, password)| !made.lines().any(|known| known == line(user, password)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let command = tansu_command(data_dir, tansu, port, port, false);
    let open = spawn_broker(data_dir, command, &KafkaSettings::new(format!("127.0.0.1:{port}"))).await?;
    let mut outcome = Ok(());
    let mut recorded: Vec<String> = made
        .lines()
        .filter(|known| {
            !missing
                .iter()
                .any(|(user, _)| known.split(' ').next() == Some(user.as_str()))
        })
        .map(str::to_owned)
        .collect();
    for (user, password) in &missing {
        // The password is an argument of this short-lived command (docs/security.md says so).
        let output = Command::new(tansu)
            .args(["user", "create", "--broker", &format!("tcp://127.0.0.1:{port}")])
            .args(["--mechanism", "scram512", user, password])
            .output()
            .await
            .map_err(LocalError::io("run", tansu));
        match output {
            Ok(output) if output.status.success() => recorded.push(line(user, password)),
            Ok(output) => {
                outcome = Err(LocalError::Credentials {
                    what: format!("the broker's SCRAM user {user}"),
                    reason: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
                });
                break;
            }
            Err(error) => {
                outcome = Err(error);
                break;
            }
        }
    }
    open.stop(Duration::from_secs(10)).await;
    // What was made is recorded even when a later user failed, so the next start makes only the rest.
    let text = recorded.join("\n") + "\n";
    crate::private_file::write_private(&marker, text.as_bytes())?;
    outcome
}

/// The administrator's settings for the engine at `url`.
pub fn admin_settings(
    url: String,
    access: &EngineAccess,
    security: Option<&StackSecurity>,
) -> Result<ClickHouseSettings, LocalError> {
    let mut settings = ClickHouseSettings::new(url);
    settings.user = Some(ADMIN_USER.to_owned());
    settings.password = Some(
        sealtrail_http::secret_file::read_secret(&access.admin_password_file, "ClickHouse administrator password")
            .map_err(|error| LocalError::Credentials {
                what: "ClickHouse's administrator".to_owned(),
                reason: error.to_string(),
            })?,
    );
    if let Some(security) = security {
        settings.trust = sealtrail_http::TrustSettings::with_ca(&security.ca.ca_file);
    }
    Ok(settings)
}

/// Starts the ClickHouse launcher (`launcher clickhouse-server ...`, a separate process) serving
/// the data directory's ClickHouse data on `http_port`, over TLS through a front when `security`
/// is given (the engine serves only plain HTTP), and waits until it answers the administrator.
pub async fn start_clickhouse(
    data_dir: &DataDir,
    launcher: &Path,
    library: &Path,
    ports: &StackPorts,
    access: &EngineAccess,
    security: Option<&StackSecurity>,
) -> Result<Served, LocalError> {
    let (http_port, tcp_port) = (ports.clickhouse_http, ports.clickhouse_tcp);
    let engine_port = if security.is_some() {
        ports.free_internal_port(&[])?
    } else {
        http_port
    };
    let mut command = Command::new(launcher);
    command
        .arg("clickhouse-server")
        .arg("--library")
        .arg(library)
        .arg("--data-dir")
        .arg(data_dir.clickhouse_dir())
        .args([
            "--http-port",
            &engine_port.to_string(),
            "--tcp-port",
            &tcp_port.to_string(),
        ])
        .arg("--config-file")
        .arg(&access.config_file)
        .arg("--admin-password-file")
        .arg(&access.admin_password_file)
        .current_dir(data_dir.clickhouse_dir());
    let front = match security {
        None => None,
        Some(security) => Some(
            TlsFront::start(
                ("ClickHouse's HTTPS listener", "--clickhouse-port"),
                ([127, 0, 0, 1], http_port).into(),
                ([127, 0, 0, 1], engine_port).into(),
                &security.server_tls()?,
            )
            .await?,
        ),
    };
    let mut clickhouse = ManagedProcess::spawn(
        "ClickHouse",
        "clickhouse",
        command,
        &data_dir.run_dir(),
        &data_dir.logs_dir(),
    )?;
    let scheme = if security.is_some() { "https" } else { "http" };
    let settings = admin_settings(format!("{scheme}://127.0.0.1:{http_port}"), access, security)?;
    tokio::select! {
        status = clickhouse.exited() => Err(clickhouse.start_failure(status)),
        ready = wait_for_clickhouse(&settings, CLICKHOUSE_READY_WITHIN) => match ready {
            Ok(()) => Ok(Served { process: clickhouse, front }),
            Err(error) => Err(not_ready(clickhouse, CLICKHOUSE_READY_WITHIN, &error).await),
        },
    }
}

async fn not_ready(process: ManagedProcess, within: Duration, reason: &dyn std::error::Error) -> LocalError {
    let what = process.what();
    let log = process.log().to_owned();
    process.stop(Duration::from_secs(10)).await;
    LocalError::NotReady {
        what,
        seconds: within.as_secs(),
        reason: reason.to_string(),
        log,
    }
}

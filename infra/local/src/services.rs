//! Starting the broker and ClickHouse as supervised children, and waiting until they serve.

use std::path::Path;
use std::time::Duration;

use sealtrail_clickhouse::{ClickHouseSettings, wait_for_clickhouse};
use sealtrail_kafka::{KafkaSettings, wait_for_broker};
use tokio::process::Command;

use crate::{DataDir, LocalError, ManagedProcess};

const BROKER_READY_WITHIN: Duration = Duration::from_secs(60);
const CLICKHOUSE_READY_WITHIN: Duration = Duration::from_secs(120);
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

/// Starts Tansu on `127.0.0.1:port` with durable SQLite storage in the data directory, and waits
/// until it answers metadata requests.
pub async fn start_broker(data_dir: &DataDir, tansu: &Path, port: u16) -> Result<ManagedProcess, LocalError> {
    data_dir.check_broker_storage()?;
    let url = format!("tcp://127.0.0.1:{port}");
    let mut command = Command::new(tansu);
    command
        .arg("broker")
        .args(["--listener-url", &url, "--advertised-listener-url", &url])
        // Relative to the working directory, which is why the broker starts in its own folder.
        .args(["--storage-engine", "sqlite://tansu.db"])
        .args(["--cluster-id", "sealtrail-local"])
        .current_dir(data_dir.kafka_dir());
    for variable in TANSU_ENV {
        command.env_remove(variable);
    }
    let mut broker = ManagedProcess::spawn(
        "the Kafka broker (Tansu)",
        "tansu",
        command,
        &data_dir.run_dir(),
        &data_dir.logs_dir(),
    )?;
    let settings = KafkaSettings::new(format!("127.0.0.1:{port}"));
    tokio::select! {
        status = broker.exited() => Err(broker.start_failure(status)),
        ready = wait_for_broker(&settings, BROKER_READY_WITHIN) => match ready {
            Ok(()) => Ok(broker),
            Err(error) => Err(not_ready(broker, BROKER_READY_WITHIN, &error).await),
        },
    }
}

/// Starts the ClickHouse launcher (`launcher clickhouse-server ...`, a separate process) serving
/// the data directory's ClickHouse data, and waits until it answers queries.
pub async fn start_clickhouse(
    data_dir: &DataDir,
    launcher: &Path,
    library: &Path,
    http_port: u16,
    tcp_port: u16,
    config_file: &Path,
) -> Result<ManagedProcess, LocalError> {
    let mut command = Command::new(launcher);
    command
        .arg("clickhouse-server")
        .arg("--library")
        .arg(library)
        .arg("--data-dir")
        .arg(data_dir.clickhouse_dir())
        .args([
            "--http-port",
            &http_port.to_string(),
            "--tcp-port",
            &tcp_port.to_string(),
        ])
        .arg("--config-file")
        .arg(config_file)
        .current_dir(data_dir.clickhouse_dir());
    let mut clickhouse = ManagedProcess::spawn(
        "ClickHouse",
        "clickhouse",
        command,
        &data_dir.run_dir(),
        &data_dir.logs_dir(),
    )?;
    let settings = ClickHouseSettings::new(format!("http://127.0.0.1:{http_port}"));
    tokio::select! {
        status = clickhouse.exited() => Err(clickhouse.start_failure(status)),
        ready = wait_for_clickhouse(&settings, CLICKHOUSE_READY_WITHIN) => match ready {
            Ok(()) => Ok(clickhouse),
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

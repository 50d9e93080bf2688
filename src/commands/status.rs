use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use sealtrail_kafka::wait_for_broker;
use sealtrail_local::{DataDir, Endpoints};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[arg(long, env = "SEALTRAIL_DATA_DIR", default_value = ".sealtrail")]
    data_dir: PathBuf,
}

/// Prints each endpoint with whether it answers; fails if any does not.
pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let path = args.data_dir.join("endpoints.env");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no stack runs on {} ({} is missing); start one with `sealtrail up`",
            args.data_dir.display(),
            path.display()
        )
    })?;
    let endpoints = Endpoints::parse(&text);
    let data_dir = DataDir::open(&args.data_dir)?;
    let supervisor = data_dir.running_supervisor()?;

    let kafka = wait_for_broker(&endpoints.kafka()?, Duration::from_secs(3)).await;
    let clickhouse: Result<String, String> = endpoints
        .clickhouse()?
        .server_client()
        .query("SELECT version()")
        .fetch_one::<String>()
        .await
        .map_err(|e| e.to_string());
    let registry_access = endpoints.registry()?;
    let mut registry_request = endpoints
        .http_client()?
        .get(format!("{}/subjects", endpoints.schema_registry_url));
    if let Some(credentials) = &registry_access.credentials {
        registry_request = registry_request.basic_auth(&credentials.user, Some(&credentials.password));
    }
    let registry = registry_request
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| e.to_string());

    println!(
        "supervisor       {}",
        supervisor.map_or("not running".to_owned(), |pid| format!("pid {pid}"))
    );
    println!(
        "KAFKA_BOOTSTRAP     {}  {}",
        endpoints.kafka_bootstrap,
        verdict(kafka.as_ref().map(|()| "ok".to_owned()).map_err(ToString::to_string))
    );
    println!(
        "SCHEMA_REGISTRY_URL {}  {}",
        endpoints.schema_registry_url,
        verdict(registry.as_ref().map(|_| "ok".to_owned()).map_err(Clone::clone))
    );
    println!(
        "CLICKHOUSE_URL      {}  {}",
        endpoints.clickhouse_url,
        verdict(
            clickhouse
                .as_ref()
                .map(|v| format!("ok, version {v}"))
                .map_err(Clone::clone)
        )
    );
    if supervisor.is_none() || kafka.is_err() || clickhouse.is_err() || registry.is_err() {
        anyhow::bail!(
            "the stack on {} is not healthy; restart it with `sealtrail up`",
            args.data_dir.display()
        );
    }
    Ok(())
}

fn verdict(result: Result<String, String>) -> String {
    match result {
        Ok(text) => text,
        Err(error) => format!("DOWN: {error}"),
    }
}

use std::net::SocketAddr;

use anyhow::Context as _;
use sealtrail_kafka::wait_for_broker;
use sealtrail_registry::{RegistryService, RegistrySettings};

use crate::settings::KafkaArgs;

#[derive(Debug, clap::Args)]
pub struct RegistryArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Address to serve the REST API on.
    #[arg(long, env = "SCHEMA_REGISTRY_LISTEN", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Topic that holds the registry's log.
    #[arg(long, env = "SCHEMA_REGISTRY_TOPIC", default_value = RegistrySettings::DEFAULT_TOPIC)]
    topic: String,
}

pub async fn run(args: RegistryArgs) -> anyhow::Result<()> {
    let kafka = args.kafka.settings();
    wait_for_broker(&kafka, args.kafka.connect_timeout()).await?;
    let mut settings = RegistrySettings::new(kafka);
    settings.topic = args.topic;
    let registry = RegistryService::start(&settings).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}; free the port or pass --listen", args.listen))?;
    tracing::info!(listen = %args.listen, "schema registry serving");
    axum::serve(listener, registry.router())
        .with_graceful_shutdown(super::up::stop_requested())
        .await
        .context("the schema registry server failed")
}

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use sealtrail_kafka::wait_for_broker;
use sealtrail_registry::{RegistryAccess, RegistryService, RegistrySettings};

use crate::settings::{KafkaArgs, ServerTlsArgs};

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
    #[command(flatten)]
    tls: ServerTlsArgs,
    /// The users allowed in, one `<user> <read|write> sha256:<hex of the password>` per line,
    /// readable by its owner only; without it the registry is open to anyone who reaches it.
    #[arg(long, env = "SCHEMA_REGISTRY_USERS_FILE")]
    users_file: Option<PathBuf>,
}

pub async fn run(args: RegistryArgs) -> anyhow::Result<()> {
    let tls = args.tls.load(None)?;
    let access = if let Some(path) = &args.users_file {
        RegistryAccess::parse(&sealtrail_http::secret_file::read_secret(path, "registry users")?)
            .with_context(|| format!("in {}", path.display()))?
    } else {
        tracing::warn!("no --users-file: the registry accepts anyone who reaches it");
        RegistryAccess::default()
    };
    let kafka = args.kafka.settings();
    wait_for_broker(&kafka, args.kafka.connect_timeout()).await?;
    let mut settings = RegistrySettings::new(kafka);
    settings.topic = args.topic;
    let registry = RegistryService::start(&settings).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}; free the port or pass --listen", args.listen))?;
    tracing::info!(listen = %args.listen, tls = tls.is_some(), "schema registry serving");
    sealtrail_http::serve::serve(
        listener,
        registry.guarded_router(access),
        tls,
        super::up::stop_requested(),
    )
    .await
    .context("the schema registry server failed")
}

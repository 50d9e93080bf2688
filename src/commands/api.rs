use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use sealtrail_api::audit::AccessRecorder;
use sealtrail_api::auth::jwt::JwtVerifier;
use sealtrail_api::rate_limit::RateLimit;
use sealtrail_api::server::{ApiConfig, router};
use sealtrail_api::webhooks::WebhookSettings;
use sealtrail_clickhouse::{apply_migrations, wait_for_clickhouse};
use sealtrail_export::{ExportQuota, ExportsConfig};

use sealtrail_core::tokenize::Tokenizer;
use sealtrail_emit::AuditEmitter;

use crate::settings::{ClickHouseArgs, ExportQueueArgs, KafkaArgs, KeyArgs, RegistryUrlArgs, TopicArgs};

#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    #[command(flatten)]
    clickhouse: ClickHouseArgs,
    /// The tokenization key is read from here, to look up tokenized values for analysts.
    #[command(flatten)]
    keys: KeyArgs,
    /// Every read is recorded as an audit event on the raw topic, through this broker.
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryUrlArgs,
    #[command(flatten)]
    topics: TopicArgs,
    #[command(flatten)]
    exports: ExportQueueArgs,
    /// Exports a tenant may have queued or running at once.
    #[arg(long, env = "EXPORT_MAX_ACTIVE", default_value_t = 2)]
    export_max_active: usize,
    /// Exports a tenant may request in any 24 hours.
    #[arg(long, env = "EXPORT_MAX_PER_DAY", default_value_t = 50)]
    export_max_per_day: usize,
    /// Address to serve on.
    #[arg(long, env = "API_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// File holding the shared secret of HS256 bearer tokens (at least 32 bytes).
    #[arg(long, env = "SEALTRAIL_JWT_HS256_SECRET_FILE")]
    jwt_hs256_secret_file: Option<PathBuf>,
    /// PEM file of the identity provider's RSA public key, for RS256 bearer tokens.
    #[arg(long, env = "SEALTRAIL_JWT_RS256_PUBLIC_KEY")]
    jwt_rs256_public_key: Option<PathBuf>,
    /// Requests per second each credential may make, on average.
    #[arg(long, env = "API_RATE_LIMIT_PER_SECOND", default_value_t = 20.0)]
    rate_limit_per_second: f64,
    /// Requests each credential may make at once, above the average.
    #[arg(long, env = "API_RATE_LIMIT_BURST", default_value_t = 40)]
    rate_limit_burst: u32,
    /// Let webhooks target loopback and private addresses (local stacks only).
    #[arg(long, env = "SEALTRAIL_WEBHOOKS_ALLOW_PRIVATE")]
    webhooks_allow_private: bool,
}

pub async fn run(args: ApiArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rate_limit_per_second > 0.0 && args.rate_limit_burst > 0,
        "--rate-limit-per-second and --rate-limit-burst must be positive"
    );
    let read = |path: &Option<PathBuf>| -> anyhow::Result<Option<Vec<u8>>> {
        path.as_ref()
            .map(|path| std::fs::read(path).with_context(|| format!("cannot read {}", path.display())))
            .transpose()
    };
    let hs256 = read(&args.jwt_hs256_secret_file)?;
    let rs256 = read(&args.jwt_rs256_public_key)?;
    let jwt = JwtVerifier::new(hs256.as_deref().map(<[u8]>::trim_ascii), rs256.as_deref())?;
    let tokenization_key = args.keys.tokenization_key();
    // The tokenization master key also derives the webhook secrets, under its own tag.
    let master_key = if tokenization_key.exists() {
        Some(sealtrail_runtime::keys::load_tokenization_key(&tokenization_key)?)
    } else {
        tracing::warn!(path = %tokenization_key.display(), "no tokenization key: tokenized lookups and webhooks are refused");
        None
    };
    let tokenizer = master_key
        .as_deref()
        .map(Tokenizer::new)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let kafka = args.kafka.settings();
    sealtrail_kafka::wait_for_broker(&kafka, args.kafka.connect_timeout()).await?;
    let emitter = AuditEmitter::connect(&kafka, &args.registry.schema_registry_url, &args.topics.raw_topic)
        .await
        .context("the API records every read in the audit trail, and cannot publish to it")?;
    let trusted_keys = match sealtrail_runtime::keys::load_trusted(&args.keys.trusted_keys()) {
        Ok(keys) => keys,
        Err(error) => {
            tracing::warn!(%error, "no trusted signing keys: /v1/integrity/keys answers an empty list");
            Vec::new()
        }
    };
    let clickhouse = args.clickhouse.settings();
    wait_for_clickhouse(&clickhouse, Duration::from_secs(30)).await?;
    apply_migrations(&clickhouse).await?;
    let app = router(ApiConfig {
        // Served on the API's own port, next to its /healthz and /readyz.
        metrics: sealtrail_runtime::Metrics::new("api"),
        clickhouse,
        jwt,
        tokenizer,
        recorder: AccessRecorder::new(emitter),
        rate_limit: RateLimit {
            per_second: args.rate_limit_per_second,
            burst: args.rate_limit_burst,
        },
        trusted_keys,
        webhooks: WebhookSettings {
            key: master_key,
            allow_private_targets: args.webhooks_allow_private,
            ..WebhookSettings::default()
        },
        exports: Some(ExportsConfig {
            kafka,
            topics: args.exports.topics(),
            artifacts_dir: args.exports.artifacts_dir.clone(),
            quota: ExportQuota {
                max_active: args.export_max_active.max(1),
                max_per_day: args.export_max_per_day.max(1),
            },
        }),
    })
    .await
    .context("cannot start the API")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}; is another API running there?", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, "API serving");
    sealtrail_api::serve::serve(listener, app, sealtrail_runtime::termination()).await?;
    Ok(())
}

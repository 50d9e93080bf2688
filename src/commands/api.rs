use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use sealtrail_api::audit::AccessRecorder;
use sealtrail_api::auth::client_certs::ClientIdentities;
use sealtrail_api::auth::jwt::{ClaimNames, JwtVerifier};
use sealtrail_api::auth::oidc::{OidcSettings, OidcVerifier};
use sealtrail_api::rate_limit::RateLimit;
use sealtrail_api::server::{ApiConfig, ServedRoutes, router};
use sealtrail_api::webhooks::WebhookSettings;
use sealtrail_clickhouse::{apply_migrations, wait_for_clickhouse};
use sealtrail_export::{ExportQuota, ExportsConfig};

use sealtrail_core::tokenize::Tokenizer;
use sealtrail_emit::AuditEmitter;

use crate::settings::{ClickHouseArgs, ExportQueueArgs, KafkaArgs, KeyArgs, RegistryUrlArgs, ServerTlsArgs, TopicArgs};

#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    #[command(flatten)]
    clickhouse: ClickHouseArgs,
    /// The seal processor's largest raw record: the ingest edge refuses larger events (as
    /// `oversized`) rather than accept what the seal would send to the DLQ. Keep it equal to the
    /// seal's.
    #[arg(long, env = "SEAL_MAX_RECORD_BYTES", default_value_t = 64 * 1024)]
    max_record_bytes: usize,
    /// Events per second and burst each tenant may send to the ingest edge, `PER_SECOND:BURST`;
    /// beyond, 429 with `Retry-After`.
    #[arg(long, env = "INGEST_QUOTA", default_value = "2000:10000", value_parser = sealtrail_api::ingest::quota::parse_rate)]
    ingest_quota: RateLimit,
    /// A tenant's own ingest quota, `TENANT=PER_SECOND:BURST`; repeatable (comma-separated in
    /// the environment).
    #[arg(long = "ingest-tenant-quota", env = "INGEST_TENANT_QUOTAS", value_delimiter = ',', value_parser = sealtrail_api::ingest::quota::parse_tenant_rate)]
    ingest_tenant_quotas: Vec<(String, RateLimit)>,
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
    #[command(flatten)]
    tls: ServerTlsArgs,
    /// CA (PEM) of machine callers' client certificates: the API asks for one, and a caller whose
    /// certificate chains to it and is named in --tls-client-identities needs no bearer credential.
    #[arg(long, env = "TLS_CLIENT_CA_FILE", requires = "tls_client_identities")]
    tls_client_ca: Option<PathBuf>,
    /// The tenant and roles of each client certificate's common name: one
    /// `<common name> <tenant> <role>[,<role>...]` per line.
    #[arg(long, env = "TLS_CLIENT_IDENTITIES_FILE", requires = "tls_client_ca")]
    tls_client_identities: Option<PathBuf>,
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
    /// A CA (PEM) the API's outgoing HTTPS (webhook receivers, the OIDC provider) may chain to,
    /// besides the system's roots.
    #[arg(long, env = "SEALTRAIL_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// An OpenID Connect issuer whose tokens are accepted (its keys found by discovery);
    /// requires --oidc-audience.
    #[arg(long, env = "SEALTRAIL_OIDC_ISSUER", requires = "oidc_audience")]
    oidc_issuer: Option<String>,
    /// The audience (`aud`) the issuer's tokens must be for: this API's client id there.
    #[arg(long, env = "SEALTRAIL_OIDC_AUDIENCE")]
    oidc_audience: Option<String>,
    /// The issuer's JWKS URL, when it publishes no discovery document.
    #[arg(long, env = "SEALTRAIL_OIDC_JWKS_URL")]
    oidc_jwks_url: Option<String>,
    /// The claim (or dotted path, such as `realm_access.roles`) naming the tenant in a JWT.
    #[arg(long, env = "SEALTRAIL_JWT_TENANT_CLAIM", default_value = "tenant")]
    jwt_tenant_claim: String,
    /// The claim (or dotted path) listing the sealtrail roles in a JWT: an array, or one
    /// space-separated string.
    #[arg(long, env = "SEALTRAIL_JWT_ROLES_CLAIM", default_value = "roles")]
    jwt_roles_claim: String,
    /// The claim (or dotted path) listing a platform producer's other tenants in a JWT (an
    /// array; read only from tokens with the `producer` role). Not read unless given.
    #[arg(long, env = "SEALTRAIL_JWT_TENANTS_CLAIM")]
    jwt_tenants_claim: Option<String>,
}

pub async fn run(args: ApiArgs, routes: ServedRoutes) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rate_limit_per_second > 0.0 && args.rate_limit_burst > 0,
        "--rate-limit-per-second and --rate-limit-burst must be positive"
    );
    // Before anything connects: a bad certificate or key is a misconfiguration to report at once.
    let tls = args.tls.load(args.tls_client_ca.as_deref())?;
    let outbound_trust = sealtrail_http::TrustSettings {
        ca_file: args.ca_file.clone(),
    };
    outbound_trust.client_config()?;
    let (jwt, client_identities) = callers(&args, &outbound_trust).await?;
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
    let emitter = AuditEmitter::connect(&kafka, &args.registry.connection()?, &args.topics.raw_topic)
        .await
        .context("the API records every read in the audit trail, and cannot publish to it")?;
    let trusted_keys = match sealtrail_runtime::keys::load_trusted(&args.keys.trusted_keys()) {
        Ok(keys) => keys,
        Err(error) => {
            tracing::warn!(%error, "no trusted signing keys: /v1/integrity/keys answers an empty list");
            Vec::new()
        }
    };
    let clickhouse = args.clickhouse.settings()?;
    wait_for_clickhouse(&clickhouse, Duration::from_secs(30)).await?;
    apply_migrations(&clickhouse).await?;
    let app = router(ApiConfig {
        // Served on the API's own port, next to its /healthz and /readyz.
        metrics: sealtrail_runtime::Metrics::new(if routes == ServedRoutes::Ingest {
            "ingest"
        } else {
            "api"
        }),
        ingest: sealtrail_api::ingest::IngestSettings {
            max_record_bytes: args.max_record_bytes,
            quotas: sealtrail_api::ingest::quota::QuotaSettings {
                default: args.ingest_quota,
                tenants: args.ingest_tenant_quotas.iter().cloned().collect(),
            },
            ..sealtrail_api::ingest::IngestSettings::default()
        },
        client_identities,
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
            trust: outbound_trust,
            ..WebhookSettings::default()
        },
        // The ingest edge serves no exports.
        exports: (routes == ServedRoutes::All).then(|| ExportsConfig {
            kafka,
            topics: args.exports.topics(),
            artifacts_dir: args.exports.artifacts_dir.clone(),
            quota: ExportQuota {
                max_active: args.export_max_active.max(1),
                max_per_day: args.export_max_per_day.max(1),
            },
        }),
        routes,
    })
    .await
    .context("cannot start the API")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}; is another API running there?", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, tls = tls.is_some(), "API serving");
    sealtrail_api::serve::serve(listener, app, tls, sealtrail_runtime::termination()).await?;
    Ok(())
}

/// Who may call: the JWT verifier (configured keys, an OIDC issuer) and the machine callers of
/// client certificates.
async fn callers(
    args: &ApiArgs,
    outbound_trust: &sealtrail_http::TrustSettings,
) -> anyhow::Result<(JwtVerifier, ClientIdentities)> {
    // The HS256 secret signs tokens: refused when others may read its file.
    let hs256 = args
        .jwt_hs256_secret_file
        .as_ref()
        .map(|path| sealtrail_http::secret_file::read_secret(path, "JWT HS256 secret").map(String::into_bytes))
        .transpose()?;
    let rs256 = args
        .jwt_rs256_public_key
        .as_ref()
        .map(|path| std::fs::read(path).with_context(|| format!("cannot read {}", path.display())))
        .transpose()?;
    let client_identities = match &args.tls_client_identities {
        None => ClientIdentities::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            ClientIdentities::parse(&text).with_context(|| format!("in {}", path.display()))?
        }
    };
    let mut jwt =
        JwtVerifier::new(hs256.as_deref().map(<[u8]>::trim_ascii), rs256.as_deref())?.with_claims(ClaimNames {
            tenant: args.jwt_tenant_claim.clone(),
            roles: args.jwt_roles_claim.clone(),
            platform_tenants: args.jwt_tenants_claim.clone(),
        });
    if let (Some(issuer), Some(audience)) = (&args.oidc_issuer, &args.oidc_audience) {
        let oidc = OidcVerifier::connect(OidcSettings {
            issuer: issuer.clone(),
            audience: audience.clone(),
            jwks_url: args.oidc_jwks_url.clone(),
            trust: outbound_trust.clone(),
        })
        .await?;
        tracing::info!(?oidc, "accepting the OIDC issuer's tokens");
        jwt = jwt.with_oidc(oidc);
    }
    Ok((jwt, client_identities))
}

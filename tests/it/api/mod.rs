//! The query API against the real ClickHouse, served in process on a free port.

mod client_certs;
mod console_endpoints;
mod events;
pub(crate) mod export;
mod export_jobs;
mod holds;
mod ingest;
mod ingest_grpc;
mod isolation;
pub(crate) mod oidc;
mod openapi;
mod query;
mod refusals;
mod retention;

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use sealtrail_api::audit::AccessRecorder;
use sealtrail_api::auth::Role;
use sealtrail_api::auth::api_keys::KeyStore;
use sealtrail_api::auth::jwt::JwtVerifier;
use sealtrail_api::rate_limit::RateLimit;
use sealtrail_api::server::{ApiConfig, router};
use sealtrail_api::webhooks::WebhookSettings;
use sealtrail_clickhouse::{ClickHouseSettings, apply_migrations};
use sealtrail_core::tokenize::Tokenizer;
use sealtrail_emit::AuditEmitter;
use sealtrail_export::{ExportQuota, ExportTopics, ExportsConfig};
use serde_json::{Value, json};

use crate::harness::{scoped_database, shared, unique};

pub const BRAVO_MARKER: &str = "zz-bravo-only";
/// The tokenization master key the test API shares with the test sealer.
pub const TOKENIZATION_KEY: [u8; 32] = [5; 32];
/// The seed of the checkpoint signing key the tests seal with, and the API trusts.
pub const SIGNER_SEED: [u8; 32] = [9; 32];
pub const HS256_SECRET: &[u8] = b"a test secret of at least thirty-two bytes";
pub const RS256_PRIVATE: &[u8] = include_bytes!("../fixtures/jwt-test-rs256.key");
pub const RS256_PUBLIC: &[u8] = include_bytes!("../fixtures/jwt-test-rs256.pub");
pub const OTHER_PRIVATE: &[u8] = include_bytes!("../fixtures/jwt-test-other.key");

pub struct Api {
    pub url: String,
    /// The export topics this API queues on, and where artifacts go.
    pub exports: ExportsConfig,
    _artifacts: tempfile::TempDir,
    pub http: reqwest::Client,
    pub keys: KeyStore,
    pub settings: ClickHouseSettings,
    pub alfa: String,
    pub bravo: String,
}

impl Api {
    /// An API over a fresh database holding ten plain rows per tenant.
    pub async fn start() -> Self {
        let api = Self::empty().await;
        seed(&api.settings, &api.alfa, &api.bravo).await;
        api
    }

    /// An API over a fresh, empty database.
    pub async fn empty() -> Self {
        // Generous: the suites below send many requests with one key.
        Self::empty_limited(RateLimit {
            per_second: 1000.0,
            burst: 1000,
        })
        .await
    }

    /// An API over a fresh, empty database, with this rate limit per credential.
    pub async fn empty_limited(rate_limit: RateLimit) -> Self {
        Self::configured(rate_limit, ExportQuota::default()).await
    }

    /// An API over a fresh, empty database, with these limits.
    pub async fn configured(rate_limit: RateLimit, quota: ExportQuota) -> Self {
        let mut settings: ClickHouseSettings = shared().clickhouse();
        settings.database = scoped_database();
        Self::over(settings, rate_limit, quota, true, None).await
    }

    /// An API over a fresh database (ten rows per tenant) that refuses webhooks to this machine
    /// and private networks, as a deployed API does.
    pub async fn strict_webhooks() -> Self {
        let mut settings: ClickHouseSettings = shared().clickhouse();
        settings.database = scoped_database();
        let api = Self::over(settings, RateLimit::default(), ExportQuota::default(), false, None).await;
        seed(&api.settings, &api.alfa, &api.bravo).await;
        api
    }

    /// An API over the shared pipeline's own database, where it seals what the API records.
    pub async fn on_pipeline() -> Self {
        let rate_limit = RateLimit {
            per_second: 1000.0,
            burst: 1000,
        };
        Self::over(shared().clickhouse(), rate_limit, ExportQuota::default(), true, None).await
    }

    /// An API over a fresh, empty database, served over `tls`, taking the machine callers
    /// `identities` names by their client certificates.
    pub async fn with_client_certificates(
        tls: sealtrail_http::ServerTls,
        identities: sealtrail_api::auth::client_certs::ClientIdentities,
    ) -> Self {
        let mut settings: ClickHouseSettings = shared().clickhouse();
        settings.database = scoped_database();
        Self::over(
            settings,
            RateLimit::default(),
            ExportQuota::default(),
            true,
            Some((tls, identities)),
        )
        .await
    }

    /// An API over a fresh, empty database, with these ingest limits.
    pub async fn with_ingest(ingest: sealtrail_api::ingest::IngestSettings) -> Self {
        let mut settings: ClickHouseSettings = shared().clickhouse();
        settings.database = scoped_database();
        let rate_limit = RateLimit {
            per_second: 1000.0,
            burst: 1000,
        };
        Self::over_with(settings, rate_limit, ExportQuota::default(), true, None, ingest, None).await
    }

    /// `allow_private_webhooks`: the test webhook receivers listen on this machine.
    async fn over(
        settings: ClickHouseSettings,
        rate_limit: RateLimit,
        quota: ExportQuota,
        allow_private_webhooks: bool,
        mtls: Option<(
            sealtrail_http::ServerTls,
            sealtrail_api::auth::client_certs::ClientIdentities,
        )>,
    ) -> Self {
        let ingest = sealtrail_api::ingest::IngestSettings::default();
        Self::over_with(settings, rate_limit, quota, allow_private_webhooks, mtls, ingest, None).await
    }

    /// An API over a fresh, empty database that takes the bearer tokens `jwt` accepts (an OIDC
    /// provider's).
    pub async fn with_jwt(jwt: JwtVerifier) -> Self {
        let mut settings: ClickHouseSettings = shared().clickhouse();
        settings.database = scoped_database();
        let rate_limit = RateLimit {
            per_second: 1000.0,
            burst: 1000,
        };
        let ingest = sealtrail_api::ingest::IngestSettings::default();
        Self::over_with(
            settings,
            rate_limit,
            ExportQuota::default(),
            true,
            None,
            ingest,
            Some(jwt),
        )
        .await
    }

    async fn over_with(
        settings: ClickHouseSettings,
        rate_limit: RateLimit,
        quota: ExportQuota,
        allow_private_webhooks: bool,
        mtls: Option<(
            sealtrail_http::ServerTls,
            sealtrail_api::auth::client_certs::ClientIdentities,
        )>,
        ingest: sealtrail_api::ingest::IngestSettings,
        jwt: Option<JwtVerifier>,
    ) -> Self {
        let (tls, client_identities) = mtls.map_or(
            (None, sealtrail_api::auth::client_certs::ClientIdentities::default()),
            |(tls, identities)| (Some(tls), identities),
        );
        let stack = shared();
        apply_migrations(&settings).await.expect("migrations");
        let alfa = unique("alfa");
        let bravo = unique("bravo");
        // Platform producers' tenants come from the `tenants` claim here (off by default).
        let jwt = jwt.unwrap_or_else(|| {
            JwtVerifier::new(Some(HS256_SECRET), Some(RS256_PUBLIC))
                .expect("JWT keys")
                .with_claims(sealtrail_api::auth::jwt::ClaimNames {
                    platform_tenants: Some("tenants".to_owned()),
                    ..sealtrail_api::auth::jwt::ClaimNames::default()
                })
        });
        let artifacts = tempfile::tempdir().expect("artifacts dir");
        let exports = ExportsConfig {
            kafka: stack.kafka(),
            topics: ExportTopics {
                jobs: unique("export-jobs"),
                status: unique("export-status"),
            },
            artifacts_dir: artifacts.path().to_owned(),
            quota,
        };
        let app = router(ApiConfig {
            metrics: sealtrail_runtime::Metrics::new("api"),
            routes: sealtrail_api::server::ServedRoutes::All,
            ingest,
            client_identities,
            clickhouse: settings.clone(),
            jwt,
            tokenizer: Some(Tokenizer::new(&TOKENIZATION_KEY).expect("tokenizer")),
            recorder: AccessRecorder::new(
                AuditEmitter::connect(&stack.kafka(), &stack.registry(), &raw_topic())
                    .await
                    .expect("emitter"),
            ),
            rate_limit,
            trusted_keys: vec![sealtrail_core::checkpoint::TrustedKey::new(
                sealtrail_core::checkpoint::CheckpointSigner::from_seed(&SIGNER_SEED)
                    .expect("signer")
                    .public_key()
                    .to_vec(),
            )],
            webhooks: WebhookSettings {
                key: Some(TOKENIZATION_KEY.to_vec()),
                attempts: 4,
                first_backoff: std::time::Duration::from_millis(50),
                allow_private_targets: allow_private_webhooks,
                trust: stack.endpoints.trust(),
            },
            exports: Some(exports.clone()),
        })
        .await
        .expect("router");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr().expect("address"));
        tokio::spawn(sealtrail_api::serve::serve(listener, app, tls, std::future::pending()));
        Self {
            url,
            exports,
            _artifacts: artifacts,
            http: reqwest::Client::new(),
            keys: KeyStore::new(settings.client()),
            settings,
            alfa,
            bravo,
        }
    }

    /// A ClickHouse client logged in as `reader`, bound to tenant alfa.
    pub fn reader_of_alfa(&self, reader: sealtrail_clickhouse::access::TenantReader) -> clickhouse::Client {
        self.settings
            .tenant_client(reader, &self.alfa)
            .expect("the stack has a readers' password")
    }

    pub async fn key(&self, tenant: &str, role: Role) -> String {
        self.keys.create(tenant, role, "test").await.expect("key").key
    }

    pub async fn query(&self, credential: Option<&str>, body: Value) -> (u16, Value) {
        let mut request = self.http.post(format!("{}/v1/query", self.url)).json(&body);
        if let Some(credential) = credential {
            request = request.bearer_auth(credential);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

/// Ten events and a checkpoint for each tenant; bravo's carry the marker everywhere they can.
async fn seed(settings: &ClickHouseSettings, alfa: &str, bravo: &str) {
    let client = settings.client();
    for (tenant, marker) in [(alfa, "alfa-data"), (bravo, BRAVO_MARKER)] {
        client
            .query(
                "INSERT INTO events (tenant_id, seq, event_id, occurred_at, action, actor_id, resource_type, resource_id, reason_text, hash)
                 SELECT {tenant:String}, number + 1, concat({marker:String}, '-', toString(number)), now64(3) - number,
                        if(number % 2 = 0, 'user.login', 'data.exported'), concat({marker:String}, '-actor'), 'account',
                        {marker:String}, {marker:String}, {marker:String}
                 FROM numbers(10)",
            )
            .param("tenant", tenant)
            .param("marker", marker)
            .execute()
            .await
            .expect("seed events");
        // Stored entries carry the marker too: no tenant-bound reader may reach this table.
        client
            .query(
                "INSERT INTO event_entries (tenant_id, seq, occurred_at, action, actor_id, resource_id, hash, entry)
                 SELECT {tenant:String}, number + 1, now64(3) - number, 'user.login', concat({marker:String}, '-actor'),
                        {marker:String}, {marker:String}, {marker:String}
                 FROM numbers(10)",
            )
            .param("tenant", tenant)
            .param("marker", marker)
            .execute()
            .await
            .expect("seed entries");
    }
    client
        .query(
            "INSERT INTO checkpoints (sealed_partition, number, tenant_heads, entry_count, tenant_count)
             VALUES (0, 1, [({alfa:String}, 10, 'alfa-head'), ({bravo:String}, 10, {marker:String})], 20, 2)",
        )
        .param("alfa", alfa)
        .param("bravo", bravo)
        .param("marker", BRAVO_MARKER)
        .execute()
        .await
        .expect("seed checkpoints");
}

/// The raw topic of the shared stack's pipeline.
pub fn raw_topic() -> String {
    shared()
        .endpoints
        .extra
        .iter()
        .find(|(name, _)| name == "RAW_TOPIC")
        .map(|(_, topic)| topic.clone())
        .expect("up writes RAW_TOPIC")
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

pub fn token(algorithm: Algorithm, key: &EncodingKey, tenant: &str, roles: &[&str], expires: u64) -> String {
    let claims = json!({"sub": "someone@idp", "tenant": tenant, "roles": roles, "exp": expires});
    encode(&Header::new(algorithm), &claims, key).expect("token")
}

pub fn hs256(tenant: &str, roles: &[&str], expires: u64) -> String {
    token(
        Algorithm::HS256,
        &EncodingKey::from_secret(HS256_SECRET),
        tenant,
        roles,
        expires,
    )
}

pub fn rs256(private: &[u8], tenant: &str, roles: &[&str], expires: u64) -> String {
    let key = EncodingKey::from_rsa_pem(private).expect("RSA key");
    token(Algorithm::RS256, &key, tenant, roles, expires)
}

/// Rows of a ClickHouse `JSON` answer.
pub fn rows(body: &Value) -> &Vec<Value> {
    body["data"].as_array().unwrap_or_else(|| panic!("no data in {body}"))
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
pub struct AccessRecord {
    pub action: String,
    pub actor_id: String,
    pub outcome: String,
    pub reason_code: Option<String>,
    pub attributes: Vec<(String, String)>,
    pub seq: u64,
    pub hash: String,
}

/// The records of one request once the shared pipeline has sealed them into ClickHouse (the
/// pipeline is asynchronous; the deadline only bounds a broken run).
pub async fn sealed_records(tenant: &str, request_id: &str) -> Vec<AccessRecord> {
    let client = shared().clickhouse().client();
    let started = std::time::Instant::now();
    loop {
        let records = client
            .query("SELECT ?fields FROM events WHERE tenant_id = {tenant:String} AND correlation_id = {request:String}")
            .param("tenant", tenant)
            .param("request", request_id)
            .fetch_all::<AccessRecord>()
            .await
            .expect("query the pipeline's events");
        if !records.is_empty() || started.elapsed() > std::time::Duration::from_secs(300) {
            return records;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

//! The API server: shared state, the router, request ids and authentication of every request.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use sealtrail_clickhouse::ClickHouseSettings;
use sealtrail_clickhouse::access::TenantReader;
use sealtrail_core::checkpoint::TrustedKey;
use sealtrail_core::policy::Label;
use sealtrail_core::tokenize::Tokenizer;

use crate::audit::AccessRecorder;
use crate::auth::Caller;
use crate::auth::api_keys::{KeyStore, looks_like_key};
use crate::auth::client_certs::ClientIdentities;
use crate::auth::jwt::JwtVerifier;
use crate::error::ApiError;
use crate::rate_limit::{RateLimit, RateLimiter};
use crate::routes;
use crate::webhooks::{WebhookSettings, Webhooks};
use sealtrail_export::{ExportBoard, ExportStatus, ExportsConfig, JobState};
use sealtrail_http::ClientCertificate;
use sealtrail_retention::PolicyStore;
use sealtrail_retention::holds::HoldStore;

/// What the API needs to serve.
#[derive(Debug)]
pub struct ApiConfig {
    pub clickhouse: ClickHouseSettings,
    pub jwt: JwtVerifier,
    /// The pipeline's tokenization key, for looking up tokenized values; without it such lookups
    /// are refused.
    pub tokenizer: Option<Tokenizer>,
    /// Where every read is recorded.
    pub recorder: AccessRecorder,
    pub rate_limit: RateLimit,
    pub webhooks: WebhookSettings,
    /// The public keys that sign checkpoints, served to verifiers.
    pub trusted_keys: Vec<TrustedKey>,
    /// Export jobs; without them the export routes answer 503.
    pub exports: Option<ExportsConfig>,
    /// Request durations by route and status, served on `/metrics`.
    pub metrics: sealtrail_runtime::Metrics,
    /// Machine callers identified by a client certificate.
    pub client_identities: ClientIdentities,
    /// The ingest edge's limits.
    pub ingest: crate::ingest::IngestSettings,
    /// Everything, or the ingest edge alone.
    pub routes: ServedRoutes,
}

/// Which routes a process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServedRoutes {
    #[default]
    All,
    /// `sealtrail ingest`: `POST /v1/ingest/events`, the `OpenAPI` document, health and metrics;
    /// writes scale apart from reads.
    Ingest,
}

#[derive(Debug)]
pub struct AppState {
    pub clickhouse: ClickHouseSettings,
    /// One client (one connection pool) for every request, bound to sealtrail's database.
    pub client: clickhouse::Client,
    pub keys: KeyStore,
    pub jwt: JwtVerifier,
    client_identities: ClientIdentities,
    tokenizer: Option<Mutex<Tokenizer>>,
    pub recorder: AccessRecorder,
    pub holds: HoldStore,
    pub policies: PolicyStore,
    pub webhooks: Webhooks,
    pub trusted_keys: Vec<TrustedKey>,
    pub exports: Option<ExportBoard>,
    pub ingest: crate::ingest::Ingest,
    /// The live tails open per credential (`GET /v1/events/stream`).
    pub live_tails: routes::events_live::OpenTails,
    rate_limiter: RateLimiter,
    /// Failed credentials, per client address and per API key id.
    failed_credentials: RateLimiter,
}

impl AppState {
    /// A ClickHouse client logged in as `reader` and bound to `tenant`: whatever SQL it sends, it
    /// reads only that tenant's rows of the events and tenant checkpoints.
    pub fn tenant_reader(&self, reader: TenantReader, tenant: &str) -> Result<clickhouse::Client, ApiError> {
        self.clickhouse
            .tenant_client(reader, tenant)
            .ok_or_else(|| ApiError::unavailable("the API has no password for ClickHouse's tenant-bound readers"))
    }

    /// The tenant's token of a raw value, as the seal processor would have made it.
    pub fn token(&self, tenant: &str, label: Label, value: &str) -> Result<String, ApiError> {
        let tokenizer = self.tokenizer.as_ref().ok_or_else(|| {
            ApiError::bad_request(
                "match_value",
                "looking up tokenized values needs the tokenization key; start the API with SEALTRAIL_KEY_DIR",
            )
        })?;
        let mut tokenizer = tokenizer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(tokenizer.token(tenant, label, value))
    }
}

pub type SharedState = Arc<AppState>;

/// Why the API cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("ClickHouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("the export queue: {0}")]
    Exports(#[from] sealtrail_kafka::KafkaError),
    #[error(
        "no password for the tenant-bound ClickHouse readers: set CLICKHOUSE_READER_PASSWORD (`sealtrail up` writes it to endpoints.env; docs/security.md)"
    )]
    NoReaderPassword,
}

/// Follows the export states and builds the router.
pub async fn router(config: ApiConfig) -> Result<Router, StartError> {
    // The readers run analysts' SQL and export filters: the ingest edge serves neither.
    if config.routes == ServedRoutes::All && config.clickhouse.reader_password.is_none() {
        return Err(StartError::NoReaderPassword);
    }
    let client = config.clickhouse.client();
    let webhooks = Webhooks::new(client.clone(), config.webhooks);
    let exports = match config.exports {
        Some(exports) => {
            let notifier = webhooks.clone();
            let runtime = tokio::runtime::Handle::current();
            Some(
                ExportBoard::start(exports, move |status| {
                    let notifier = notifier.clone();
                    runtime.spawn(async move { notify_finished(&notifier, &status).await });
                })
                .await?,
            )
        }
        None => None,
    };
    let state = Arc::new(AppState {
        keys: match config.routes {
            ServedRoutes::All => KeyStore::new(client.clone()),
            ServedRoutes::Ingest => {
                KeyStore::new(client.clone()).remembering(crate::auth::api_keys::EDGE_KEY_CACHE_TTL)
            }
        },
        holds: HoldStore::new(client.clone()),
        policies: PolicyStore::new(client.clone()),
        webhooks,
        exports,
        ingest: crate::ingest::Ingest::new(&config.ingest, config.metrics.clone()),
        live_tails: routes::events_live::OpenTails::default(),
        client,
        trusted_keys: config.trusted_keys,
        clickhouse: config.clickhouse,
        jwt: config.jwt,
        client_identities: config.client_identities,
        tokenizer: config.tokenizer.map(Mutex::new),
        recorder: config.recorder,
        rate_limiter: RateLimiter::new(config.rate_limit),
        failed_credentials: RateLimiter::new(FAILED_CREDENTIALS),
    });
    let metrics = config.metrics.clone();
    let exposition = config.metrics;
    let mut app = Router::new().route(
        "/v1/ingest/events",
        post(routes::ingest::ingest_events).layer(axum::extract::DefaultBodyLimit::max(crate::ingest::BODY_LIMIT)),
    );
    app = app.merge(crate::ingest::grpc::routes(&state));
    if config.routes == ServedRoutes::All {
        // The console may call the OIDC provider's token endpoint, and nothing else off-origin.
        let token_origin = state
            .jwt
            .oidc()
            .and_then(crate::auth::oidc::OidcVerifier::browser_sign_in)
            .and_then(|sign_in| url::Url::parse(&sign_in.token_endpoint).ok())
            .map(|url| url.origin().ascii_serialization());
        app = app
            .merge(reading_routes())
            .route("/v1/console/config", get(routes::me::console_config))
            .merge(crate::console::routes(token_origin.as_slice()));
    }
    Ok(app
        .route("/openapi.json", get(crate::openapi::document))
        .route("/healthz", get(routes::health::live))
        .route("/readyz", get(routes::health::ready))
        // The same registry and handler as every processor's.
        .merge(exposition.exposition_router())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::refusals::audit_refusals,
        ))
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            observe(metrics.clone(), request, next)
        }))
        .layer(middleware::from_fn(request_id))
        .with_state(state))
}

/// Everything but the ingest edge: reads, exports, holds, retention, webhooks.
fn reading_routes() -> Router<SharedState> {
    Router::new()
        .route("/v1/query", post(routes::query::run))
        .route("/v1/me", get(routes::me::get))
        .route("/v1/events", get(routes::events::list))
        .route("/v1/events/stream", get(routes::events_live::stream))
        .route("/v1/events/per-day", get(routes::events_live::per_day))
        .route("/v1/events/{event_id}", get(routes::events::one))
        .route("/v1/integrity/proof", get(routes::proof::inclusion))
        .route("/v1/integrity/keys", get(routes::keys::list))
        .route(
            "/v1/integrity/verifications",
            post(routes::verifications::start).get(routes::verifications::list),
        )
        .route("/v1/integrity/verifications/{job_id}", get(routes::verifications::get))
        .route("/v1/exports", post(routes::exports::request).get(routes::exports::list))
        .route("/v1/exports/{export_id}", get(routes::exports::get))
        .route("/v1/exports/{export_id}/artifact", get(routes::exports::artifact))
        .route("/v1/legal-holds", post(routes::holds::apply).get(routes::holds::list))
        .route("/v1/retention-policies", get(routes::retention::list))
        .route(
            "/v1/retention-policies/{category}",
            put(routes::retention::set).delete(routes::retention::remove),
        )
        .route("/v1/legal-holds/{hold_id}/release", post(routes::holds::release))
        .route(
            "/v1/webhooks",
            post(routes::webhooks::register).get(routes::webhooks::list),
        )
        .route("/v1/webhooks/{webhook_id}", delete(routes::webhooks::remove))
        .route(
            "/v1/security/alert-rules",
            get(routes::alert_rules::get).put(routes::alert_rules::set),
        )
}

/// `export.completed` (or `export.failed`) to the tenant's webhooks.
async fn notify_finished(webhooks: &Webhooks, status: &ExportStatus) {
    let event_type = if status.state == JobState::Done {
        "export.completed"
    } else {
        "export.failed"
    };
    let data = serde_json::json!({
        "export_id": status.export_id,
        "state": status.state,
        "result": status.result,
        "error": status.error,
        "artifact": format!("/v1/exports/{}/artifact", status.export_id),
    });
    webhooks.notify(&status.tenant_id, event_type, data).await;
}

/// How many failed credentials an address (or an API key id) may send: 20 at once, then one every
/// 3 seconds, which makes guessing hopeless without locking out a person who mistyped.
const FAILED_CREDENTIALS: RateLimit = RateLimit {
    per_second: 1.0 / 3.0,
    burst: 20,
};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Records each request's duration under its route template (never the concrete path, which
/// carries ids).
async fn observe(metrics: sealtrail_runtime::Metrics, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    // A fixed set: a client-chosen method must not create series.
    let method = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "other",
    };
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    if !matches!(route.as_str(), "/metrics" | "/healthz" | "/readyz") {
        let seconds = started.elapsed().as_secs_f64();
        metrics.http_request(&route, method, response.status().as_u16(), seconds);
        metrics.events_in(1);
    }
    response
}

/// The request's span: a server span named after its route, child of the caller's trace when it
/// sent a `traceparent`.
fn request_span(request: &Request, id: &str) -> tracing::Span {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let (traceparent, tracestate) = (header("traceparent"), header("tracestate"));
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", axum::extract::MatchedPath::as_str)
        .to_owned();
    let method = request.method().clone();
    // The caller's traceparent, if any, makes this request part of its trace.
    sealtrail_telemetry::trace_context::request_span(traceparent.as_deref(), tracestate.as_deref(), || {
        tracing::info_span!(
            "request",
            otel.kind = "server",
            otel.name = %format!("{method} {route}"),
            request_id = %id,
            method = %method,
            path = %request.uri().path(),
            caller = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        )
    })
}

/// Echoes the caller's `X-Request-Id` (when it is a sane one) or a new one, in the response and in
/// every log line of the request.
async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .map_or_else(|| ulid::Ulid::new().to_string(), str::to_owned);
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    request.headers_mut().insert(REQUEST_ID, value.clone());
    let span = request_span(&request, &id);
    let mut response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    span.in_scope(|| tracing::info!(status = response.status().as_u16(), "request served"));
    response.headers_mut().insert(REQUEST_ID, value);
    response
}

impl FromRequestParts<SharedState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        // Failed credentials are limited per client address, and per API key: an address (or a
        // key id) that has failed too often is refused before its credential is even checked.
        let address =
            crate::serve::peer(&parts.extensions).map_or_else(|| "unknown".to_owned(), |peer| peer.ip().to_string());
        let header = parts.headers.get(header::AUTHORIZATION);
        let credential = header
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|credential| !credential.is_empty());
        let key_id = credential
            .filter(|c| looks_like_key(c))
            .and_then(|key| key.split('_').nth(1));
        let failure_buckets = [Some(format!("address:{address}")), key_id.map(|id| format!("key:{id}"))];
        for bucket in failure_buckets.iter().flatten() {
            state
                .failed_credentials
                .has_room(bucket)
                .map_err(ApiError::too_many_requests)?;
        }
        let certificate = parts.extensions.get::<ClientCertificate>();
        let authenticated = authenticate(state, header.is_some(), credential, certificate).await;
        let caller = match authenticated {
            Ok(caller) => caller,
            Err(error) if error.status == axum::http::StatusCode::UNAUTHORIZED => {
                for bucket in failure_buckets.iter().flatten() {
                    // Counted; the answer is the 401 either way.
                    let _ = state.failed_credentials.check(bucket);
                }
                tracing::info!(%address, "a request with a failed credential");
                return Err(error);
            }
            Err(error) => return Err(error),
        };
        state
            .rate_limiter
            .check(&caller.subject)
            .map_err(ApiError::too_many_requests)?;
        tracing::Span::current().record("caller", caller.log_name().as_str());
        if let Some(slot) = parts.extensions.get::<crate::refusals::CallerSlot>() {
            slot.fill(&caller);
        }
        Ok(caller)
    }
}

async fn authenticate(
    state: &SharedState,
    has_header: bool,
    credential: Option<&str>,
    certificate: Option<&ClientCertificate>,
) -> Result<Caller, ApiError> {
    if !has_header {
        // A machine caller's client certificate (checked against the client CA at the handshake)
        // stands in for a bearer credential, when its name is mapped.
        if let Some(certificate) = certificate {
            return state.client_identities.caller(certificate).ok_or_else(|| {
                ApiError::unauthorized(format!(
                    "the client certificate `{}` is not mapped to a tenant; send `Authorization: Bearer <API key or JWT>`",
                    certificate.common_name
                ))
            });
        }
        return Err(ApiError::unauthorized("send `Authorization: Bearer <API key or JWT>`"));
    }
    let credential = credential
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <API key or JWT>`"))?;
    if looks_like_key(credential) {
        state
            .keys
            .authenticate(credential)
            .await
            .map_err(|e| ApiError::unavailable(format!("cannot check the API key: {e}")))?
            .ok_or_else(|| ApiError::unauthorized("the API key is unknown, revoked, expired or malformed"))
    } else {
        state.jwt.verify(credential).await.map_err(ApiError::unauthorized)
    }
}

//! The ingest edge over gRPC (`schemas/ingest.proto`): a unary batch call and a client-streaming
//! call, served on the API's port through its router (HTTP/2), with server reflection and the
//! standard health service. Same credentials, checks, quotas and answers as REST.

mod convert;

pub use convert::message;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts as _, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use sealtrail_http::ClientCertificate;
use sealtrail_ingest::{EventResult, IngestAnswer, MAX_EVENTS_PER_REQUEST, Refusal, RequestContext};
use tonic::server::NamedService;
use tonic::{Status, Streaming};

use super::{KeysSeen, WRITERS, publish, request_context, reserve, tenant};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::server::SharedState;

/// The generated messages and service (`build.rs`).
#[allow(clippy::pedantic, clippy::all, missing_debug_implementations, unused_qualifications)]
pub mod pb {
    tonic::include_proto!("sealtrail.ingest.v1");

    /// For server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("ingest_descriptor");
}

/// The largest message: a batch of 1,000 events of 4 KiB. Kept below REST's body limit because a
/// decoded message takes more memory than its bytes (an empty repeated element is 2 bytes on the
/// wire and tens in memory).
pub const MESSAGE_LIMIT: usize = 4 << 20;

/// Events one stream may carry: the answer lists each, and repeated idempotency keys are found
/// across the whole stream, so both are held until it ends.
pub const MAX_EVENTS_PER_STREAM: usize = 100_000;

/// The gRPC name of the service, for health checks.
pub const SERVICE: &str = <pb::ingest_server::IngestServer<IngestService> as NamedService>::NAME;

/// The `sealtrail.ingest.v1.Ingest` service.
#[derive(Debug, Clone)]
pub struct IngestService {
    state: SharedState,
}

/// An API refusal as a gRPC status: the code that means the same, the message with the API's
/// error code in front, and `retry-after` when the caller should wait.
fn status(error: ApiError) -> Status {
    let ApiError {
        status: http,
        code: api_code,
        mut message,
        retry_after,
        ..
    } = error;
    let code = match http {
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            tonic::Code::InvalidArgument
        }
        StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
        StatusCode::FORBIDDEN => tonic::Code::PermissionDenied,
        StatusCode::TOO_MANY_REQUESTS => tonic::Code::ResourceExhausted,
        StatusCode::SERVICE_UNAVAILABLE => tonic::Code::Unavailable,
        _ => tonic::Code::Internal,
    };
    message.insert_str(0, &format!("{api_code}: "));
    let mut status = Status::new(code, message);
    if let Some(seconds) = retry_after
        && let Ok(value) = seconds.to_string().parse()
    {
        status.metadata_mut().insert("retry-after", value);
    }
    status
}

/// One call's caller and request context, from its metadata.
fn context<T>(request: &tonic::Request<T>) -> Result<(Caller, RequestContext), Status> {
    let caller = request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("send `authorization: Bearer <API key or JWT>`"))?;
    caller.require(WRITERS).map_err(status)?;
    let headers = request.metadata().clone().into_headers();
    let tenant = tenant(&headers, &caller).map_err(status)?;
    let context = request_context(&headers, tenant).map_err(status)?;
    Ok((caller, context))
}

/// What a call presented, kept so a stream authenticates again before each batch: a key revoked,
/// or a token expired, since the stream began stops it there.
#[derive(Debug, Clone)]
struct Presented {
    authorization: Option<HeaderValue>,
    certificate: Option<ClientCertificate>,
    peer: Option<ConnectInfo<SocketAddr>>,
}

impl Presented {
    fn of(parts: &Parts) -> Self {
        Self {
            authorization: parts.headers.get(AUTHORIZATION).cloned(),
            certificate: parts.extensions.get::<ClientCertificate>().cloned(),
            peer: parts.extensions.get::<ConnectInfo<SocketAddr>>().copied(),
        }
    }

    /// The caller now, checked as a new request is (failure and rate limits included), still a
    /// producer that writes for `tenant`.
    async fn writer_for(&self, state: &SharedState, tenant: &str) -> Result<Caller, ApiError> {
        let (mut parts, ()) = axum::http::Request::new(()).into_parts();
        if let Some(value) = &self.authorization {
            parts.headers.insert(AUTHORIZATION, value.clone());
        }
        if let Some(certificate) = &self.certificate {
            parts.extensions.insert(certificate.clone());
        }
        if let Some(peer) = self.peer {
            parts.extensions.insert(peer);
        }
        let caller = Caller::from_request_parts(&mut parts, state).await?;
        caller.require(WRITERS)?;
        if !caller.writes_for(tenant) {
            return Err(ApiError::forbidden(
                "x-tenant-id names a tenant this credential may no longer write for",
            ));
        }
        Ok(caller)
    }
}

impl IngestService {
    /// Publishes one batch of a call, its events numbered from `first_index`. An event larger
    /// than the seal's largest record is refused before it is converted.
    async fn batch(
        &self,
        caller: &Caller,
        request: &RequestContext,
        batch: pb::EventBatch,
        first_index: usize,
        keys_seen: &mut KeysSeen,
    ) -> Result<Vec<EventResult>, ApiError> {
        if batch.events.is_empty() {
            return Err(ApiError::bad_request("events", "the batch holds no event"));
        }
        if batch.events.len() > MAX_EVENTS_PER_REQUEST {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "too_many_events",
                format!(
                    "a batch holds {} events; at most {MAX_EVENTS_PER_REQUEST}",
                    batch.events.len()
                ),
            ));
        }
        let ingest = &self.state.ingest;
        // Each event's size once: for the in-flight budget and for the per-event limit.
        let sizes: Vec<usize> = batch.events.iter().map(prost::Message::encoded_len).collect();
        let _in_flight = reserve(ingest, sizes.iter().sum())?;
        let limit = ingest.limits.max_record_bytes;
        let items = batch
            .events
            .into_iter()
            .zip(sizes)
            .map(|(event, size)| {
                if size > limit {
                    return Err(Refusal {
                        reason: "oversized",
                        detail: format!("the event is {size} bytes; at most {limit}"),
                    });
                }
                convert::event(event)
            })
            .collect();
        publish(&self.state, caller, request, items, first_index, keys_seen).await
    }
}

/// A batch of a stream refused as a whole (quota, in-flight budget, credential, limits): each of
/// its events is answered, by index, with the refusal, so the caller knows exactly what to send
/// again.
fn refused_batch(first_index: usize, events: usize, error: &ApiError) -> Vec<EventResult> {
    (first_index..first_index + events)
        .map(|index| {
            let refusal = Refusal {
                reason: error.code,
                detail: error.message.clone(),
            };
            EventResult::rejected(index, None, refusal)
        })
        .collect()
}

#[tonic::async_trait]
impl pb::ingest_server::Ingest for IngestService {
    async fn send_events(
        &self,
        request: tonic::Request<pb::EventBatch>,
    ) -> Result<tonic::Response<pb::IngestAnswer>, Status> {
        let (caller, mut context) = context(&request)?;
        let batch = request.into_inner();
        context.batch_size = batch.events.len();
        let results = self
            .batch(&caller, &context, batch, 0, &mut KeysSeen::new())
            .await
            .map_err(status)?;
        Ok(tonic::Response::new(convert::answer(IngestAnswer::new(results))))
    }

    async fn stream_events(
        &self,
        request: tonic::Request<Streaming<pb::EventBatch>>,
    ) -> Result<tonic::Response<pb::IngestAnswer>, Status> {
        let (_, mut context) = context(&request)?;
        let presented = request
            .extensions()
            .get::<Presented>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("send `authorization: Bearer <API key or JWT>`"))?;
        // Events of a stream get `<key>/<event_id>` from x-idempotency-key, as in a batch.
        context.batch_size = usize::MAX;
        let mut stream = request.into_inner();
        let mut results = Vec::new();
        let mut keys_seen = KeysSeen::new();
        while let Some(batch) = stream.message().await? {
            let first_index = results.len();
            let events = batch.events.len();
            let published = if first_index + events > MAX_EVENTS_PER_STREAM {
                Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "stream_too_long",
                    format!("a stream carries at most {MAX_EVENTS_PER_STREAM} events: end it and start another"),
                ))
            } else {
                match presented.writer_for(&self.state, &context.tenant).await {
                    Ok(caller) => self.batch(&caller, &context, batch, first_index, &mut keys_seen).await,
                    Err(error) => Err(error),
                }
            };
            match published {
                Ok(answered) => results.extend(answered),
                Err(error) => {
                    // What was answered stays answered; this batch is refused whole, and the
                    // stream ends here with everything the caller needs to resume.
                    tracing::info!(tenant = %context.tenant, code = error.code, "an ingest stream ended by a refusal");
                    results.extend(refused_batch(first_index, events, &error));
                    break;
                }
            }
        }
        Ok(tonic::Response::new(convert::answer(IngestAnswer::new(results))))
    }
}

/// Authenticates a call like a REST request (API key, JWT or client certificate; the same
/// failure limits) and hands the caller, and what it presented, to the service; a refusal is a
/// gRPC status.
async fn authenticate(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    match Caller::from_request_parts(&mut parts, &state).await {
        Ok(caller) => {
            let presented = Presented::of(&parts);
            parts.extensions.insert(caller);
            parts.extensions.insert(presented);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(error) => status(error).into_http::<axum::body::Body>().into_response(),
    }
}

/// The gRPC routes: the ingest service (authenticated), health and reflection (open, as load
/// balancers and tools expect).
pub fn routes(state: &SharedState) -> Router<SharedState> {
    let service = pb::ingest_server::IngestServer::new(IngestService { state: state.clone() })
        .max_decoding_message_size(MESSAGE_LIMIT);
    let (reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(async move {
        reporter
            .set_service_status(SERVICE, tonic_health::ServingStatus::Serving)
            .await;
        reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
    });
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let mut router = Router::new().route_service(
        &format!("/{SERVICE}/{{*method}}"),
        tower::ServiceBuilder::new()
            .layer(middleware::from_fn_with_state(state.clone(), authenticate))
            .service(service),
    );
    router = with_service(router, health);
    // v1alpha too: grpcurl and most tools still ask it first.
    match (reflection().build_v1(), reflection().build_v1alpha()) {
        (Ok(v1), Ok(v1alpha)) => router = with_service(with_service(router, v1), v1alpha),
        (Err(error), _) | (_, Err(error)) => {
            tracing::error!(%error, "gRPC server reflection is not served: the descriptors do not load");
        }
    }
    router
}

fn with_service<S>(router: Router<SharedState>, service: S) -> Router<SharedState>
where
    S: tower::Service<Request, Error = std::convert::Infallible> + NamedService + Clone + Send + Sync + 'static,
    S::Response: axum::response::IntoResponse,
    S::Future: Send + 'static,
{
    router.route_service(&format!("/{}/{{*method}}", S::NAME), service)
}

//! The ingest edge over gRPC (`schemas/ingest.proto`): a unary batch call and a client-streaming
//! call, served on the API's port through its router (HTTP/2), with server reflection and the
//! standard health service. Same credentials, checks, quotas and answers as REST.

mod convert;

use std::collections::HashMap;

use axum::Router;
use axum::extract::{FromRequestParts as _, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use sealtrail_ingest::{MAX_EVENTS_PER_REQUEST, RequestContext};
use tonic::server::NamedService;
use tonic::{Status, Streaming};

use super::{BODY_LIMIT, WRITERS, answer, publish, request_context, reserve, tenant};
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

fn invalid(code: &'static str, message: String) -> Status {
    status(ApiError::new(StatusCode::BAD_REQUEST, code, message))
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

impl IngestService {
    /// Publishes one batch of a call, its events numbered from `first_index`.
    async fn batch(
        &self,
        caller: &Caller,
        request: &RequestContext,
        batch: pb::EventBatch,
        first_index: usize,
        keys_seen: &mut HashMap<String, usize>,
    ) -> Result<Vec<sealtrail_ingest::EventResult>, Status> {
        if batch.events.len() > MAX_EVENTS_PER_REQUEST {
            return Err(invalid(
                "too_many_events",
                format!(
                    "a batch holds {} events; at most {MAX_EVENTS_PER_REQUEST}",
                    batch.events.len()
                ),
            ));
        }
        let ingest = &self.state.ingest;
        let _in_flight = reserve(ingest, prost::Message::encoded_len(&batch)).map_err(status)?;
        let items = batch.events.into_iter().map(convert::event).collect();
        publish(&self.state, caller, request, items, first_index, keys_seen)
            .await
            .map_err(status)
    }
}

#[tonic::async_trait]
impl pb::ingest_server::Ingest for IngestService {
    async fn send_events(
        &self,
        request: tonic::Request<pb::EventBatch>,
    ) -> Result<tonic::Response<pb::IngestAnswer>, Status> {
        let (caller, mut context) = context(&request)?;
        let batch = request.into_inner();
        if batch.events.is_empty() {
            return Err(invalid("empty_batch", "the batch holds no event".to_owned()));
        }
        context.batch_size = batch.events.len();
        let results = self.batch(&caller, &context, batch, 0, &mut HashMap::new()).await?;
        Ok(tonic::Response::new(convert::answer(answer(results))))
    }

    async fn stream_events(
        &self,
        request: tonic::Request<Streaming<pb::EventBatch>>,
    ) -> Result<tonic::Response<pb::IngestAnswer>, Status> {
        let (caller, mut context) = context(&request)?;
        // Events of a stream get `<key>/<event_id>` from x-idempotency-key, as in a batch.
        context.batch_size = usize::MAX;
        let mut stream = request.into_inner();
        let mut results = Vec::new();
        let mut keys_seen = HashMap::new();
        while let Some(batch) = stream.message().await? {
            if results.len() + batch.events.len() > MAX_EVENTS_PER_STREAM {
                // What was published is in Kafka; the caller learns which from a new stream's
                // answers only, so refuse before publishing any of this batch.
                return Err(invalid(
                    "stream_too_long",
                    format!(
                        "a stream carries at most {MAX_EVENTS_PER_STREAM} events; {} were accepted or rejected before this batch: end the stream and start another",
                        results.len()
                    ),
                ));
            }
            let first_index = results.len();
            let batch_results = self
                .batch(&caller, &context, batch, first_index, &mut keys_seen)
                .await?;
            results.extend(batch_results);
        }
        Ok(tonic::Response::new(convert::answer(answer(results))))
    }
}

/// Authenticates a call like a REST request (API key, JWT or client certificate; the same
/// failure limits) and hands the caller to the service; a refusal is a gRPC status.
async fn authenticate(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    match Caller::from_request_parts(&mut parts, &state).await {
        Ok(caller) => {
            parts.extensions.insert(caller);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(error) => status(error).into_http::<axum::body::Body>().into_response(),
    }
}

/// The gRPC routes: the ingest service (authenticated), health and reflection (open, as load
/// balancers and tools expect).
pub fn routes(state: &SharedState) -> Router<SharedState> {
    let service = pb::ingest_server::IngestServer::new(IngestService { state: state.clone() })
        .max_decoding_message_size(BODY_LIMIT);
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

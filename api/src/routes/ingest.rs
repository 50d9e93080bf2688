//! `POST /v1/ingest/events`: audit events from producers without a Kafka client (the edge's
//! checks and producing are in `crate::ingest`).
//!
//! The body is one event, a JSON array of events, or NDJSON, in the Avro contract's shape
//! (`sealtrail_ingest::EventJson`). 200 when every event was accepted, 207 otherwise, with each
//! event's answer.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use sealtrail_ingest::{BodyError, BodyFormat, IngestAnswer, Refusal, parse_body};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::ingest::{BODY_LIMIT, WRITERS, header_text, publish, request_context, reserve, tenant};
use crate::server::SharedState;

fn format(headers: &HeaderMap) -> Result<BodyFormat, ApiError> {
    let content_type = header_text(headers, header::CONTENT_TYPE.as_str())?.unwrap_or("application/json");
    BodyFormat::of(content_type).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send application/json (an event or an array of events) or application/x-ndjson",
        )
    })
}

#[utoipa::path(
    post,
    path = "/v1/ingest/events",
    operation_id = "ingest_events",
    tag = "ingest",
    request_body(
        content = Vec<sealtrail_ingest::EventJson>,
        description = "One event, an array of events (application/json), or one event per line (application/x-ndjson); at most 1,000 events and 8 MiB"
    ),
    params(
        ("X-Tenant-Id" = String, Header, description = "The tenant of every event; must be the credential's"),
        ("X-Idempotency-Key" = Option<String>, Header, description = "Makes retries recognisable: an event without its own idempotency_key gets this key (with /<event_id> in a batch)"),
        ("traceparent" = Option<String>, Header, description = "W3C trace context, carried into the events that name no trace and into their Kafka headers"),
    ),
    responses(
        (status = 200, description = "Every event was acknowledged by Kafka", body = IngestAnswer),
        (status = 207, description = "Some events were rejected (each with its reason); the others were acknowledged", body = IngestAnswer),
        (status = 400, description = "A malformed body or header", body = ErrorBody),
        (status = 403, description = "Not a producer credential, or X-Tenant-Id names another tenant", body = ErrorBody),
        (status = 413, description = "More than 1,000 events or 8 MiB", body = ErrorBody),
        (status = 415, description = "Neither JSON nor NDJSON", body = ErrorBody),
        (status = 429, description = "The tenant is over its ingest quota; retry after Retry-After", body = ErrorBody),
        (status = 503, description = "The edge is at its in-flight limit while Kafka catches up; retry after Retry-After", body = ErrorBody),
    )
)]
/// Publishes audit events and answers, per event, once Kafka has acknowledged them.
pub async fn ingest_events(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<IngestAnswer>), ApiError> {
    caller.require(WRITERS)?;
    let tenant = tenant(&headers, &caller)?;
    let format = format(&headers)?;
    let mut request = request_context(&headers, tenant)?;
    let body = body.map_err(|rejection| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body could not be read whole ({rejection}); at most {BODY_LIMIT} bytes per request"),
        )
    })?;
    let ingest = &state.ingest;
    let _in_flight = reserve(ingest, body.len())?;
    // An event's JSON may be larger than its Avro record, but not by much more than this.
    let items = parse_body(&body, format, ingest.max_event_json_bytes()).map_err(|error| match error {
        BodyError::TooMany(_) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_many_events", error.to_string()),
        BodyError::NotJson(_) | BodyError::Empty => ApiError::bad_request("body", error.to_string()),
    })?;
    request.batch_size = items.len();
    let items = items
        .into_iter()
        .map(|item| item.map_err(|error| Refusal::invalid_json(&error.0)))
        .collect();
    let results = publish(&state, &caller, &request, items, 0, &mut HashMap::new()).await?;
    let answer = IngestAnswer::new(results);
    let status = if answer.rejected == 0 {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    Ok((status, Json(answer)))
}

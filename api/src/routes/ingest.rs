//! `POST /v1/ingest/events`: audit events from producers without a Kafka client.
//!
//! The body is one event, a JSON array of events, or NDJSON, in the Avro contract's shape
//! (`sealtrail_ingest::EventJson`). Each event is checked with the seal processor's own rules,
//! encoded in the Confluent wire format with the registered contract (the bytes a Kafka producer
//! would send), and produced keyed by tenant with `acks=all` and idempotence. The answer comes
//! only once Kafka has acknowledged: per event, accepted with its partition and offset, or
//! rejected with the DLQ's reason code. 200 when all were accepted, 207 otherwise; never a
//! silent drop. Only the `producer` role writes here, and only for its own tenant.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use sealtrail_core::validate::Limits;
use sealtrail_emit::acknowledged;
use sealtrail_ingest::{
    BodyError, BodyFormat, EventResult, IngestAnswer, Refusal, RequestContext, TraceParent, parse_body, prepare,
};

use crate::auth::{Caller, Role};
use crate::error::{ApiError, ErrorBody};
use crate::server::SharedState;

/// The largest request body: a full batch of large events fits.
pub const BODY_LIMIT: usize = 8 << 20;
const WRITERS: &[Role] = &[Role::Producer];
const MAX_IDEMPOTENCY_KEY: usize = 200;

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// The request's `X-Tenant-Id`, which must be the credential's tenant.
fn tenant(headers: &HeaderMap, caller: &Caller) -> Result<String, ApiError> {
    let tenant = header_text(headers, "x-tenant-id")
        .ok_or_else(|| ApiError::bad_request("X-Tenant-Id", "name the tenant the events belong to in X-Tenant-Id"))?;
    if tenant != caller.tenant {
        return Err(ApiError::forbidden(
            "X-Tenant-Id names a tenant this credential may not write for",
        ));
    }
    Ok(tenant.to_owned())
}

fn request_context(headers: &HeaderMap, tenant: String, batch_size: usize) -> Result<RequestContext, ApiError> {
    let idempotency_key = header_text(headers, "x-idempotency-key").map(str::to_owned);
    if idempotency_key
        .as_ref()
        .is_some_and(|key| key.len() > MAX_IDEMPOTENCY_KEY || key.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request(
            "X-Idempotency-Key",
            format!("X-Idempotency-Key must be at most {MAX_IDEMPOTENCY_KEY} printable characters"),
        ));
    }
    let trace = match header_text(headers, "traceparent") {
        None => None,
        Some(value) => Some(TraceParent::parse(value).ok_or_else(|| {
            ApiError::bad_request(
                "traceparent",
                "traceparent is not a W3C trace context (00-<32 hex>-<16 hex>-<2 hex>)",
            )
        })?),
    };
    Ok(RequestContext {
        tenant,
        idempotency_key,
        trace,
        batch_size,
    })
}

fn format(headers: &HeaderMap) -> Result<BodyFormat, ApiError> {
    let content_type = header_text(headers, header::CONTENT_TYPE.as_str()).unwrap_or("application/json");
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
        ("X-Idempotency-Key" = Option<String>, Header, description = "Makes retries recognisable: an event without its own idempotency_key gets this key (with /<index> in a batch)"),
        ("traceparent" = Option<String>, Header, description = "W3C trace context, carried into the events that name no trace and into their Kafka headers"),
    ),
    responses(
        (status = 200, description = "Every event was acknowledged by Kafka", body = IngestAnswer),
        (status = 207, description = "Some events were rejected (each with its reason); the others were acknowledged", body = IngestAnswer),
        (status = 400, description = "A malformed body or header", body = ErrorBody),
        (status = 403, description = "Not a producer credential, or X-Tenant-Id names another tenant", body = ErrorBody),
        (status = 413, description = "More than 1,000 events or 8 MiB", body = ErrorBody),
        (status = 415, description = "Neither JSON nor NDJSON", body = ErrorBody),
    )
)]
/// Publishes audit events and answers, per event, once Kafka has acknowledged them.
pub async fn ingest_events(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<IngestAnswer>), ApiError> {
    caller.require(WRITERS)?;
    let tenant = tenant(&headers, &caller)?;
    let format = format(&headers)?;
    let items = parse_body(&body, format).map_err(|error| match error {
        BodyError::TooMany(_) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_many_events", error.to_string()),
        BodyError::NotJson(_) | BodyError::Empty => ApiError::bad_request("body", error.to_string()),
    })?;
    let request = request_context(&headers, tenant, items.len())?;
    let limits = Limits::default();
    let now_ms = sealtrail_clickhouse::unix_ms(time::OffsetDateTime::now_utc());
    let emitter = state.recorder.emitter();
    let mut results = Vec::with_capacity(items.len());
    let mut in_flight = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let event_id = item.as_ref().ok().map(|json| json.event_id.clone());
        let event = match item {
            Ok(json) => prepare(json, index, &request, now_ms, &limits),
            Err(error) => Err(Refusal::invalid_json(&error.0)),
        };
        let event = match event {
            Ok(event) => event,
            Err(refusal) => {
                results.push(EventResult::rejected(index, event_id, refusal));
                continue;
            }
        };
        let payload = emitter.encode(&event);
        if payload.len() > limits.max_record_bytes {
            let refusal = Refusal {
                reason: "oversized",
                detail: format!(
                    "the encoded event is {} bytes; at most {}",
                    payload.len(),
                    limits.max_record_bytes
                ),
            };
            results.push(EventResult::rejected(index, event_id, refusal));
            continue;
        }
        let mut kafka_headers: Vec<(&str, &str)> = Vec::new();
        if let Some(key) = &event.idempotency_key {
            kafka_headers.push(("idempotency-key", key));
        }
        if let Some(trace) = &request.trace {
            kafka_headers.push(("traceparent", &trace.header));
        }
        match emitter.enqueue_with_headers(Some(request.tenant.as_bytes()), &payload, &kafka_headers) {
            Ok(delivery) => in_flight.push((index, event.event_id, delivery)),
            Err(error) => results.push(EventResult::rejected(index, event_id, not_acknowledged(&error))),
        }
    }
    for (index, event_id, delivery) in in_flight {
        results.push(match acknowledged(delivery).await {
            Ok((partition, offset)) => EventResult::accepted(index, event_id, partition, offset),
            Err(error) => EventResult::rejected(index, Some(event_id), not_acknowledged(&error)),
        });
    }
    results.sort_by_key(|result| result.index);
    let answer = IngestAnswer::new(results);
    tracing::info!(
        tenant = %request.tenant,
        caller = %caller.log_name(),
        accepted = answer.accepted,
        rejected = answer.rejected,
        "ingested"
    );
    let status = if answer.rejected == 0 {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    Ok((status, Json(answer)))
}

/// Kafka did not take the event: safe to send again (with its idempotency key, a retry of an
/// event that was stored after all is recognised by the seal processor).
fn not_acknowledged(error: &sealtrail_emit::EmitError) -> Refusal {
    tracing::warn!(%error, "an ingested event was not acknowledged by Kafka");
    Refusal {
        reason: "not_acknowledged",
        detail: "Kafka did not acknowledge the event; send it again".to_owned(),
    }
}

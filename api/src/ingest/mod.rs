//! The ingest edge, for producers without a Kafka client: the state and checks that REST
//! (`POST /v1/ingest/events`, in `routes::ingest`) and gRPC ([`grpc`]) share.
//!
//! Each event is checked with the seal processor's own rules, encoded in the Confluent wire format
//! with the registered contract (the bytes a Kafka producer would send), and produced keyed by
//! tenant with `acks=all` and idempotence. The answer comes only once Kafka has acknowledged: per
//! event, accepted with its partition and offset, or rejected with the DLQ's reason code; never a
//! silent drop. Only the `producer` role writes, and only for its own tenant.

pub mod grpc;
pub mod quota;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use sealtrail_core::event::AuditEvent;
use sealtrail_core::validate::Limits;
use sealtrail_emit::{Enqueue, acknowledged};
use sealtrail_ingest::{EventJson, EventResult, Refusal, RequestContext, TraceParent, prepare};
use sealtrail_runtime::Metrics;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::server::SharedState;
use quota::{OverQuota, QuotaSettings, TenantQuotas};

/// The largest request body (and gRPC message): a full batch of large events fits.
pub const BODY_LIMIT: usize = 8 << 20;
/// How long an event waits for room in the producer's queue before it is answered
/// `not_acknowledged`.
const QUEUE_WAIT: Duration = Duration::from_secs(2);
/// The seal processor checks an event's age when it seals it, which may be a while after the
/// edge accepted it: the edge refuses events this much younger than the seal's limit already.
const AGE_MARGIN_MS: i64 = 24 * 60 * 60 * 1000;

/// The ingest edge's limits.
#[derive(Debug)]
pub struct IngestSettings {
    /// The seal processor's largest raw record (`SEAL_MAX_RECORD_BYTES`): the edge must refuse
    /// what the seal would send to the DLQ.
    pub max_record_bytes: usize,
    /// Request bytes being worked on at once, across every request; beyond, 503 with
    /// `Retry-After` rather than unbounded memory while Kafka is slow.
    pub max_in_flight_bytes: usize,
    /// Events per second and burst, per tenant.
    pub quotas: QuotaSettings,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            max_record_bytes: Limits::default().max_record_bytes,
            max_in_flight_bytes: 64 << 20,
            quotas: QuotaSettings::default(),
        }
    }
}

/// The edge's state: its limits and the budget of bytes in flight.
#[derive(Debug)]
pub struct Ingest {
    limits: Limits,
    in_flight: Semaphore,
    quotas: TenantQuotas,
    metrics: Metrics,
}

impl Ingest {
    pub fn new(settings: &IngestSettings, metrics: Metrics) -> Self {
        let defaults = Limits::default();
        Self {
            limits: Limits {
                max_record_bytes: settings.max_record_bytes,
                max_age_ms: defaults.max_age_ms - AGE_MARGIN_MS,
                ..defaults
            },
            in_flight: Semaphore::new(settings.max_in_flight_bytes.min(Semaphore::MAX_PERMITS)),
            quotas: TenantQuotas::new(settings.quotas.clone()),
            metrics,
        }
    }
}
pub(crate) const WRITERS: &[Role] = &[Role::Producer];
const MAX_IDEMPOTENCY_KEY: usize = 200;

/// A header's text; one that is present but not visible ASCII is refused, never taken as absent
/// (an idempotency key dropped that way would let a retry be sealed twice).
pub(crate) fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ApiError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request(name, format!("the {name} header must be visible ASCII")))?
        .trim();
    Ok((!text.is_empty()).then_some(text))
}

/// The request's `X-Tenant-Id`, which must be the credential's tenant.
pub(crate) fn tenant(headers: &HeaderMap, caller: &Caller) -> Result<String, ApiError> {
    let tenant = header_text(headers, "x-tenant-id")?
        .ok_or_else(|| ApiError::bad_request("X-Tenant-Id", "name the tenant the events belong to in X-Tenant-Id"))?;
    if !caller.writes_for(tenant) {
        return Err(ApiError::forbidden(
            "X-Tenant-Id names a tenant this credential may not write for",
        ));
    }
    Ok(tenant.to_owned())
}

pub(crate) fn request_context(headers: &HeaderMap, tenant: String) -> Result<RequestContext, ApiError> {
    let idempotency_key = header_text(headers, "x-idempotency-key")?.map(str::to_owned);
    if idempotency_key
        .as_ref()
        .is_some_and(|key| key.len() > MAX_IDEMPOTENCY_KEY || key.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request(
            "X-Idempotency-Key",
            format!("X-Idempotency-Key must be at most {MAX_IDEMPOTENCY_KEY} printable characters"),
        ));
    }
    let trace = match header_text(headers, "traceparent")? {
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
        batch_size: 0,
    })
}

/// The idempotency keys of a request (or a whole gRPC stream) so far, by digest (a key may be
/// long; a digest is 32 bytes), with the index of the event that had each.
pub(crate) type KeysSeen = HashMap<sealtrail_core::digest::Digest, usize>;

/// Reserves `bytes` of the in-flight budget for a request, or answers 503 with `Retry-After`.
pub(crate) fn reserve(ingest: &Ingest, bytes: usize) -> Result<SemaphorePermit<'_>, ApiError> {
    let permits = u32::try_from(bytes).unwrap_or(u32::MAX);
    ingest.in_flight.try_acquire_many(permits).map_err(|_| ApiError {
        retry_after: Some(1),
        ..ApiError::unavailable("the ingest edge is at its limit of bytes in flight while Kafka catches up; retry")
    })
}

/// Publishes a request's events, numbered from `first_index` (`keys_seen` spans the whole
/// request, or a whole gRPC stream): the tenant's quota is taken for all
/// of them, each is checked and produced, and the answer comes once Kafka acknowledged every
/// accepted one. REST and gRPC both end here.
pub(crate) async fn publish(
    state: &SharedState,
    caller: &Caller,
    request: &RequestContext,
    items: Vec<Result<EventJson, Refusal>>,
    first_index: usize,
    keys_seen: &mut KeysSeen,
) -> Result<Vec<EventResult>, ApiError> {
    let ingest = &state.ingest;
    take_quota(ingest, &request.tenant, items.len())?;
    let now_ms = sealtrail_clickhouse::unix_ms(time::OffsetDateTime::now_utc());
    let mut results = Vec::with_capacity(items.len());
    let mut in_flight = Vec::new();
    let producer = caller.log_name();
    for (offset, item) in items.into_iter().enumerate() {
        let index = first_index + offset;
        let event_id = item.as_ref().ok().map(|json| json.event_id.clone());
        let prepared = item
            .and_then(|json| prepare(json, request, now_ms, &ingest.limits))
            .and_then(|event| once_per_request(event, index, keys_seen));
        let outcome = match prepared {
            Ok(event) => send(state, request, &producer, &event)
                .await
                .map(|delivery| (event.event_id, delivery)),
            Err(refusal) => Err(refusal),
        };
        match outcome {
            Ok((event_id, delivery)) => in_flight.push((index, event_id, delivery, Instant::now())),
            Err(refusal) => results.push(EventResult::rejected(index, event_id, refusal)),
        }
    }
    for (index, event_id, delivery, queued) in in_flight {
        results.push(match acknowledged(delivery).await {
            Ok((partition, offset)) => {
                ingest.metrics.produce_ack(queued.elapsed().as_secs_f64());
                EventResult::accepted(index, event_id, partition, offset)
            }
            Err(error) => EventResult::rejected(index, Some(event_id), not_acknowledged(&error.to_string())),
        });
    }
    results.sort_by_key(|result| result.index);
    for result in &results {
        if let Some(reason) = &result.reason {
            ingest.metrics.rejected(reason);
        }
    }
    let accepted = results.iter().filter(|result| result.reason.is_none()).count();
    ingest.metrics.events_out(accepted as u64);
    tracing::info!(
        tenant = %request.tenant,
        caller = %producer,
        accepted,
        rejected = results.len() - accepted,
        "ingested"
    );
    Ok(results)
}

impl Ingest {
    /// The largest JSON text of one event: it may be larger than its Avro record, but not by much
    /// more than this.
    pub(crate) fn max_event_json_bytes(&self) -> usize {
        self.limits.max_record_bytes * 4
    }
}

/// Takes the request's events from its tenant's quota, or answers 429 (413 for a request that
/// can never fit).
fn take_quota(ingest: &Ingest, tenant: &str, events: usize) -> Result<(), ApiError> {
    let count = u32::try_from(events).unwrap_or(u32::MAX);
    ingest.quotas.take(tenant, count).map_err(|over| {
        ingest.metrics.throttled(tenant, u64::from(count));
        match over {
            OverQuota::Wait(wait) => {
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                ApiError {
                    retry_after: Some(seconds.max(1)),
                    ..ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "quota_exceeded",
                        format!("tenant {tenant} is over its ingest quota; retry in {} s", seconds.max(1)),
                    )
                }
            }
            OverQuota::LargerThanBurst(burst) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "batch_over_quota",
                format!("the request holds {events} events, more than tenant {tenant}'s burst of {burst}; send smaller batches"),
            ),
        }
    })
}

/// Refuses a second event of the request with the same idempotency key: the seal processor
/// would take it for a retry of the first and send it to the DLQ.
fn once_per_request(event: AuditEvent, index: usize, seen: &mut KeysSeen) -> Result<AuditEvent, Refusal> {
    if let Some(key) = &event.idempotency_key {
        let key = sealtrail_core::digest::Digest::of(&[key.as_bytes()]);
        if let Some(first) = seen.get(&key) {
            return Err(Refusal {
                reason: "duplicate",
                detail: format!("the event at index {first} of this request has the same idempotency_key"),
            });
        }
        seen.insert(key, index);
    }
    Ok(event)
}

/// Encodes and queues one event, waiting (without blocking the thread) while the producer's
/// queue is full, up to `QUEUE_WAIT`.
async fn send(
    state: &SharedState,
    request: &RequestContext,
    producer: &str,
    event: &AuditEvent,
) -> Result<rdkafka::producer::DeliveryFuture, Refusal> {
    let emitter = state.recorder.emitter();
    let payload = emitter.encode(event);
    let limit = state.ingest.limits.max_record_bytes;
    if payload.len() > limit {
        return Err(Refusal {
            reason: "oversized",
            detail: format!("the encoded event is {} bytes; at most {limit}", payload.len()),
        });
    }
    // Which credential wrote the record, for whoever reads the raw topic.
    let mut kafka_headers: Vec<(&str, &str)> = vec![("sealtrail.producer", producer)];
    if let Some(key) = &event.idempotency_key {
        kafka_headers.push(("idempotency-key", key));
    }
    if let Some(trace) = &request.trace {
        kafka_headers.push(("traceparent", &trace.header));
    }
    let started = Instant::now();
    loop {
        match emitter.try_enqueue(Some(request.tenant.as_bytes()), &payload, &kafka_headers) {
            Ok(delivery) => return Ok(delivery),
            Err(Enqueue::QueueFull) if started.elapsed() < QUEUE_WAIT => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(Enqueue::QueueFull) => return Err(not_acknowledged("the producer's queue stayed full")),
            Err(Enqueue::Failed(error)) => return Err(not_acknowledged(&error.to_string())),
        }
    }
}

/// Kafka did not take the event: safe to send again with an idempotency key (a retry of an event
/// that was stored after all is recognised by the seal processor); without one, a retry after a
/// timeout may be sealed twice.
fn not_acknowledged(error: &str) -> Refusal {
    tracing::warn!(%error, "an ingested event was not acknowledged by Kafka");
    Refusal {
        reason: "not_acknowledged",
        detail: "Kafka did not acknowledge the event; send it again (with an idempotency key, a retry is never sealed twice)".to_owned(),
    }
}

//! Sending a generated workload through an emitter: as fast as acknowledgements allow (a bounded
//! number in flight) or at a fixed rate, counting what was acknowledged per tenant and what was
//! malformed on purpose. `sealtrail produce` and the demo of `sealtrail up` both use it.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use tracing::Instrument as _;

use crate::generator::{Generated, Generator, Payload};
use crate::outbox::OutboxRecord;
use crate::{Accepted, AuditEmitter, DurableEmitter, EmitError, acknowledged};

/// Where a workload goes: straight to Kafka, or through a durable outbox.
#[derive(Debug, Clone, Copy)]
pub enum Destination<'a> {
    Kafka(&'a AuditEmitter),
    Durable(&'a DurableEmitter),
}

/// One record's answer, as `send_workload` reports it.
#[derive(Debug, Clone, Copy)]
pub struct Settled<'a> {
    /// The event's id (none for a record malformed on purpose).
    pub event_id: Option<&'a str>,
    /// Where it was accepted; none when it was not.
    pub accepted: Option<Accepted>,
}

type Answer<'a> = Pin<Box<dyn Future<Output = (Option<String>, Result<Accepted, EmitError>)> + 'a>>;

impl<'a> Destination<'a> {
    fn emitter(self) -> &'a AuditEmitter {
        match self {
            Self::Kafka(emitter) => emitter,
            Self::Durable(durable) => durable.emitter(),
        }
    }

    fn event(self, event: sealtrail_core::event::AuditEvent) -> Result<Answer<'a>, EmitError> {
        let id = Some(event.event_id.clone());
        // With traces exported, each event starts a trace that seal and sink continue.
        let span = if sealtrail_telemetry::trace_context::is_enabled() {
            tracing::info_span!("produce.event", otel.kind = "producer", tenant = %event.tenant_id)
        } else {
            tracing::Span::none()
        };
        Ok(match self {
            Self::Kafka(emitter) => {
                let delivery = span.in_scope(|| emitter.enqueue(&event))?;
                Box::pin(async move { (id, kafka_answer(acknowledged(delivery).await)) })
            }
            Self::Durable(durable) => Box::pin(async move { (id, durable.emit(&event).await) }.instrument(span)),
        })
    }

    fn raw(self, key: Option<Vec<u8>>, payload: Vec<u8>) -> Result<Answer<'a>, EmitError> {
        Ok(match self {
            Self::Kafka(emitter) => {
                let delivery = emitter.enqueue_raw(key.as_deref(), &payload)?;
                Box::pin(async move { (None, kafka_answer(acknowledged(delivery).await)) })
            }
            Self::Durable(durable) => Box::pin(async move {
                let record = OutboxRecord {
                    key,
                    headers: Vec::new(),
                    payload,
                };
                (None, durable.send(record).await)
            }),
        })
    }
}

fn kafka_answer(result: Result<(i32, i64), EmitError>) -> Result<Accepted, EmitError> {
    result.map(|(partition, offset)| Accepted::Kafka { partition, offset })
}

/// How many records may wait for their acknowledgement at once.
const IN_FLIGHT: usize = 20_000;

/// What a workload run sent.
#[derive(Debug, Clone, Default)]
pub struct WorkloadSent {
    pub acknowledged: u64,
    /// Of those, the ones the durable outbox holds (not yet acknowledged by Kafka).
    pub outboxed: u64,
    pub failed: u64,
    /// The first record the broker did not acknowledge, and why.
    pub first_failure: Option<String>,
    /// Good events per tenant.
    pub per_tenant: BTreeMap<String, u64>,
    /// Records malformed on purpose, by the DLQ reason they will get.
    pub malformed: BTreeMap<&'static str, u64>,
    pub elapsed: Duration,
}

impl WorkloadSent {
    pub fn good(&self) -> u64 {
        self.per_tenant.values().sum()
    }

    pub fn malformed_total(&self) -> u64 {
        self.malformed.values().sum()
    }

    fn settle(&mut self, result: &Result<Accepted, EmitError>) {
        match result {
            Ok(accepted) => {
                self.acknowledged += 1;
                if matches!(accepted, Accepted::Outbox { .. }) {
                    self.outboxed += 1;
                }
            }
            Err(error) => {
                self.failed += 1;
                self.first_failure.get_or_insert_with(|| error.to_string());
            }
        }
    }
}

/// Sends `events` records of `generator` to `destination`, at most `rate` per second when
/// given; `on_settled` is called once per record acknowledged or failed (for progress, and for
/// callers that keep the ids of acknowledged events).
pub async fn send_workload(
    destination: Destination<'_>,
    generator: &mut Generator,
    events: u64,
    rate: Option<f64>,
    mut on_settled: impl FnMut(Settled<'_>),
) -> Result<WorkloadSent, EmitError> {
    let started = Instant::now();
    let mut sent = WorkloadSent::default();
    let mut in_flight = FuturesUnordered::new();
    let mut settle = |sent: &mut WorkloadSent, (id, result): (Option<String>, Result<Accepted, EmitError>)| {
        sent.settle(&result);
        on_settled(Settled {
            event_id: id.as_deref(),
            accepted: result.ok(),
        });
    };
    for number in 0..events {
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64(number as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                // Answers keep being counted while the next record waits for its turn.
                let pause = tokio::time::sleep(wait);
                tokio::pin!(pause);
                loop {
                    tokio::select! {
                        () = &mut pause => break,
                        Some(answer) = in_flight.next() => settle(&mut sent, answer),
                    }
                }
            }
        }
        let answer = match generator.next_record() {
            Generated::Good(event) => {
                *sent.per_tenant.entry(event.tenant_id.clone()).or_default() += 1;
                destination.event(*event)?
            }
            Generated::Bad { kind, key, payload } => {
                *sent.malformed.entry(kind.reason()).or_default() += 1;
                let bytes = match payload {
                    Payload::Bytes(bytes) => bytes,
                    Payload::Event(event) => destination.emitter().encode(&event),
                };
                destination.raw(key, bytes)?
            }
        };
        in_flight.push(answer);
        while in_flight.len() >= IN_FLIGHT {
            if let Some(answer) = in_flight.next().await {
                settle(&mut sent, answer);
            }
        }
    }
    while let Some(answer) = in_flight.next().await {
        settle(&mut sent, answer);
    }
    sent.elapsed = started.elapsed();
    Ok(sent)
}

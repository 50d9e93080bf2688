//! Sending a generated workload through an emitter: as fast as acknowledgements allow (a bounded
//! number in flight) or at a fixed rate, counting what was acknowledged per tenant and what was
//! malformed on purpose. `sealtrail produce` and the demo of `sealtrail up` both use it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;

use crate::generator::{Generated, Generator, Payload};
use crate::{AuditEmitter, EmitError, acknowledged};

/// How many records may wait for their acknowledgement at once.
const IN_FLIGHT: usize = 20_000;

/// What a workload run sent.
#[derive(Debug, Clone, Default)]
pub struct WorkloadSent {
    pub acknowledged: u64,
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

    fn settle(&mut self, result: Result<(i32, i64), EmitError>) {
        match result {
            Ok(_) => self.acknowledged += 1,
            Err(error) => {
                self.failed += 1;
                self.first_failure.get_or_insert_with(|| error.to_string());
            }
        }
    }
}

/// Sends `events` records of `generator` through `emitter`, at most `rate` per second when
/// given; `on_settled` is called once per record acknowledged or failed (for progress).
pub async fn send_workload(
    emitter: &AuditEmitter,
    generator: &mut Generator,
    events: u64,
    rate: Option<f64>,
    mut on_settled: impl FnMut(),
) -> Result<WorkloadSent, EmitError> {
    let started = Instant::now();
    let mut sent = WorkloadSent::default();
    let mut in_flight = FuturesUnordered::new();
    for number in 0..events {
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64(number as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        let delivery = match generator.next_record() {
            Generated::Good(event) => {
                *sent.per_tenant.entry(event.tenant_id.clone()).or_default() += 1;
                // With traces exported, each event starts a trace that seal and sink continue.
                if sealtrail_telemetry::trace_context::is_enabled() {
                    let span = tracing::info_span!("produce.event", otel.kind = "producer", tenant = %event.tenant_id);
                    span.in_scope(|| emitter.enqueue(&event))?
                } else {
                    emitter.enqueue(&event)?
                }
            }
            Generated::Bad { kind, key, payload } => {
                *sent.malformed.entry(kind.reason()).or_default() += 1;
                let bytes = match payload {
                    Payload::Bytes(bytes) => bytes,
                    Payload::Event(event) => emitter.encode(&event),
                };
                emitter.enqueue_raw(key.as_deref(), &bytes)?
            }
        };
        in_flight.push(acknowledged(delivery));
        while in_flight.len() >= IN_FLIGHT {
            if let Some(result) = in_flight.next().await {
                sent.settle(result);
                on_settled();
            }
        }
    }
    while let Some(result) = in_flight.next().await {
        sent.settle(result);
        on_settled();
    }
    sent.elapsed = started.elapsed();
    Ok(sent)
}

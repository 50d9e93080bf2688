//! The durable outbox: when Kafka is unreachable or slow, events go to an fsync'd log on local
//! disk and drain to Kafka, in the order they entered it, once the broker answers again.
//!
//! [`DurableEmitter::emit`] answers only once Kafka acknowledged the event or the outbox holds it
//! on disk, so a process killed while the broker is down loses nothing it was told was accepted.
//! While the outbox holds anything, new events go behind it, not around it. A record Kafka may have
//! written without acknowledging it (a timeout in flight) can be sent twice; every event carries an
//! idempotency key (its event id when the caller gave none), so the seal processor seals it once.

mod drain;
mod log;
mod record;
mod writer;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use sealtrail_core::event::AuditEvent;
use sealtrail_core::validate::is_valid_tenant_id;
use sealtrail_kafka::KafkaSettings;
use sealtrail_runtime::{Metrics, RegistryConnection};

pub use log::{LogLimits, OutboxError, OutboxLog, OutboxStats};
pub use record::OutboxRecord;

use crate::{AuditEmitter, EmitError, Enqueue};
use sealtrail_core::avro::contract::AUDIT_EVENT_SCHEMA;

/// Where the outbox lives and when events go to it.
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    pub dir: PathBuf,
    /// Bytes on disk before events are refused (`EmitError::Outbox(Full)`).
    pub max_bytes: u64,
    /// How long Kafka may take to acknowledge an event before it goes to the outbox.
    pub spill_after: Duration,
}

impl OutboxSettings {
    pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
    pub const DEFAULT_SPILL_AFTER: Duration = Duration::from_secs(10);
    const SEGMENT_BYTES: u64 = 16 << 20;

    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            max_bytes: Self::DEFAULT_MAX_BYTES,
            spill_after: Self::DEFAULT_SPILL_AFTER,
        }
    }
}

/// Where an accepted event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Kafka acknowledged it (acks=all).
    Kafka { partition: i32, offset: i64 },
    /// The outbox holds it on disk; it goes to Kafka when the broker answers.
    Outbox { sequence: u64 },
}

/// What the emitter and its drain share.
struct Shared {
    log: Mutex<OutboxLog>,
    /// True while the outbox holds records: new events queue behind them.
    spilling: AtomicBool,
    /// Wakes the drain when records arrive.
    arrived: tokio::sync::Notify,
    metrics: Option<Metrics>,
}

impl Shared {
    fn log(&self) -> std::sync::MutexGuard<'_, OutboxLog> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn report(&self, stats: OutboxStats) {
        if let Some(metrics) = &self.metrics {
            let age = stats
                .oldest_enqueued_ms
                .map_or(0.0, |enqueued| (now_ms() - enqueued).max(0) as f64 / 1000.0);
            metrics.outbox(stats.records, stats.bytes, age);
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
}

/// Errors that sending again cannot cure because the record itself is refused (its size or
/// form). Everything else is worth the outbox and a retry: timeouts, brokers down, leaders moving,
/// and also authorization or topic errors, which an operator can fix (an ACL re-applied during a
/// deploy must not throw the outbox away).
fn is_permanent(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}

/// The file in the outbox that keeps the contract's schema id, so a process restarted while the
/// registry is down can still take events (and drain what it left).
const SCHEMA_ID_FILE: &str = "schema-id";

/// The emitter, its contract registered; with the schema id the outbox kept when the registry
/// cannot be reached.
async fn registered(
    kafka: &KafkaSettings,
    registry: &RegistryConnection,
    topic: &str,
    dir: &std::path::Path,
    producer: &rdkafka::ClientConfig,
) -> Result<AuditEmitter, EmitError> {
    let kept = dir.join(SCHEMA_ID_FILE);
    match AuditEmitter::connect_with(kafka, registry, topic, AUDIT_EVENT_SCHEMA, producer).await {
        Ok(emitter) => {
            let id = emitter.schema_id().to_string();
            if std::fs::read_to_string(&kept).ok().as_deref() != Some(id.as_str()) {
                // Best effort: without it, a start during a registry outage fails as before.
                if let Err(error) = std::fs::write(&kept, &id) {
                    tracing::warn!(%error, path = %kept.display(), "cannot keep the schema id in the outbox");
                }
            }
            Ok(emitter)
        }
        Err(EmitError::Registry { reason, .. }) => {
            let id: Option<u32> = std::fs::read_to_string(&kept)
                .ok()
                .and_then(|text| text.trim().parse().ok());
            let Some(id) = id else {
                return Err(EmitError::Registry {
                    subject: format!("{topic}-value"),
                    registry: registry.url.clone(),
                    reason,
                });
            };
            tracing::warn!(%reason, schema_id = id, "the registry is unreachable; using the schema id the outbox kept");
            AuditEmitter::with_registered_schema(kafka, topic, id, producer)
        }
        Err(error) => Err(error),
    }
}

/// An [`AuditEmitter`] with a durable outbox.
pub struct DurableEmitter {
    emitter: Arc<AuditEmitter>,
    shared: Arc<Shared>,
    writer: writer::Writer,
    drain: tokio::task::AbortHandle,
}

impl std::fmt::Debug for DurableEmitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableEmitter")
            .field("emitter", &self.emitter)
            .field("outbox", &self.shared.log().dir())
            .finish_non_exhaustive()
    }
}

impl Drop for DurableEmitter {
    fn drop(&mut self) {
        self.drain.abort();
    }
}

impl DurableEmitter {
    /// Opens the outbox, registers the contract (with the registry down, uses the schema id the
    /// outbox kept from an earlier run), creates the producer (its delivery timeout is
    /// `spill_after`) and starts draining what an earlier run left in the outbox.
    pub async fn connect(
        kafka: &KafkaSettings,
        registry: &RegistryConnection,
        topic: &str,
        settings: &OutboxSettings,
        metrics: Option<Metrics>,
    ) -> Result<Self, EmitError> {
        let mut producer = kafka.producer();
        let timeout_ms = settings.spill_after.as_millis().clamp(1, i32::MAX as u128);
        producer.set("message.timeout.ms", timeout_ms.to_string());
        let limits = LogLimits {
            max_bytes: settings.max_bytes,
            segment_bytes: OutboxSettings::SEGMENT_BYTES.min(settings.max_bytes / 4).max(1),
        };
        let dir = settings.dir.clone();
        let log = tokio::task::spawn_blocking(move || OutboxLog::open(&dir, limits))
            .await
            .map_err(|error| EmitError::NotAcknowledged(format!("opening the outbox stopped: {error}")))??;
        let emitter = registered(kafka, registry, topic, &settings.dir, &producer).await?;
        let left = log.stats();
        if left.records > 0 {
            tracing::info!(
                outbox = %settings.dir.display(),
                records = left.records,
                "the outbox holds events from an earlier run; they go to Kafka first"
            );
        }
        let shared = Arc::new(Shared {
            spilling: AtomicBool::new(!log.is_drained()),
            log: Mutex::new(log),
            arrived: tokio::sync::Notify::new(),
            metrics,
        });
        shared.report(left);
        let emitter = Arc::new(emitter);
        let drain = tokio::spawn(drain::run(Arc::clone(&shared), Arc::clone(&emitter))).abort_handle();
        Ok(Self {
            writer: writer::Writer::start(Arc::clone(&shared)),
            emitter,
            shared,
            drain,
        })
    }

    pub fn emitter(&self) -> &AuditEmitter {
        &self.emitter
    }

    pub fn stats(&self) -> OutboxStats {
        self.shared.log().stats()
    }

    /// Sends an event; answers once Kafka acknowledged it or the outbox holds it on disk. An event
    /// without an idempotency key is given its event id as key (see the module's documentation).
    pub async fn emit(&self, event: &AuditEvent) -> Result<Accepted, EmitError> {
        if !is_valid_tenant_id(&event.tenant_id) {
            return Err(EmitError::InvalidTenant(event.tenant_id.clone()));
        }
        let payload = if event.idempotency_key.is_some() {
            self.emitter.encode(event)
        } else {
            self.emitter.encode(&AuditEvent {
                idempotency_key: Some(event.event_id.clone()),
                ..event.clone()
            })
        };
        let record = OutboxRecord {
            key: Some(event.tenant_id.as_bytes().to_vec()),
            headers: sealtrail_telemetry::trace_context::kafka::trace_headers(&tracing::Span::current()),
            payload,
        };
        self.send(record).await
    }

    /// Sends a record of the caller's (framed bytes, key and headers) the same way.
    pub async fn send(&self, record: OutboxRecord) -> Result<Accepted, EmitError> {
        if !self.shared.spilling.load(Ordering::Acquire) {
            let headers: Vec<(&str, &str)> = record.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            match self
                .emitter
                .try_enqueue(record.key.as_deref(), &record.payload, &headers)
            {
                Ok(delivery) => match delivery.await {
                    Ok(Ok(delivered)) => {
                        return Ok(Accepted::Kafka {
                            partition: delivered.partition,
                            offset: delivered.offset,
                        });
                    }
                    Ok(Err((error, _))) if is_permanent(&error) => {
                        return Err(EmitError::NotAcknowledged(error.to_string()));
                    }
                    Ok(Err((error, _))) => {
                        tracing::debug!(%error, "Kafka did not acknowledge in time; the event goes to the outbox");
                    }
                    Err(_) => {}
                },
                Err(Enqueue::QueueFull) => {}
                Err(Enqueue::Failed(error)) => return Err(error),
            }
        }
        self.writer
            .append(record)
            .await
            .map(|sequence| Accepted::Outbox { sequence })
    }

    /// Waits until the outbox is empty or `timeout` passes; returns what it still holds.
    pub async fn drain(&self, timeout: Duration) -> OutboxStats {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let stats = self.stats();
            if stats.records == 0 || tokio::time::Instant::now() >= deadline {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

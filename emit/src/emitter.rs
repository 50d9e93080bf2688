use std::time::Duration;

use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use schema_registry_converter::async_impl::schema_registry::post_schema;
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};
use sealtrail_core::avro::contract::{AUDIT_EVENT_SCHEMA, encode_audit_event};
use sealtrail_core::avro::{Framed, Writer};
use sealtrail_core::event::AuditEvent;
use sealtrail_core::validate::is_valid_tenant_id;
use sealtrail_kafka::KafkaContext;
use sealtrail_kafka::KafkaSettings;
use sealtrail_runtime::RegistryConnection;
use sealtrail_telemetry::trace_context;

/// Why an event could not be emitted.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error("cannot register the audit event schema under {subject} at {registry}: {reason}")]
    Registry {
        subject: String,
        registry: String,
        reason: String,
    },
    #[error("cannot create a Kafka producer for {bootstrap}: {reason}")]
    Producer { bootstrap: String, reason: String },
    #[error("tenant id {0:?} is not valid (^[a-z0-9][a-z0-9._-]{{0,62}}$); the event was not sent")]
    InvalidTenant(String),
    #[error("Kafka did not acknowledge the event: {0}")]
    NotAcknowledged(String),
    #[error(transparent)]
    Outbox(#[from] crate::outbox::OutboxError),
}

/// Why a record was not queued.
#[derive(Debug)]
pub enum Enqueue {
    /// The producer's local queue is full: Kafka is slower than the records come.
    QueueFull,
    Failed(EmitError),
}

/// Publishes audit events to a raw topic, as services do.
///
/// Events are encoded with the contract schema registered under `<topic>-value`
/// (TopicNameStrategy) and keyed by tenant, so Java and Rust producers put a tenant's events on the
/// same partition; the producer is idempotent with `acks=all`, so an acknowledged event is durable
/// and never duplicated by retries.
pub struct AuditEmitter {
    producer: FutureProducer<KafkaContext>,
    topic: String,
    schema_id: u32,
}

impl std::fmt::Debug for AuditEmitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditEmitter")
            .field("topic", &self.topic)
            .field("schema_id", &self.schema_id)
            .finish_non_exhaustive()
    }
}

impl AuditEmitter {
    /// Registers the contract (or finds it registered) and creates the producer.
    pub async fn connect(kafka: &KafkaSettings, registry: &RegistryConnection, topic: &str) -> Result<Self, EmitError> {
        Self::connect_with_schema(kafka, registry, topic, AUDIT_EVENT_SCHEMA).await
    }

    /// Like `connect`, with another version of the contract (for producers built against an
    /// older or newer schema).
    pub async fn connect_with_schema(
        kafka: &KafkaSettings,
        registry: &RegistryConnection,
        topic: &str,
        schema: &str,
    ) -> Result<Self, EmitError> {
        Self::connect_with(kafka, registry, topic, schema, &kafka.producer()).await
    }

    /// Like `connect_with_schema`, with a producer configuration of the caller's (the durable
    /// emitter's shorter delivery timeout).
    pub async fn connect_with(
        kafka: &KafkaSettings,
        registry: &RegistryConnection,
        topic: &str,
        schema: &str,
        producer: &rdkafka::ClientConfig,
    ) -> Result<Self, EmitError> {
        let subject = format!("{topic}-value");
        let supplied = SuppliedSchema::new(
            Some("io.sealtrail.audit.AuditEvent".to_owned()),
            SchemaType::Avro,
            schema.to_owned(),
        );
        let refused = |reason: String| EmitError::Registry {
            subject: subject.clone(),
            registry: registry.url.clone(),
            reason,
        };
        let settings = registry.sr_settings().map_err(refused)?;
        let registered = post_schema(&settings, subject.clone(), supplied)
            .await
            .map_err(|e| refused(e.to_string()))?;
        Self::with_registered_schema(kafka, topic, registered.id, producer)
    }

    /// An emitter for a contract registered earlier under `schema_id`, without asking the registry
    /// (the durable emitter, started while the registry is down, with the id its outbox kept).
    pub fn with_registered_schema(
        kafka: &KafkaSettings,
        topic: &str,
        schema_id: u32,
        producer: &rdkafka::ClientConfig,
    ) -> Result<Self, EmitError> {
        let producer: FutureProducer<KafkaContext> = kafka.create(producer).map_err(|e| EmitError::Producer {
            bootstrap: kafka.bootstrap.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
            schema_id,
        })
    }

    pub fn schema_id(&self) -> u32 {
        self.schema_id
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The Confluent-framed bytes of an event, written with the contract.
    pub fn encode(&self, event: &AuditEvent) -> Vec<u8> {
        let mut writer = Writer::with_capacity(512);
        encode_audit_event(event, &mut writer);
        Framed::frame(self.schema_id, &writer.into_bytes())
    }

    /// Sends an event and waits until Kafka acknowledges it; returns its partition and offset.
    pub async fn emit(&self, event: &AuditEvent) -> Result<(i32, i64), EmitError> {
        let delivery = self.enqueue(event)?;
        acknowledged(delivery).await
    }

    /// Queues an event without waiting: await the returned future (in any order) for its
    /// acknowledgement. Lets a busy service keep many events in flight.
    pub fn enqueue(&self, event: &AuditEvent) -> Result<DeliveryFuture, EmitError> {
        if !is_valid_tenant_id(&event.tenant_id) {
            return Err(EmitError::InvalidTenant(event.tenant_id.clone()));
        }
        self.enqueue_raw(Some(event.tenant_id.as_bytes()), &self.encode(event))
    }

    /// Queues arbitrary bytes: used to plant malformed records in test and demo workloads.
    /// The record carries the current span's trace context (`traceparent`) when traces are
    /// exported, so the seal and sink spans of the event join the caller's trace.
    pub fn enqueue_raw(&self, key: Option<&[u8]>, payload: &[u8]) -> Result<DeliveryFuture, EmitError> {
        self.enqueue_with_headers(key, payload, &[])
    }

    /// Queues framed bytes with Kafka headers of the caller's; waits (blocking the thread) while
    /// the local queue is full.
    pub fn enqueue_with_headers(
        &self,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<DeliveryFuture, EmitError> {
        loop {
            match self.try_enqueue(key, payload, headers) {
                Ok(delivery) => return Ok(delivery),
                // The producer's own thread delivers in the background; give it a moment.
                Err(Enqueue::QueueFull) => std::thread::sleep(Duration::from_millis(5)),
                Err(Enqueue::Failed(error)) => return Err(error),
            }
        }
    }

    /// Queues framed bytes with Kafka headers of the caller's (an ingest request's
    /// `traceparent` and idempotency key), or says the local queue is full, without waiting:
    /// for async callers, which must not block their thread. Without a `traceparent` among the
    /// headers, the current span's is added when traces are exported.
    pub fn try_enqueue(
        &self,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<DeliveryFuture, Enqueue> {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        let mut owned = rdkafka::message::OwnedHeaders::new();
        for (name, value) in headers {
            owned = owned.insert(rdkafka::message::Header {
                key: name,
                value: Some(value.as_bytes()),
            });
        }
        if trace_context::is_enabled() && !headers.iter().any(|(name, _)| *name == "traceparent") {
            owned = trace_context::inject(&tracing::Span::current(), owned);
        }
        if !headers.is_empty() || trace_context::is_enabled() {
            record = record.headers(owned);
        }
        match self.producer.send_result(record) {
            Ok(delivery) => Ok(delivery),
            Err((rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), _)) => {
                Err(Enqueue::QueueFull)
            }
            Err((error, _)) => Err(Enqueue::Failed(EmitError::NotAcknowledged(error.to_string()))),
        }
    }

    /// Waits until everything queued is acknowledged (or `timeout` passes).
    pub fn flush(&self, timeout: Duration) -> Result<(), EmitError> {
        rdkafka::producer::Producer::flush(&self.producer, timeout)
            .map_err(|e| EmitError::NotAcknowledged(e.to_string()))
    }
}

/// Turns a delivery future into the record's coordinates or an error.
pub async fn acknowledged(delivery: DeliveryFuture) -> Result<(i32, i64), EmitError> {
    match delivery.await {
        Ok(Ok(delivered)) => Ok((delivered.partition, delivered.offset)),
        Ok(Err((error, _))) => Err(EmitError::NotAcknowledged(error.to_string())),
        Err(_) => Err(EmitError::NotAcknowledged("the producer was dropped".to_owned())),
    }
}

//! Where the seal processor's output goes: a Kafka producer in production, the memory log in
//! unit tests. Either way every delivery is reported to [`Deliveries`], in order.

use std::time::Duration;

use rdkafka::error::KafkaError as ClientError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::deliveries::{Deliveries, Produced};

/// A record for one of the output topics.
#[derive(Debug)]
pub struct OutputRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub key: &'a [u8],
    pub payload: &'a [u8],
    /// Null values stay null.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// The record's timestamp in Unix ms; the producer's clock when `None` (what every output
    /// uses: a raw record's older timestamp on a sealed record stalled the local broker's
    /// fetches).
    pub timestamp_ms: Option<i64>,
}

/// The seal processor's producer.
pub trait Outputs {
    /// Queues `record`, waiting while the queue is full; an error means it can never be sent.
    fn send(&self, record: OutputRecord<'_>, produced: Produced) -> Result<(), String>;
    /// Serves delivery reports for up to `timeout`.
    fn poll(&self, timeout: Duration);
    /// Waits until everything queued is delivered or has failed.
    fn flush(&self, timeout: Duration) -> Result<(), String>;
    fn deliveries(&self) -> &Deliveries;
}

/// The Kafka producer, gapless: a record that cannot be delivered stops the processor.
pub struct KafkaOutputs(pub BaseProducer<Deliveries>);

impl std::fmt::Debug for KafkaOutputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaOutputs").finish_non_exhaustive()
    }
}

impl Outputs for KafkaOutputs {
    fn send(&self, output: OutputRecord<'_>, produced: Produced) -> Result<(), String> {
        let mut record = BaseRecord::with_opaque_to(output.topic, Box::new(produced))
            .partition(output.partition)
            .key(output.key)
            .payload(output.payload);
        if let Some(timestamp) = output.timestamp_ms {
            record = record.timestamp(timestamp);
        }
        if !output.headers.is_empty() {
            let headers = output
                .headers
                .iter()
                .fold(OwnedHeaders::new(), |headers, (key, value)| {
                    headers.insert(Header {
                        key: key.as_str(),
                        value: value.as_deref(),
                    })
                });
            record = record.headers(headers);
        }
        self.0.context().sent(produced);
        loop {
            match self.0.send(record) {
                Ok(()) => return Ok(()),
                Err((ClientError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.0.poll(Duration::from_millis(10));
                    if let Some(failure) = self.0.context().lock().failure.clone() {
                        return Err(failure);
                    }
                }
                Err((error, _)) => return Err(format!("cannot queue a record for {}: {error}", output.topic)),
            }
        }
    }

    fn poll(&self, timeout: Duration) {
        self.0.poll(timeout);
    }

    fn flush(&self, timeout: Duration) -> Result<(), String> {
        self.0
            .flush(timeout)
            .map_err(|error| format!("the producer could not flush: {error}"))
    }

    fn deliveries(&self) -> &Deliveries {
        self.0.context()
    }
}

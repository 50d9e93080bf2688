//! What the seal processor writes: sealed events, DLQ records and checkpoints, produced in order,
//! and checkpoints only once every DLQ record they vouch for is acknowledged.

use std::time::{Duration, Instant};

use rdkafka::error::KafkaError as ClientError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use sealtrail_core::avro::Writer;
use sealtrail_core::avro::contract::encode_sealed_record;
use sealtrail_core::layout::LayoutChange;
use sealtrail_core::sealed::{Checkpoint, SealedRecord};

use crate::deliveries::Produced;
use crate::processor::{SealError, Shared, lock, now_ms};

impl Shared {
    pub(crate) fn check_deliveries(&self) -> Result<(), SealError> {
        match self.producer.context().lock().failure.clone() {
            Some(reason) => Err(SealError::Delivery(reason)),
            None => Ok(()),
        }
    }

    pub(crate) fn flush(&self) -> Result<(), SealError> {
        self.producer
            .flush(Duration::from_secs(60))
            .map_err(|e| SealError::Delivery(format!("the producer could not flush: {e}")))?;
        self.check_deliveries()
    }

    /// Writes a checkpoint for `partition` if it is due (or if anything is uncovered and
    /// `force`). A partition whose epoch is closed gets none: its final checkpoint was its last.
    pub(crate) fn checkpoint_if_pending(&self, partition: i32, force: bool) -> Result<bool, SealError> {
        let due = {
            let partitions = lock(&self.partitions);
            let Some(state) = partitions.get(&partition) else {
                return Ok(false);
            };
            let uncovered =
                state.sealer.pending_entries() > 0 || state.sealer.handled_through() > state.covered_through;
            if state.sealer.is_closed() {
                false
            } else if force {
                uncovered
            } else {
                state.sealer.checkpoint_due(now_ms(), state.covered_through)
            }
        };
        if !due {
            return Ok(false);
        }
        let dlq_next = self.settle_dlq(partition)?;
        let mut partitions = lock(&self.partitions);
        let Some(state) = partitions.get_mut(&partition) else {
            return Ok(false);
        };
        let started = Instant::now();
        let checkpoint = state.sealer.checkpoint(&self.signer, dlq_next, now_ms());
        state.covered_through = checkpoint.source_offset;
        drop(partitions);
        self.publish_checkpoint(partition, checkpoint, started)?;
        Ok(true)
    }

    /// Ends the partition's layout epoch at the signed layout change read at `offset`: the final
    /// checkpoint covers everything before it, and every later record goes to the DLQ.
    pub(crate) fn close_epoch(&self, partition: i32, offset: i64, change: &LayoutChange) -> Result<(), SealError> {
        let dlq_next = self.settle_dlq(partition)?;
        let mut partitions = lock(&self.partitions);
        let Some(state) = partitions.get_mut(&partition) else {
            return Ok(());
        };
        let started = Instant::now();
        let Some(last) = state.sealer.close_epoch(offset, &self.signer, dlq_next, now_ms()) else {
            return Ok(());
        };
        state.covered_through = last.source_offset;
        drop(partitions);
        tracing::info!(
            partition,
            offset,
            epoch = last.epoch,
            checkpoint = last.number,
            tenants = last.tenant_count,
            next_raw_topic = %change.to.raw_topic,
            "raw partition closed by a layout change: its final checkpoint hands every chain to the next layout"
        );
        self.publish_checkpoint(partition, last, started)
    }

    /// Waits until the partition's DLQ records are acknowledged, because a checkpoint vouches for
    /// them, and returns the offset the next one gets.
    pub(crate) fn settle_dlq(&self, partition: i32) -> Result<i64, SealError> {
        loop {
            self.check_deliveries()?;
            let pending = self
                .producer
                .context()
                .lock()
                .dlq_in_flight
                .get(&partition)
                .copied()
                .unwrap_or_default();
            if pending == 0 {
                break;
            }
            self.producer.poll(Duration::from_millis(10));
        }
        Ok(self
            .producer
            .context()
            .lock()
            .dlq_next
            .get(&partition)
            .copied()
            .unwrap_or_default())
    }

    pub(crate) fn publish_checkpoint(
        &self,
        partition: i32,
        checkpoint: Checkpoint,
        started: Instant,
    ) -> Result<(), SealError> {
        self.config.metrics.last_checkpoint(partition, checkpoint.number);
        let produced = Produced::Checkpoint {
            partition,
            source_offset: checkpoint.source_offset,
        };
        let bytes = self.encode(&SealedRecord::Checkpoint(Box::new(checkpoint)));
        self.send(&self.config.sealed_topic, partition, b"", &bytes, produced, None)?;
        *lock(&self.checkpoints) += 1;
        self.config.metrics.checkpoint();
        self.config.metrics.batch_duration(started.elapsed().as_secs_f64());
        Ok(())
    }

    pub(crate) fn encode(&self, record: &SealedRecord) -> Vec<u8> {
        let mut writer = Writer::with_capacity(2048);
        writer.raw(&[sealtrail_core::avro::MAGIC_BYTE]);
        writer.raw(&self.sealed_schema_id.to_be_bytes());
        encode_sealed_record(record, &mut writer);
        writer.into_bytes()
    }

    pub(crate) fn send(
        &self,
        topic: &str,
        partition: i32,
        key: &[u8],
        payload: &[u8],
        produced: Produced,
        headers: Option<OwnedHeaders>,
    ) -> Result<(), SealError> {
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(produced))
            .partition(partition)
            .key(key)
            .payload(payload);
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        self.producer.context().sent(produced);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((ClientError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(10));
                    self.check_deliveries()?;
                }
                Err((error, _)) => {
                    return Err(SealError::Delivery(format!(
                        "cannot queue a record for {topic}: {error}"
                    )));
                }
            }
        }
    }
}

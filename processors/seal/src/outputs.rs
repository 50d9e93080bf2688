//! What the seal processor writes: sealed events, DLQ records and checkpoints, produced in order,
//! and checkpoints only once every DLQ record they vouch for is acknowledged.

use std::time::{Duration, Instant};

use sealtrail_core::avro::Writer;
use sealtrail_core::avro::contract::encode_sealed_record;
use sealtrail_core::layout::LayoutChange;
use sealtrail_core::sealed::{Checkpoint, SealedRecord};

use crate::deliveries::Produced;
use crate::processor::{SealError, SealProcessor, now_ms};
use crate::producer::OutputRecord;

impl SealProcessor {
    pub(crate) fn check_deliveries(&self) -> Result<(), SealError> {
        match self.outputs.deliveries().lock().failure.clone() {
            Some(reason) => Err(SealError::Delivery(reason)),
            None => Ok(()),
        }
    }

    pub(crate) fn flush(&self) -> Result<(), SealError> {
        self.outputs
            .flush(Duration::from_secs(60))
            .map_err(SealError::Delivery)?;
        self.check_deliveries()
    }

    /// Writes a checkpoint for `partition` if it is due (or if anything is uncovered and
    /// `force`). A partition whose epoch is closed gets none: its final checkpoint was its last.
    /// Neither does one with records handled beyond a gap after a restart, until the gap is
    /// handled again: the next owner recovers them from the sealed topic and the DLQ.
    pub(crate) fn checkpoint_if_pending(&mut self, partition: i32, force: bool) -> Result<bool, SealError> {
        let Some(state) = self.partitions.get(&partition) else {
            return Ok(false);
        };
        let uncovered = state.sealer.pending_entries() > 0 || state.sealer.handled_through() > state.covered_through;
        let due = if state.sealer.is_closed() || !state.sealer.can_checkpoint() {
            false
        } else if force {
            uncovered
        } else {
            state.sealer.checkpoint_due(now_ms(), state.covered_through)
        };
        if !due {
            return Ok(false);
        }
        let dlq_next = self.settle_dlq(partition)?;
        let Some(state) = self.partitions.get_mut(&partition) else {
            return Ok(false);
        };
        let started = Instant::now();
        let checkpoint = state.sealer.checkpoint(&self.signer, dlq_next, now_ms());
        state.covered_through = checkpoint.source_offset;
        self.publish_checkpoint(partition, checkpoint, started)?;
        Ok(true)
    }

    /// Ends the partition's layout epoch at the signed layout change read at `offset`: the final
    /// checkpoint covers everything before it, and every later record goes to the DLQ.
    pub(crate) fn close_epoch(&mut self, partition: i32, offset: i64, change: &LayoutChange) -> Result<(), SealError> {
        let dlq_next = self.settle_dlq(partition)?;
        let Some(state) = self.partitions.get_mut(&partition) else {
            return Ok(());
        };
        let started = Instant::now();
        let Some(last) = state.sealer.close_epoch(offset, &self.signer, dlq_next, now_ms()) else {
            return Ok(());
        };
        state.covered_through = last.source_offset;
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
                .outputs
                .deliveries()
                .lock()
                .dlq_in_flight
                .get(&partition)
                .copied()
                .unwrap_or_default();
            if pending == 0 {
                break;
            }
            self.outputs.poll(Duration::from_millis(10));
        }
        Ok(self
            .outputs
            .deliveries()
            .lock()
            .dlq_next
            .get(&partition)
            .copied()
            .unwrap_or_default())
    }

    fn publish_checkpoint(
        &mut self,
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
        self.send(
            OutputRecord {
                topic: &self.config.sealed_topic,
                partition,
                key: b"",
                payload: &bytes,
                headers: Vec::new(),
                timestamp_ms: None,
            },
            produced,
        )?;
        self.summary.checkpoints += 1;
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

    pub(crate) fn send(&self, record: OutputRecord<'_>, produced: Produced) -> Result<(), SealError> {
        self.outputs.send(record, produced).map_err(SealError::Delivery)
    }
}

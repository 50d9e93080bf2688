//! Sealing one raw record: a layout change closes the partition, anything else is sealed into
//! the sealed topic or rejected to the DLQ.

use std::time::{Duration, Instant};

use sealtrail_core::avro::Framed;
use sealtrail_core::layout::{CONTROL_HEADER, LAYOUT_CHANGE_CONTROL, LayoutChange};
use sealtrail_core::sealed::SealedRecord;
use sealtrail_core::sealer::{Disposition, RawRecord, SchemaLookup, SealContext};
use sealtrail_core::validate::{RejectCode, reject};
use sealtrail_runtime::driver::{Control, InputRecord, PRODUCED_AT_HEADER};
use sealtrail_runtime::telemetry::events::{
    ComponentError, ErrorKind, RecordRejected, RecordsReceived, RecordsSent, RecordsSkipped, SkipReason,
};
use sealtrail_runtime::{AuditStage, SchemaVerdict};
use sealtrail_telemetry::trace_context;

use crate::deliveries::Produced;
use crate::dlq;
use crate::processor::{SealError, SealProcessor, now_ms};
use crate::producer::OutputRecord;

/// One raw offset in this many gives its sealed event a `sealtrail.produced_at` header.
const PRODUCED_AT_SAMPLE: i64 = 64;

impl SealProcessor {
    pub(crate) fn handle(&mut self, message: &dyn InputRecord, control: &mut dyn Control) -> Result<(), SealError> {
        let partition = message.partition();
        if !self.partitions.contains_key(&partition) {
            return Ok(());
        }
        self.record_undelivered(partition, message.offset(), control)?;
        let headers = message.headers();
        if let Some(change) = self.layout_change(message, &headers, control) {
            self.summary.records += 1;
            let telemetry = control.telemetry();
            telemetry.emit(RecordsReceived { count: 1 });
            telemetry.emit(RecordsSkipped {
                reason: SkipReason::LayoutChange,
                count: 1,
            });
            return self.close_epoch(partition, message.offset(), &change);
        }
        let payload = message.value();
        // Learn what the schema id means before sealing; a registry that cannot be reached is
        // waited for (the record is not bad), a registry that does not know the id rejects it.
        if let Some(framed) = payload.and_then(|bytes| Framed::parse(bytes).ok()) {
            let mut backoff = Duration::from_millis(200);
            while let Err(error) = self.registry.event_reader(&mut self.verdicts, framed.schema_id) {
                if control.is_stopped() {
                    return Ok(());
                }
                control.telemetry().emit(ComponentError {
                    kind: ErrorKind::RegistryUnavailable,
                    partition: Some(partition),
                    detail: &format!("{error}; retrying in {backoff:?}"),
                });
                control.pause_for(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
        self.summary.records += 1;
        self.first_record.get_or_insert_with(Instant::now);
        control.telemetry().emit(RecordsReceived { count: 1 });
        // Only records that carry a producer's trace context get a span of their own.
        let span = trace_context::record_span(&headers, || {
            tracing::info_span!(
                "seal.record",
                otel.kind = "consumer",
                partition,
                offset = message.offset(),
                tenant = tracing::field::Empty,
                seq = tracing::field::Empty,
                outcome = tracing::field::Empty,
                trace_id = tracing::field::Empty,
            )
        });
        let _entered = span.as_ref().map(tracing::Span::enter);
        let now = now_ms();
        let Some(assigned) = self.partitions.get_mut(&partition) else {
            return Ok(());
        };
        let record = RawRecord {
            offset: message.offset(),
            key: message.key(),
            value: payload,
        };
        let mut context = SealContext {
            policy: &self.config.policy,
            tokenizer: &mut self.tokenizer,
            now_ms: now,
            key_id: self.signer.key_id(),
        };
        let verdicts = &self.verdicts;
        let disposition = assigned.sealer.handle(
            &record,
            |id| match verdicts.get(&id) {
                Some(SchemaVerdict::Readable(reader)) => SchemaLookup::Found(reader),
                Some(SchemaVerdict::Incompatible(reason)) => SchemaLookup::Incompatible(reason),
                Some(SchemaVerdict::Unknown) | None => SchemaLookup::Unknown,
            },
            &mut context,
        );
        let due = assigned.sealer.pending_entries() >= self.config.checkpoint_every;
        if matches!(disposition, Disposition::AlreadyHandled) {
            assigned.reread_through = message.offset();
        }
        self.publish(message, &headers, disposition, span.as_ref(), now, control)?;
        if due {
            self.checkpoint_if_pending(partition, false)?;
        }
        Ok(())
    }

    /// Leaves a `not_delivered` DLQ record for every raw offset the consumer skipped before
    /// `offset`, so each raw offset is accounted for as sealed or in the DLQ.
    fn record_undelivered(&mut self, partition: i32, offset: i64, control: &mut dyn Control) -> Result<(), SealError> {
        let Some(assigned) = self.partitions.get(&partition) else {
            return Ok(());
        };
        let skipped = assigned.sealer.undelivered_before(offset);
        let (Some(first), Some(last)) = (skipped.first().copied(), skipped.last().copied()) else {
            return Ok(());
        };
        let rejection = reject(
            RejectCode::NotDelivered,
            "the consumer never received this raw offset: a transaction marker, a record of an aborted \
             transaction, or a record removed by retention before it was sealed",
        );
        tracing::warn!(
            partition,
            first,
            last,
            count = skipped.len(),
            "raw offsets were never delivered to the seal; each gets a not_delivered DLQ record"
        );
        let now = now_ms();
        for skipped_offset in skipped {
            let dlq_headers = dlq::headers(&[], &rejection, &self.config.raw_topic, partition, skipped_offset, now);
            self.send(
                OutputRecord {
                    topic: &self.config.dlq_topic,
                    partition,
                    key: &[],
                    payload: &[],
                    headers: dlq_headers,
                    timestamp_ms: None,
                },
                Produced::Rejected { partition },
            )?;
            self.summary.rejected += 1;
            control.telemetry().emit(RecordRejected {
                partition,
                offset: skipped_offset,
                code: rejection.code,
                detail: &rejection.detail,
            });
        }
        Ok(())
    }

    /// The signed layout change a record carries, if it is one that ends this processor's epoch.
    /// Anything else marked as a layout change goes down the normal path, to the DLQ.
    fn layout_change(
        &self,
        message: &dyn InputRecord,
        headers: &[(&str, Option<&[u8]>)],
        control: &mut dyn Control,
    ) -> Option<LayoutChange> {
        let marked = headers
            .iter()
            .any(|(key, value)| *key == CONTROL_HEADER && *value == Some(LAYOUT_CHANGE_CONTROL));
        if !marked {
            return None;
        }
        let problem = match LayoutChange::parse_verified(message.value().unwrap_or_default(), &self.trusted) {
            Ok(change) if change.from.raw_topic == self.config.raw_topic && change.from.epoch == self.epoch => {
                return Some(change);
            }
            Ok(change) => format!(
                "it changes layout epoch {} of {}, this is epoch {} of {}",
                change.from.epoch, change.from.raw_topic, self.epoch, self.config.raw_topic
            ),
            Err(error) => error.to_string(),
        };
        control.telemetry().emit(ComponentError {
            kind: ErrorKind::BadLayoutChange,
            partition: Some(message.partition()),
            detail: &format!("offset {}: {problem}", message.offset()),
        });
        None
    }

    /// Sends a sealed event to the sealed topic, or a rejected record to the DLQ.
    fn publish(
        &mut self,
        message: &dyn InputRecord,
        headers: &[(&str, Option<&[u8]>)],
        disposition: Disposition,
        span: Option<&tracing::Span>,
        now: i64,
        control: &mut dyn Control,
    ) -> Result<(), SealError> {
        let partition = message.partition();
        match disposition {
            Disposition::Sealed(sealed) => {
                let tenant = sealed.event.tenant_id.clone();
                let occurred_at = sealed.event.occurred_at;
                let mut sealed_headers: Vec<(String, Option<Vec<u8>>)> = span.map_or_else(Vec::new, |span| {
                    span.record("tenant", tenant.as_str());
                    span.record("seq", sealed.seal.tenant_seq);
                    span.record("outcome", "sealed");
                    // The sink continues the trace from the sealed record.
                    trace_context::trace_headers(span)
                        .into_iter()
                        .map(|(key, value)| (key, Some(value.into_bytes())))
                        .collect()
                });
                // A sample of sealed events carries its raw record's timestamp, from which the sink
                // measures produce -> queryable (docs/slo.md): one in PRODUCED_AT_SAMPLE, because
                // the local broker stores each header as a row and looks it up per fetched record.
                if message.offset() % PRODUCED_AT_SAMPLE == 0
                    && let Some(produced) = message.timestamp_ms()
                {
                    sealed_headers.push((PRODUCED_AT_HEADER.to_owned(), Some(produced.to_string().into_bytes())));
                }
                let bytes = self.encode(&SealedRecord::Event(sealed));
                self.send(
                    OutputRecord {
                        topic: &self.config.sealed_topic,
                        partition,
                        key: tenant.as_bytes(),
                        payload: &bytes,
                        headers: sealed_headers,
                        timestamp_ms: None,
                    },
                    Produced::Sealed { partition },
                )?;
                self.summary.sealed += 1;
                let telemetry = control.telemetry();
                telemetry.emit(RecordsSent { count: 1 });
                telemetry
                    .metrics()
                    .audit_lag(AuditStage::OccurredToSealed, (now - occurred_at) as f64 / 1000.0);
            }
            Disposition::Rejected(rejection) => {
                if let Some(span) = span {
                    span.record("outcome", rejection.code.as_str());
                }
                let dlq_headers = dlq::headers(
                    headers,
                    &rejection,
                    &self.config.raw_topic,
                    partition,
                    message.offset(),
                    now,
                );
                self.send(
                    OutputRecord {
                        topic: &self.config.dlq_topic,
                        partition,
                        key: message.key().unwrap_or_default(),
                        payload: message.value().unwrap_or_default(),
                        headers: dlq_headers,
                        timestamp_ms: None,
                    },
                    Produced::Rejected { partition },
                )?;
                self.summary.rejected += 1;
                control.telemetry().emit(RecordRejected {
                    partition,
                    offset: message.offset(),
                    code: rejection.code,
                    detail: &rejection.detail,
                });
            }
            Disposition::AlreadyHandled => {
                if let Some(span) = span {
                    span.record("outcome", "already_sealed");
                }
                control.telemetry().emit(RecordsSkipped {
                    reason: SkipReason::AlreadySealed,
                    count: 1,
                });
            }
        }
        Ok(())
    }
}

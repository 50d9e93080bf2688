//! Sealing one raw record: validation, classification and redaction, deduplication, chaining.

use super::{Disposition, PartitionSealer, RawRecord, SchemaLookup, SealContext, comparable_key};
use crate::avro::Framed;
use crate::canonical::{self, ENTRY_SCHEME};
use crate::chain;
use crate::classify::classify_and_redact;
use crate::idempotency::Original;
use crate::placement;
use crate::sealed::{Seal, SealedEvent, SourceCoordinates};
use crate::validate::{self, RejectCode, Rejection, reject};

impl PartitionSealer {
    /// Validates, classifies, redacts and chains one raw record. Records must come in offset order.
    pub fn handle<'p>(
        &mut self,
        record: &RawRecord<'_>,
        schema: impl FnOnce(u32) -> SchemaLookup<'p>,
        context: &mut SealContext<'_>,
    ) -> Disposition {
        if record.offset <= self.handled_through || self.handled_ahead.remove(&record.offset) {
            self.advance(record.offset);
            return Disposition::AlreadyHandled;
        }
        self.advance(record.offset);
        if self.closed {
            return Disposition::Rejected(reject(
                RejectCode::LayoutClosed,
                format!(
                    "raw partition {} of layout epoch {} was closed by `sealtrail reshard`; produce to the new layout's raw topic, and move this record there with `sealtrail dlq replay --reason layout_closed`",
                    self.settings.partition, self.settings.epoch
                ),
            ));
        }
        match self.seal(record, schema, context) {
            Ok(sealed) => Disposition::Sealed(Box::new(sealed)),
            Err(rejection) => Disposition::Rejected(rejection),
        }
    }

    fn seal<'p>(
        &mut self,
        record: &RawRecord<'_>,
        schema: impl FnOnce(u32) -> SchemaLookup<'p>,
        context: &mut SealContext<'_>,
    ) -> Result<SealedEvent, Rejection> {
        let value = record.value.unwrap_or_default();
        if value.len() > self.settings.limits.max_record_bytes {
            return Err(reject(
                RejectCode::Oversized,
                format!(
                    "the record is {} bytes; the limit is {}",
                    value.len(),
                    self.settings.limits.max_record_bytes
                ),
            ));
        }
        let key_tenant = validate::check_key(record.key)?;
        let framed = Framed::parse(value).map_err(|e| reject(RejectCode::NotAvro, e.to_string()))?;
        let reader = match schema(framed.schema_id) {
            SchemaLookup::Found(reader) => reader,
            SchemaLookup::Unknown => {
                return Err(reject(
                    RejectCode::UnknownSchema,
                    format!("schema id {} is not in the registry", framed.schema_id),
                ));
            }
            SchemaLookup::Incompatible(reason) => {
                return Err(reject(
                    RejectCode::IncompatibleSchema,
                    format!(
                        "schema id {} cannot be read as the audit event contract: {reason}",
                        framed.schema_id
                    ),
                ));
            }
        };
        let mut event = reader.read(framed.body).map_err(|e| {
            reject(
                RejectCode::NotAvro,
                format!("the body does not decode with schema id {}: {e}", framed.schema_id),
            )
        })?;
        validate::check_event(&event, key_tenant, context.now_ms, &self.settings.limits)?;
        self.check_placement(key_tenant)?;

        let rules = context.policy.rules_for(&event.tenant_id);
        let (classification, redactions) = classify_and_redact(&mut event, rules, context.tokenizer);
        // After redaction: the window is rebuilt from sealed events, which hold the redacted key.
        if let Some(key) = comparable_key(&event, &redactions)
            && let Some(original) = self.idempotency.find(&event.tenant_id, key, context.now_ms)
        {
            return Err(reject(
                RejectCode::Duplicate,
                format!(
                    "a retry: tenant {} sealed this idempotency key {} ms ago as seq {} (event {})",
                    event.tenant_id,
                    context.now_ms.saturating_sub(original.sealed_at),
                    original.seq,
                    original.event_id
                ),
            ));
        }
        let (seq, prev_hash) = self.next_link(&event.tenant_id);
        let canonical = canonical::entry(&event.tenant_id, seq, &event, &classification, &redactions);
        let hash = chain::entry_hash(&prev_hash, &canonical);
        self.set_head(&event.tenant_id, seq, hash);
        self.pending.push(hash);
        if let Some(key) = comparable_key(&event, &redactions) {
            self.idempotency.remember(
                &event.tenant_id,
                key,
                Original {
                    seq,
                    event_id: event.event_id.clone(),
                    sealed_at: context.now_ms,
                },
            );
        }
        Ok(SealedEvent {
            event,
            classification,
            redactions,
            seal: Seal {
                scheme: ENTRY_SCHEME,
                tenant_seq: seq,
                prev_hash,
                hash,
                key_id: context.key_id.to_owned(),
            },
            source: SourceCoordinates {
                topic: self.settings.source_topic.clone(),
                partition: self.settings.partition,
                offset: record.offset,
                schema_id: framed.schema_id,
            },
            sealed_at: context.now_ms,
        })
    }

    /// A tenant's chain lives in the partition its key hashes to; a record elsewhere would fork it.
    fn check_placement(&self, tenant: &str) -> Result<(), Rejection> {
        let expected = placement::partition_for_key(tenant.as_bytes(), self.settings.partition_count);
        if expected == self.settings.partition {
            return Ok(());
        }
        Err(reject(
            RejectCode::WrongPartition,
            format!(
                "tenant {tenant} belongs in raw partition {expected} of {count} (Java's murmur2 partitioner), \
                 not {partition}; set the producer's partitioner to murmur2 (librdkafka clients: \
                 partitioner=murmur2_random) and run `sealtrail dlq replay --reason wrong_partition`",
                count = self.settings.partition_count,
                partition = self.settings.partition,
            ),
        ))
    }
}

//! Sealing one raw record: validation, classification and redaction (`prepare`, which needs none
//! of the partition's state), then deduplication and chaining in offset order.

use super::{Disposition, PartitionSealer, RawRecord, SchemaLookup, SealContext, SealerSettings, comparable_key};
use crate::avro::Framed;
use crate::canonical::{self, ENTRY_SCHEME};
use crate::chain;
use crate::classify::classify_and_redact;
use crate::event::AuditEvent;
use crate::idempotency::Original;
use crate::placement;
use crate::sealed::{Classification, Redaction, Seal, SealedEvent, SourceCoordinates};
use crate::validate::{self, RejectCode, Rejection, reject};

/// A raw record decoded, validated, classified and redacted: all that sealing it needs that does
/// not depend on the records before it. Records of one partition can be prepared on several
/// threads, then chained one by one in offset order with [`PartitionSealer::handle_prepared`].
#[derive(Debug)]
pub struct Prepared {
    event: AuditEvent,
    classification: Classification,
    redactions: Vec<Redaction>,
    schema_id: u32,
}

impl PartitionSealer {
    /// Validates, classifies, redacts and chains one raw record. Records must come in offset order.
    pub fn handle<'p>(
        &mut self,
        record: &RawRecord<'_>,
        schema: impl FnOnce(u32) -> SchemaLookup<'p>,
        context: &mut SealContext<'_>,
    ) -> Disposition {
        if let Some(done) = self.account(record.offset) {
            return done;
        }
        let prepared = prepare(&self.settings, record, schema, context);
        self.chain(record.offset, prepared, context)
    }

    /// Chains a record made ready by [`prepare`], as [`Self::handle`] would have sealed it.
    /// Records must come in offset order.
    pub fn handle_prepared(
        &mut self,
        offset: i64,
        prepared: Result<Prepared, Rejection>,
        context: &mut SealContext<'_>,
    ) -> Disposition {
        if let Some(done) = self.account(offset) {
            return done;
        }
        self.chain(offset, prepared, context)
    }

    /// The settings [`prepare`] needs.
    pub fn settings(&self) -> &SealerSettings {
        &self.settings
    }

    /// Marks `offset` handled; what to answer instead of sealing it, if anything.
    fn account(&mut self, offset: i64) -> Option<Disposition> {
        if offset <= self.handled_through || self.handled_ahead.remove(&offset) {
            self.advance(offset);
            return Some(Disposition::AlreadyHandled);
        }
        self.advance(offset);
        self.closed.then(|| {
            Disposition::Rejected(reject(
                RejectCode::LayoutClosed,
                format!(
                    "raw partition {} of layout epoch {} was closed by `sealtrail reshard`; produce to the new layout's raw topic, and move this record there with `sealtrail dlq replay --reason layout_closed`",
                    self.settings.partition, self.settings.epoch
                ),
            ))
        })
    }

    fn chain(&mut self, offset: i64, prepared: Result<Prepared, Rejection>, context: &SealContext<'_>) -> Disposition {
        match prepared.and_then(|prepared| self.link(offset, prepared, context)) {
            Ok(sealed) => Disposition::Sealed(Box::new(sealed)),
            Err(rejection) => Disposition::Rejected(rejection),
        }
    }

    /// Deduplicates and chains a prepared record.
    fn link(&mut self, offset: i64, prepared: Prepared, context: &SealContext<'_>) -> Result<SealedEvent, Rejection> {
        let Prepared {
            event,
            classification,
            redactions,
            schema_id,
        } = prepared;
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
                offset,
                schema_id,
            },
            sealed_at: context.now_ms,
        })
    }
}

/// Decodes, validates, classifies and redacts `record` of the partition `settings` describe,
/// without the partition's state: callable from any thread, for any record not handled yet.
pub fn prepare<'p>(
    settings: &SealerSettings,
    record: &RawRecord<'_>,
    schema: impl FnOnce(u32) -> SchemaLookup<'p>,
    context: &mut SealContext<'_>,
) -> Result<Prepared, Rejection> {
    let value = record.value.unwrap_or_default();
    if value.len() > settings.limits.max_record_bytes {
        return Err(reject(
            RejectCode::Oversized,
            format!(
                "the record is {} bytes; the limit is {}",
                value.len(),
                settings.limits.max_record_bytes
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
    validate::check_event(&event, key_tenant, context.now_ms, &settings.limits)?;
    check_placement(settings, key_tenant)?;

    let rules = context.policy.rules_for(&event.tenant_id);
    let (classification, redactions) = classify_and_redact(&mut event, rules, context.tokenizer);
    Ok(Prepared {
        event,
        classification,
        redactions,
        schema_id: framed.schema_id,
    })
}

/// A tenant's chain lives in the partition its key hashes to; a record elsewhere would fork it.
fn check_placement(settings: &SealerSettings, tenant: &str) -> Result<(), Rejection> {
    let expected = placement::partition_for_key(tenant.as_bytes(), settings.partition_count);
    if expected == settings.partition {
        return Ok(());
    }
    Err(reject(
        RejectCode::WrongPartition,
        format!(
            "tenant {tenant} belongs in raw partition {expected} of {count} (Java's murmur2 partitioner), \
             not {partition}; set the producer's partitioner to murmur2 (librdkafka clients: \
             partitioner=murmur2_random) and run `sealtrail dlq replay --reason wrong_partition`",
            count = settings.partition_count,
            partition = settings.partition,
        ),
    ))
}

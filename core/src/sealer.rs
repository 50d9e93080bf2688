//! Sealing one partition: raw record in, sealed event or rejection out, and signed checkpoints.
//!
//! The state (tenant heads, entries since the last checkpoint, how far the raw partition is
//! handled) lives in memory only. It is rebuilt from the sealed partition itself with
//! [`PartitionSealer::recover`]: the last checkpoint plus the events after it, plus the DLQ records
//! after the checkpoint's DLQ position. Sealed records reach Kafka in the order they are made, so
//! whatever prefix of them survives a crash, recovery continues each chain exactly where it ends.

use std::collections::BTreeSet;
use std::sync::Arc;

use foldhash::HashMap;

use crate::avro::Framed;
use crate::avro::contract::EventReader;
use crate::canonical::{self, ENTRY_SCHEME};
use crate::chain;
use crate::checkpoint::{self, CheckpointSigner};
use crate::classify::classify_and_redact;
use crate::digest::Digest;
use crate::event::AuditEvent;
use crate::idempotency::{IdempotencyWindow, Original};
use crate::layout::Handover;
use crate::placement;
use crate::policy::Policy;
use crate::policy::RedactionMethod;
use crate::sealed::{Checkpoint, Redaction, Seal, SealedEvent, SourceCoordinates, TenantHead};
use crate::tokenize::Tokenizer;
use crate::validate::{self, Limits, RejectCode, Rejection, reject};
use crate::verify::{ChainBreak, check_link};

/// The idempotency key as sealed, if it still tells events apart: kept, or tokenized (one token
/// per value). A masked, generalized or dropped key would make different actions look alike.
fn comparable_key<'e>(event: &'e AuditEvent, redactions: &[Redaction]) -> Option<&'e str> {
    let lossy = redactions
        .iter()
        .any(|r| r.path == "idempotency_key" && r.method != RedactionMethod::Tokenize.name());
    if lossy { None } else { event.idempotency_key.as_deref() }
}

/// What the idempotency window keeps of a sealed event, without the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RememberedKey {
    pub tenant_id: String,
    pub key: String,
    pub original: Original,
}

impl RememberedKey {
    /// `None` for an event without a comparable idempotency key.
    pub fn of(event: &SealedEvent) -> Option<Self> {
        Some(Self {
            tenant_id: event.event.tenant_id.clone(),
            key: comparable_key(&event.event, &event.redactions)?.to_owned(),
            original: Original {
                seq: event.seal.tenant_seq,
                event_id: event.event.event_id.clone(),
                sealed_at: event.sealed_at,
            },
        })
    }
}

/// What the sealer needs to know about its partition.
#[derive(Debug, Clone)]
pub struct SealerSettings {
    pub source_topic: String,
    pub partition: i32,
    /// The raw topic's partition count, which decides each key's partition.
    pub partition_count: i32,
    /// The partition layout epoch being sealed (1 until the first `sealtrail reshard`).
    pub epoch: u32,
    /// From the second epoch on: where each tenant's chain ended in the epoch before.
    pub handover: Option<Arc<Handover>>,
    pub limits: Limits,
    /// A checkpoint is due after this many sealed events.
    pub checkpoint_every: usize,
    /// ...or after this long with anything new to cover.
    pub checkpoint_interval_ms: i64,
    /// A `(tenant, idempotency_key)` sealed within this long is rejected as a duplicate; zero
    /// turns it off.
    pub idempotency_window_ms: i64,
}

/// A raw record as read from the source partition.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// What the registry said about a schema id.
#[derive(Debug, Clone, Copy)]
pub enum SchemaLookup<'p> {
    Found(&'p EventReader),
    /// The registry does not know the id.
    Unknown,
    /// The id is known but its schema cannot be read as the contract.
    Incompatible(&'p str),
}

/// The outcome of handling one raw record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Sealed(Box<SealedEvent>),
    Rejected(Rejection),
    /// Sealed or rejected before a restart (or before the consumer was rewound): nothing to do.
    AlreadyHandled,
}

/// The per-call context: policy, tokenizer, clock.
#[derive(Debug)]
pub struct SealContext<'a> {
    pub policy: &'a Policy,
    pub tokenizer: &'a mut Tokenizer,
    pub now_ms: i64,
    pub key_id: &'a str,
}

/// Why a sealed partition cannot be continued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    #[error("checkpoint {number} of partition {partition} carries tenant heads that do not match its signed root")]
    HeadsMismatch { partition: i32, number: u64 },
    #[error(
        "sealed partition {partition} cannot be continued: {chain_break}; the sealed log has a gap, a fork or an altered event and needs investigation"
    )]
    Broken { partition: i32, chain_break: ChainBreak },
    #[error(
        "sealed partition {partition} was sealed in layout epoch {found}, this processor seals epoch {expected}; check RAW_TOPIC and SEALED_TOPIC against `sealtrail reshard --status`"
    )]
    WrongEpoch { partition: i32, expected: u32, found: u32 },
    #[error(
        "the raw topic has {now} partitions, but partition {partition} was sealed with {then}; adding partitions in place would move tenants to new chains: undo it, or move to new topics with `sealtrail reshard`"
    )]
    PartitionsChanged { partition: i32, then: u32, now: i32 },
    #[error("sealed partition {partition} is in layout epoch {epoch}, which has no handover from the epoch before")]
    NoHandover { partition: i32, epoch: u32 },
}

/// The sealing state of one partition.
#[derive(Debug)]
pub struct PartitionSealer {
    settings: SealerSettings,
    heads: HashMap<String, (u64, Digest)>,
    pending: Vec<Digest>,
    last_checkpoint: Option<(u64, Digest)>,
    last_checkpoint_at: i64,
    /// Every raw offset up to this one is handled; -1 before the first.
    handled_through: i64,
    /// Offsets beyond `handled_through` already handled before a restart.
    handled_ahead: BTreeSet<i64>,
    idempotency: IdempotencyWindow,
    /// The partition's epoch was closed by a layout change: nothing more is sealed here.
    closed: bool,
}

/// The first checkpoint's `prev_checkpoint_hash` of a partition in its epoch.
fn first_prev_hash(settings: &SealerSettings) -> Option<Digest> {
    checkpoint::first_prev_hash(
        settings.epoch,
        settings.partition,
        settings.handover.as_ref().map(|h| &h.link),
    )
}

impl PartitionSealer {
    /// A partition that has never been sealed.
    pub fn new(settings: SealerSettings, now_ms: i64) -> Self {
        Self {
            idempotency: IdempotencyWindow::new(settings.idempotency_window_ms),
            settings,
            heads: HashMap::default(),
            pending: Vec::new(),
            last_checkpoint: None,
            last_checkpoint_at: now_ms,
            handled_through: -1,
            handled_ahead: BTreeSet::new(),
            closed: false,
        }
    }

    /// Rebuilds the state from the last checkpoint of the sealed partition (if any), the sealed
    /// events after it, and the raw offsets of the DLQ records after its DLQ position. `recent`
    /// are the idempotency keys sealed within the window before the checkpoint, in order (see
    /// [`Self::idempotency_horizon`] and [`RememberedKey::of`]).
    pub fn recover(
        settings: SealerSettings,
        last_checkpoint: Option<&Checkpoint>,
        recent: &[RememberedKey],
        tail: &[SealedEvent],
        rejected_offsets: &[i64],
        now_ms: i64,
    ) -> Result<Self, RecoveryError> {
        let partition = settings.partition;
        if first_prev_hash(&settings).is_none() {
            return Err(RecoveryError::NoHandover {
                partition,
                epoch: settings.epoch,
            });
        }
        if let Some(found) = last_checkpoint {
            if found.epoch != settings.epoch {
                return Err(RecoveryError::WrongEpoch {
                    partition,
                    expected: settings.epoch,
                    found: found.epoch,
                });
            }
            if found.partitions != 0 && i64::from(found.partitions) != i64::from(settings.partition_count) {
                return Err(RecoveryError::PartitionsChanged {
                    partition,
                    then: found.partitions,
                    now: settings.partition_count,
                });
            }
        }
        let mut sealer = Self::new(settings, now_ms);
        for remembered in recent {
            sealer
                .idempotency
                .remember(&remembered.tenant_id, &remembered.key, remembered.original.clone());
        }
        if let Some(checkpoint) = last_checkpoint {
            if checkpoint::tenant_heads_root(&checkpoint.tenant_heads) != checkpoint.tenant_heads_root {
                return Err(RecoveryError::HeadsMismatch {
                    partition,
                    number: checkpoint.number,
                });
            }
            for head in &checkpoint.tenant_heads {
                sealer.heads.insert(head.tenant_id.clone(), (head.seq, head.hash));
            }
            sealer.last_checkpoint = Some((checkpoint.number, checkpoint.checkpoint_hash));
            sealer.handled_through = checkpoint.source_offset;
            sealer.closed = checkpoint.closes_epoch;
        }
        for event in tail {
            let tenant = &event.event.tenant_id;
            let (seq, head_hash) = sealer.next_link(tenant);
            let hash = check_link(tenant, seq - 1, &head_hash, event)
                .map_err(|chain_break| RecoveryError::Broken { partition, chain_break })?;
            sealer.set_head(tenant, seq, hash);
            sealer.pending.push(hash);
            sealer.mark_handled(event.source.offset);
            sealer.remember_sealed(event);
        }
        for offset in rejected_offsets {
            sealer.mark_handled(*offset);
        }
        Ok(sealer)
    }

    /// Where recovery starts reading sealed events back for the idempotency window (by sealing
    /// time), or `None` when deduplication is off.
    pub fn idempotency_horizon(&self, now_ms: i64) -> Option<i64> {
        self.idempotency.is_enabled().then(|| self.idempotency.horizon(now_ms))
    }

    fn remember_sealed(&mut self, event: &SealedEvent) {
        if let Some(remembered) = RememberedKey::of(event) {
            self.idempotency
                .remember(&remembered.tenant_id, &remembered.key, remembered.original);
        }
    }

    pub fn remembered_keys(&self) -> usize {
        self.idempotency.len()
    }

    /// The first raw offset to read.
    pub fn resume_offset(&self) -> i64 {
        self.handled_through + 1
    }

    /// Every raw offset up to this one is handled.
    pub fn handled_through(&self) -> i64 {
        self.handled_through
    }

    pub fn pending_entries(&self) -> usize {
        self.pending.len()
    }

    pub fn tenant_count(&self) -> usize {
        self.heads.len()
    }

    fn mark_handled(&mut self, offset: i64) {
        if offset > self.handled_through {
            self.handled_ahead.insert(offset);
        }
    }

    /// Moves the tenant's head; its id is copied only the first time the tenant is seen.
    fn set_head(&mut self, tenant: &str, seq: u64, hash: Digest) {
        match self.heads.get_mut(tenant) {
            Some(head) => *head = (seq, hash),
            None => {
                self.heads.insert(tenant.to_owned(), (seq, hash));
            }
        }
    }

    /// A tenant new to the partition continues where the previous epoch ended it, if it did.
    fn next_link(&self, tenant: &str) -> (u64, Digest) {
        self.heads
            .get(tenant)
            .copied()
            .or_else(|| self.settings.handover.as_ref().and_then(|h| h.head(tenant)))
            .map_or_else(|| (1, chain::genesis(tenant)), |(seq, hash)| (seq + 1, hash))
    }

    /// Whether a layout change closed the partition.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Closes the partition's epoch at the layout change read at `marker_offset`: returns the
    /// final checkpoint, covering everything before it, or `None` if this marker (or an earlier
    /// one) was handled already. The caller has every DLQ record acknowledged, as for
    /// [`Self::checkpoint`].
    pub fn close_epoch(
        &mut self,
        marker_offset: i64,
        signer: &CheckpointSigner,
        dlq_next_offset: i64,
        now_ms: i64,
    ) -> Option<Checkpoint> {
        let seen = marker_offset <= self.handled_through || self.handled_ahead.remove(&marker_offset);
        self.advance(marker_offset);
        if seen || self.closed {
            return None;
        }
        let mut last = self.checkpoint(signer, dlq_next_offset, now_ms);
        last.closes_epoch = true;
        signer.sign(&mut last);
        self.last_checkpoint = Some((last.number, last.checkpoint_hash));
        self.closed = true;
        Some(last)
    }

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

    fn advance(&mut self, offset: i64) {
        self.handled_through = self.handled_through.max(offset);
        while self
            .handled_ahead
            .first()
            .is_some_and(|first| *first <= self.handled_through)
        {
            self.handled_ahead.pop_first();
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

    /// Whether a checkpoint should be written now.
    pub fn checkpoint_due(&self, now_ms: i64, covered_through: i64) -> bool {
        if self.closed {
            return false;
        }
        if self.pending.len() >= self.settings.checkpoint_every {
            return true;
        }
        let new_coverage = !self.pending.is_empty() || self.handled_through > covered_through;
        new_coverage && now_ms - self.last_checkpoint_at >= self.settings.checkpoint_interval_ms
    }

    /// Makes and signs the next checkpoint, covering everything handled so far. The caller must
    /// have every DLQ record it produced acknowledged, and passes the next DLQ offset.
    pub fn checkpoint(&mut self, signer: &CheckpointSigner, dlq_next_offset: i64, now_ms: i64) -> Checkpoint {
        let mut heads: Vec<TenantHead> = self
            .heads
            .iter()
            .map(|(tenant, (seq, hash))| TenantHead {
                tenant_id: tenant.clone(),
                seq: *seq,
                hash: *hash,
            })
            .collect();
        heads.sort_unstable_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
        let (number, prev) = match self.last_checkpoint {
            Some((number, hash)) => (number + 1, hash),
            // `recover` refused a later epoch without its handover, and `new` is given one too.
            None => (1, first_prev_hash(&self.settings).unwrap_or_default()),
        };
        let mut made = Checkpoint {
            scheme: checkpoint::CHECKPOINT_SCHEME,
            partition: self.settings.partition,
            number,
            prev_checkpoint_hash: prev,
            entries_root: checkpoint::entries_root(&self.pending),
            entry_count: self.pending.len() as u64,
            tenant_heads_root: checkpoint::tenant_heads_root(&heads),
            tenant_count: heads.len() as u64,
            source_offset: self.handled_through,
            dlq_next_offset,
            created_at: now_ms,
            epoch: self.settings.epoch,
            partitions: u32::try_from(self.settings.partition_count).unwrap_or_default(),
            closes_epoch: false,
            key_id: String::new(),
            checkpoint_hash: Digest::default(),
            signature: Vec::new(),
            tenant_heads: heads,
        };
        signer.sign(&mut made);
        self.pending.clear();
        self.last_checkpoint = Some((number, made.checkpoint_hash));
        self.last_checkpoint_at = now_ms;
        made
    }
}

//! Sealing one partition: raw record in, sealed event or rejection out, and signed checkpoints.
//!
//! The state (tenant heads, entries since the last checkpoint, how far the raw partition is
//! handled) lives in memory only. It is rebuilt from the sealed partition itself with
//! [`PartitionSealer::recover`]: the last checkpoint plus the events after it, plus the DLQ records
//! after the checkpoint's DLQ position. Sealed records reach Kafka in the order they are made, so
//! whatever prefix of them survives a crash, recovery continues each chain exactly where it ends.

mod checkpoints;
mod recover;
mod seal;

pub use recover::RecoveryError;
pub use seal::{Prepared, prepare};

use std::collections::BTreeSet;
use std::sync::Arc;

use foldhash::HashMap;

use crate::avro::contract::EventReader;
use crate::chain;
use crate::checkpoint;
use crate::digest::Digest;
use crate::event::AuditEvent;
use crate::idempotency::{IdempotencyWindow, Original};
use crate::layout::Handover;
use crate::policy::Policy;
use crate::policy::RedactionMethod;
use crate::sealed::{Redaction, SealedEvent};
use crate::tokenize::Tokenizer;
use crate::validate::{Limits, Rejection};

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

    /// The raw offsets before `offset` that were never handled and that the consumer skipped
    /// (transaction markers, aborted records, records removed by retention). Each needs a
    /// `not_delivered` DLQ record before `offset` is handled, so the offset accounting holds.
    /// Empty for an offset already handled (a rewind) or the next one expected. After a restart,
    /// a skipped offset whose DLQ record was written before the crash is not repeated.
    pub fn undelivered_before(&self, offset: i64) -> Vec<i64> {
        if offset <= self.handled_through + 1 {
            return Vec::new();
        }
        (self.handled_through + 1..offset)
            .filter(|skipped| !self.handled_ahead.contains(skipped))
            .collect()
    }

    /// Whether a layout change closed the partition.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether everything handled lies at or before `handled_through`, as a checkpoint needs:
    /// its entries and DLQ position then account for exactly the raw offsets it claims. After a
    /// restart, records handled beyond a gap wait until the gap is handled again.
    pub fn can_checkpoint(&self) -> bool {
        self.handled_ahead.is_empty()
    }

    /// Marks `offset` handled, and every offset handled ahead that now follows without a gap.
    fn advance(&mut self, offset: i64) {
        self.handled_through = self.handled_through.max(offset);
        while let Some(first) = self.handled_ahead.first().copied()
            && first <= self.handled_through + 1
        {
            self.handled_through = self.handled_through.max(first);
            self.handled_ahead.pop_first();
        }
    }
}

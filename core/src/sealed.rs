//! What the sealed topic carries: sealed events and the checkpoints of their partition.

use crate::digest::Digest;
use crate::event::AuditEvent;

/// Sensitivity of an event, lowest first; an event takes the highest class found in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum DataClass {
    Public,
    #[default]
    Internal,
    Confidential,
    Restricted,
}

impl DataClass {
    /// In the order of the Avro enum's symbols.
    pub const ALL: [Self; 4] = [Self::Public, Self::Internal, Self::Confidential, Self::Restricted];

    pub fn symbol(self) -> &'static str {
        match self {
            Self::Public => "PUBLIC",
            Self::Internal => "INTERNAL",
            Self::Confidential => "CONFIDENTIAL",
            Self::Restricted => "RESTRICTED",
        }
    }

    pub fn from_symbol(symbol: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|class| class.symbol().eq_ignore_ascii_case(symbol))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Classification {
    pub category: String,
    pub data_class: DataClass,
    /// Sorted, without repeats.
    pub labels: Vec<String>,
    pub policy_version: String,
}

/// One redaction applied to the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redaction {
    pub path: String,
    pub label: String,
    pub method: String,
}

/// The event's link in its tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    pub scheme: u32,
    pub tenant_seq: u64,
    pub prev_hash: Digest,
    pub hash: Digest,
    pub key_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceCoordinates {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub schema_id: u32,
}

/// A redacted, classified event and its place in the tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEvent {
    pub event: AuditEvent,
    pub classification: Classification,
    pub redactions: Vec<Redaction>,
    pub seal: Seal,
    pub source: SourceCoordinates,
    pub sealed_at: i64,
}

/// Where a tenant's chain ends.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TenantHead {
    pub tenant_id: String,
    pub seq: u64,
    pub hash: Digest,
}

/// A signed checkpoint of a sealed partition (docs/integrity.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub scheme: u32,
    pub partition: i32,
    pub number: u64,
    pub prev_checkpoint_hash: Digest,
    pub entries_root: Digest,
    pub entry_count: u64,
    pub tenant_heads_root: Digest,
    pub tenant_count: u64,
    /// Every raw offset up to this one is sealed or in the DLQ; -1 when none is.
    pub source_offset: i64,
    pub dlq_next_offset: i64,
    pub created_at: i64,
    /// The partition layout epoch (scheme 2): 1 for a pipeline's first topics, then one more for
    /// every `sealtrail reshard`. Scheme 1 checkpoints were all epoch 1.
    pub epoch: u32,
    /// The epoch's raw (and sealed) partition count, which placed every tenant (scheme 2; 0 in
    /// scheme 1 checkpoints, which did not record it).
    pub partitions: u32,
    /// The partition's last checkpoint of its epoch: nothing more is sealed in the partition.
    pub closes_epoch: bool,
    pub key_id: String,
    pub checkpoint_hash: Digest,
    pub signature: Vec<u8>,
    /// Sorted by tenant id; checked against `tenant_heads_root`.
    pub tenant_heads: Vec<TenantHead>,
}

/// A record of the sealed topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealedRecord {
    Event(Box<SealedEvent>),
    Checkpoint(Box<Checkpoint>),
}

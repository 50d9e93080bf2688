//! Following a sealed partition as it grows: every event's link in its tenant's chain, and every
//! checkpoint's signature, link, entries root, tenant heads and offset accounting, as they arrive.
//! `sealtrail monitor` runs one per sealed partition, reading the sealed topic only, so what it
//! verifies does not depend on ClickHouse.
//!
//! A problem is reported once and the follower carries on from what the record claims (a broken
//! link from the event's own hash, a bad checkpoint from its signed state), so one incident does
//! not hide the next or repeat for every record after it.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::chain;
use crate::checkpoint::{TrustedKey, tenant_heads_root};
use crate::digest::Digest;
use crate::layout::Handover;
use crate::sealed::{Checkpoint, SealedEvent, TenantHead};
use crate::verify::{CheckpointChainProblem, check_accounting, check_link, verify_checkpoints, verify_entries};

/// What kind of break a follower found; the monitor's metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BreakClass {
    /// An event does not link to its tenant's chain (missing, reordered, altered, forked).
    Chain,
    /// A checkpoint's signature, key, numbering, link or layout.
    Checkpoint,
    /// A checkpoint's entries root or count does not match the events before it.
    Entries,
    /// A checkpoint's tenant heads do not match the chains.
    Heads,
    /// A checkpoint does not account for every raw offset.
    Accounting,
}

impl BreakClass {
    pub fn label(self) -> &'static str {
        match self {
            Self::Chain => "chain",
            Self::Checkpoint => "checkpoint",
            Self::Entries => "entries_root",
            Self::Heads => "tenant_heads",
            Self::Accounting => "accounting",
        }
    }
}

/// A break found while following a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowBreak {
    pub class: BreakClass,
    /// The tenant whose chain it concerns, if one does.
    pub tenant: Option<String>,
    pub detail: String,
}

impl FollowBreak {
    fn of_checkpoint(problem: &CheckpointChainProblem) -> Self {
        let class = match problem {
            CheckpointChainProblem::EntriesRoot { .. } => BreakClass::Entries,
            CheckpointChainProblem::Accounting { .. } => BreakClass::Accounting,
            CheckpointChainProblem::Checkpoint(crate::checkpoint::CheckpointProblem::HeadsMismatch { .. }) => {
                BreakClass::Heads
            }
            _ => BreakClass::Checkpoint,
        };
        Self {
            class,
            tenant: None,
            detail: problem.to_string(),
        }
    }
}

/// A checkpoint the follower verified, and what it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    pub number: u64,
    pub entry_count: u64,
    pub created_at: i64,
    pub closes_epoch: bool,
}

/// The verification state of one sealed partition of one layout epoch.
#[derive(Debug)]
pub struct PartitionFollower {
    partition: i32,
    trusted: Vec<TrustedKey>,
    handover: Option<Arc<Handover>>,
    heads: BTreeMap<String, (u64, Digest)>,
    pending: Vec<Digest>,
    previous: Option<Checkpoint>,
    /// Entries covered by the checkpoints so far, for the offset accounting.
    covered: u64,
}

impl PartitionFollower {
    /// From the partition's first record. A later epoch starts from its `handover`.
    pub fn new(partition: i32, trusted: Vec<TrustedKey>, handover: Option<Arc<Handover>>) -> Self {
        Self {
            partition,
            trusted,
            handover,
            heads: BTreeMap::new(),
            pending: Vec::new(),
            previous: None,
            covered: 0,
        }
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The last checkpoint read (verified, or adopted after a break).
    pub fn last_checkpoint(&self) -> Option<&Checkpoint> {
        self.previous.as_ref()
    }

    /// Events read since the last checkpoint.
    pub fn uncovered(&self) -> usize {
        self.pending.len()
    }

    /// Checks the next event of the partition against its tenant's chain.
    pub fn event(&mut self, event: &SealedEvent) -> Result<(), FollowBreak> {
        let tenant = event.event.tenant_id.as_str();
        let (head_seq, head_hash) = self
            .heads
            .get(tenant)
            .copied()
            .or_else(|| self.handover.as_ref().and_then(|h| h.head(tenant)))
            .unwrap_or_else(|| (0, chain::genesis(tenant)));
        let linked = check_link(tenant, head_seq, &head_hash, event);
        // Carry on from the event's own claim, so the next event is judged on its own.
        self.heads
            .insert(tenant.to_owned(), (event.seal.tenant_seq, event.seal.hash));
        self.pending.push(event.seal.hash);
        linked.map(|_| ()).map_err(|chain_break| FollowBreak {
            class: BreakClass::Chain,
            tenant: Some(tenant.to_owned()),
            detail: chain_break.to_string(),
        })
    }

    /// Checks the next checkpoint of the partition: signature, link, entries root, tenant heads,
    /// accounting. Either way, what follows is judged from this checkpoint on.
    pub fn checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<VerifiedCheckpoint, Vec<FollowBreak>> {
        let mut breaks = Vec::new();
        let link = self.handover.as_ref().map(|h| h.link);
        if let Err(problem) = verify_checkpoints(
            std::slice::from_ref(checkpoint),
            &self.trusted,
            self.previous.as_ref(),
            link.as_ref(),
        ) {
            breaks.push(FollowBreak::of_checkpoint(&problem));
        }
        // verify_checkpoints checks the accounting itself only from the first checkpoint.
        if self.previous.is_some()
            && let Err(problem) = check_accounting(checkpoint, self.covered + checkpoint.entry_count)
        {
            breaks.push(FollowBreak::of_checkpoint(&problem));
        }
        if let Err(problem) = verify_entries(checkpoint, &self.pending) {
            breaks.push(FollowBreak::of_checkpoint(&problem));
        }
        breaks.extend(self.check_heads(checkpoint));
        self.adopt(checkpoint);
        if breaks.is_empty() {
            Ok(VerifiedCheckpoint {
                number: checkpoint.number,
                entry_count: checkpoint.entry_count,
                created_at: checkpoint.created_at,
                closes_epoch: checkpoint.closes_epoch,
            })
        } else {
            Err(breaks)
        }
    }

    /// The checkpoint's heads must be exactly the chains' heads in this partition.
    fn check_heads(&self, checkpoint: &Checkpoint) -> Vec<FollowBreak> {
        let mut breaks = Vec::new();
        if tenant_heads_root(&checkpoint.tenant_heads) != checkpoint.tenant_heads_root {
            breaks.push(FollowBreak {
                class: BreakClass::Heads,
                tenant: None,
                detail: format!(
                    "partition {}: checkpoint {} carries tenant heads that do not match its signed root",
                    self.partition, checkpoint.number
                ),
            });
            return breaks;
        }
        let signed: BTreeMap<&str, (u64, Digest)> = checkpoint
            .tenant_heads
            .iter()
            .map(|TenantHead { tenant_id, seq, hash }| (tenant_id.as_str(), (*seq, *hash)))
            .collect();
        let tenants: std::collections::BTreeSet<&str> = signed
            .keys()
            .copied()
            .chain(self.heads.keys().map(String::as_str))
            .collect();
        for tenant in tenants {
            let chain = self.heads.get(tenant).copied();
            let claim = signed.get(tenant).copied();
            if chain != claim {
                let show = |head: Option<(u64, Digest)>| {
                    head.map_or_else(|| "no head".to_owned(), |(seq, hash)| format!("seq {seq} hash {hash}"))
                };
                breaks.push(FollowBreak {
                    class: BreakClass::Heads,
                    tenant: Some(tenant.to_owned()),
                    detail: format!(
                        "partition {}: checkpoint {} signs tenant {tenant} at {}, its chain is at {}",
                        self.partition,
                        checkpoint.number,
                        show(claim),
                        show(chain)
                    ),
                });
            }
        }
        breaks
    }

    /// Continues from `checkpoint` as signed.
    fn adopt(&mut self, checkpoint: &Checkpoint) {
        let closing = i64::from(checkpoint.closes_epoch);
        let accounted = checkpoint.source_offset + 1 - closing - checkpoint.dlq_next_offset;
        self.covered = u64::try_from(accounted).unwrap_or(self.covered + checkpoint.entry_count);
        self.heads = checkpoint
            .tenant_heads
            .iter()
            .map(|head| (head.tenant_id.clone(), (head.seq, head.hash)))
            .collect();
        self.pending.clear();
        self.previous = Some(checkpoint.clone());
    }
}

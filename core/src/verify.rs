//! Verification of sealed data: a tenant's chain, a partition's checkpoints, and the link
//! between them. Used by `sealtrail verify` on data read back from ClickHouse, and by anyone
//! holding an export.

use std::fmt;

use crate::canonical;
use crate::chain;
use crate::checkpoint::{self, CheckpointProblem, TrustedKey};
use crate::digest::Digest;
use crate::sealed::{Checkpoint, SealedEvent};

/// The first place where a chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub tenant: String,
    /// The sequence the verifier expected at this point.
    pub seq: u64,
    pub problem: BreakKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakKind {
    /// The next event has a higher sequence: events are missing.
    Missing { found_seq: u64 },
    /// The next event has a lower or repeated sequence: an event was inserted or moved.
    OutOfOrder { found_seq: u64 },
    /// The event does not link to its predecessor.
    PrevMismatch { expected: Digest, found: Digest },
    /// The event's content does not hash to its recorded hash: it was altered.
    HashMismatch { expected: Digest, found: Digest },
    /// The event belongs to another tenant.
    WrongTenant { found: String },
    /// A signed checkpoint says the chain ended here with another hash.
    CheckpointMismatch {
        checkpoint: u64,
        expected: Digest,
        found: Digest,
    },
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (tenant, seq) = (&self.tenant, self.seq);
        match &self.problem {
            BreakKind::Missing { found_seq } => {
                write!(
                    f,
                    "tenant {tenant}: expected sequence {seq}, found {found_seq} (events {seq}..{} are missing)",
                    found_seq - 1
                )
            }
            BreakKind::OutOfOrder { found_seq } => {
                write!(
                    f,
                    "tenant {tenant}: expected sequence {seq}, found {found_seq} (an event was inserted or reordered)"
                )
            }
            BreakKind::PrevMismatch { expected, found } => {
                write!(
                    f,
                    "tenant {tenant} sequence {seq}: prev_hash expected {expected}, found {found}"
                )
            }
            BreakKind::HashMismatch { expected, found } => {
                write!(
                    f,
                    "tenant {tenant} sequence {seq}: content hashes to {expected}, recorded hash is {found} (the event was altered)"
                )
            }
            BreakKind::WrongTenant { found } => {
                write!(f, "tenant {tenant} sequence {seq}: the event belongs to tenant {found}")
            }
            BreakKind::CheckpointMismatch {
                checkpoint,
                expected,
                found,
            } => write!(
                f,
                "tenant {tenant} sequence {seq}: signed checkpoint {checkpoint} records hash {expected}, the chain has {found}"
            ),
        }
    }
}

/// Where verification of a chain starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainStart {
    /// From the tenant's first event.
    Genesis,
    /// After an event already trusted (for example the head of an earlier verified range).
    After { seq: u64, hash: Digest },
}

/// The end of a verified chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedChain {
    pub events: u64,
    pub head_seq: u64,
    pub head_hash: Digest,
}

/// Checks that `event` is the link after (`head_seq`, `head_hash`) in `tenant`'s chain, and
/// returns its hash. The one definition of a valid link: verification and the seal processor's
/// recovery both use it.
pub fn check_link(tenant: &str, head_seq: u64, head_hash: &Digest, event: &SealedEvent) -> Result<Digest, ChainBreak> {
    let expected_seq = head_seq + 1;
    let broken = |problem: BreakKind| ChainBreak {
        tenant: tenant.to_owned(),
        seq: expected_seq,
        problem,
    };
    if event.event.tenant_id != tenant {
        return Err(broken(BreakKind::WrongTenant {
            found: event.event.tenant_id.clone(),
        }));
    }
    let found_seq = event.seal.tenant_seq;
    if found_seq > expected_seq {
        return Err(broken(BreakKind::Missing { found_seq }));
    }
    if found_seq < expected_seq {
        return Err(broken(BreakKind::OutOfOrder { found_seq }));
    }
    if event.seal.prev_hash != *head_hash {
        return Err(broken(BreakKind::PrevMismatch {
            expected: *head_hash,
            found: event.seal.prev_hash,
        }));
    }
    let canonical = canonical::entry(
        tenant,
        expected_seq,
        &event.event,
        &event.classification,
        &event.redactions,
    );
    let computed = chain::entry_hash(head_hash, &canonical);
    if computed != event.seal.hash {
        return Err(broken(BreakKind::HashMismatch {
            expected: computed,
            found: event.seal.hash,
        }));
    }
    Ok(computed)
}

/// Checks that a purged event, of which only its tombstone (`seq`, `prev_hash`, `hash`) remains, is
/// the link after (`head_seq`, `head_hash`), and returns its hash. Its content is gone, so its hash
/// cannot be recomputed; the next event's link and the checkpoint entries roots still vouch for it.
pub fn check_tombstone_link(
    tenant: &str,
    head_seq: u64,
    head_hash: &Digest,
    seq: u64,
    prev_hash: &Digest,
    hash: Digest,
) -> Result<Digest, ChainBreak> {
    let expected_seq = head_seq + 1;
    let broken = |problem: BreakKind| ChainBreak {
        tenant: tenant.to_owned(),
        seq: expected_seq,
        problem,
    };
    if seq > expected_seq {
        return Err(broken(BreakKind::Missing { found_seq: seq }));
    }
    if seq < expected_seq {
        return Err(broken(BreakKind::OutOfOrder { found_seq: seq }));
    }
    if prev_hash != head_hash {
        return Err(broken(BreakKind::PrevMismatch {
            expected: *head_hash,
            found: *prev_hash,
        }));
    }
    Ok(hash)
}

/// Verifies a tenant's events, given in the order of their sequence numbers as stored.
pub fn verify_chain(tenant: &str, events: &[SealedEvent], start: ChainStart) -> Result<VerifiedChain, ChainBreak> {
    let (mut head_seq, mut head_hash) = match start {
        ChainStart::Genesis => (0, chain::genesis(tenant)),
        ChainStart::After { seq, hash } => (seq, hash),
    };
    for event in events {
        head_hash = check_link(tenant, head_seq, &head_hash, event)?;
        head_seq += 1;
    }
    Ok(VerifiedChain {
        events: events.len() as u64,
        head_seq,
        head_hash,
    })
}

/// What is wrong with a partition's sequence of checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointChainProblem {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointProblem),
    #[error(
        "partition {partition}: checkpoint {found} follows checkpoint {previous} (checkpoints are missing or repeated)"
    )]
    Numbering { partition: i32, previous: u64, found: u64 },
    #[error("partition {partition}: checkpoint {number} does not link to the checkpoint before it")]
    Link { partition: i32, number: u64 },
    #[error("partition {partition}: checkpoint {number} breaks the partition layout: {reason}")]
    Layout {
        partition: i32,
        number: u64,
        reason: String,
    },
    #[error(
        "partition {partition}: checkpoint {number} accounts for {sealed} sealed records and {dlq} DLQ records, but raw \
         offsets 0..={source_offset} need {expected}{closing}: raw records were dropped or invented without a trace"
    )]
    Accounting {
        partition: i32,
        number: u64,
        source_offset: i64,
        expected: i64,
        sealed: u64,
        dlq: i64,
        closing: &'static str,
    },
    #[error(
        "partition {partition}: checkpoint {number} covers {count} entries whose Merkle root is {computed}, not the signed {signed}"
    )]
    EntriesRoot {
        partition: i32,
        number: u64,
        count: usize,
        computed: Digest,
        signed: Digest,
    },
}

/// Verifies the signatures of one partition's checkpoints of one layout epoch (in number order)
/// and their links. The first must be number 1 unless `after` gives the checkpoint before it; the
/// first of an epoch after the first links to `epoch_link` (see [`checkpoint::epoch_link`]).
/// Nothing may follow a checkpoint that closes the epoch. Given from number 1 (`after` is `None`),
/// the offset accounting of every checkpoint is checked too (see [`check_accounting`]).
pub fn verify_checkpoints(
    checkpoints: &[Checkpoint],
    trusted: &[TrustedKey],
    after: Option<&Checkpoint>,
    epoch_link: Option<&Digest>,
) -> Result<(), CheckpointChainProblem> {
    let mut previous: Option<&Checkpoint> = after;
    let mut sealed_so_far = after.is_none().then_some(0_u64);
    for current in checkpoints {
        checkpoint::verify_checkpoint(current, trusted)?;
        if let Some(sealed) = sealed_so_far.as_mut() {
            *sealed += current.entry_count;
            check_accounting(current, *sealed)?;
        }
        let partition = current.partition;
        let (expected_number, expected_prev) = if let Some(p) = previous {
            check_same_layout(p, current)?;
            (p.number + 1, p.checkpoint_hash)
        } else {
            let first = checkpoint::first_prev_hash(current.epoch, partition, epoch_link).ok_or_else(|| {
                CheckpointChainProblem::Layout {
                    partition,
                    number: current.number,
                    reason: format!(
                        "it starts layout epoch {} and the final checkpoints of the epoch before are not known",
                        current.epoch
                    ),
                }
            })?;
            (1, first)
        };
        if current.number != expected_number {
            return Err(CheckpointChainProblem::Numbering {
                partition,
                previous: expected_number - 1,
                found: current.number,
            });
        }
        if current.prev_checkpoint_hash != expected_prev {
            return Err(CheckpointChainProblem::Link {
                partition,
                number: current.number,
            });
        }
        previous = Some(current);
    }
    Ok(())
}

/// Every raw offset of a partition's epoch up to a checkpoint's `source_offset` is sealed (counted
/// by the `entry_count`s of its checkpoints so far, `sealed`) or has a DLQ record (the DLQ
/// partition's `dlq_next_offset`); the one exception is the layout change a closing checkpoint
/// ends at, which is neither.
pub fn check_accounting(checkpoint: &Checkpoint, sealed: u64) -> Result<(), CheckpointChainProblem> {
    let expected = checkpoint.source_offset + 1 - i64::from(checkpoint.closes_epoch);
    let counted = i64::try_from(sealed)
        .ok()
        .and_then(|sealed| sealed.checked_add(checkpoint.dlq_next_offset));
    if counted == Some(expected) {
        return Ok(());
    }
    Err(CheckpointChainProblem::Accounting {
        partition: checkpoint.partition,
        number: checkpoint.number,
        source_offset: checkpoint.source_offset,
        expected,
        sealed,
        dlq: checkpoint.dlq_next_offset,
        closing: if checkpoint.closes_epoch {
            " (besides the layout change that closed the epoch)"
        } else {
            ""
        },
    })
}

/// A checkpoint continues the one before it only in the same partition and layout, and never
/// after the one that closed the epoch.
fn check_same_layout(before: &Checkpoint, current: &Checkpoint) -> Result<(), CheckpointChainProblem> {
    let broken = |reason: String| CheckpointChainProblem::Layout {
        partition: current.partition,
        number: current.number,
        reason,
    };
    if before.closes_epoch || before.epoch != current.epoch || before.partition != current.partition {
        return Err(broken(format!(
            "it follows checkpoint {} of partition {} in epoch {}{}",
            before.number,
            before.partition,
            before.epoch,
            if before.closes_epoch {
                ", which closed the epoch"
            } else {
                ""
            }
        )));
    }
    if before.partitions != 0 && current.partitions != before.partitions {
        return Err(broken(format!(
            "it says the layout has {} partitions, the checkpoint before it {}",
            current.partitions, before.partitions
        )));
    }
    Ok(())
}

/// Checks a checkpoint's entries root against the hashes of the events between it and the
/// checkpoint before it, in partition order.
pub fn verify_entries(checkpoint: &Checkpoint, entry_hashes: &[Digest]) -> Result<(), CheckpointChainProblem> {
    let computed = checkpoint::entries_root(entry_hashes);
    if computed != checkpoint.entries_root || entry_hashes.len() as u64 != checkpoint.entry_count {
        return Err(CheckpointChainProblem::EntriesRoot {
            partition: checkpoint.partition,
            number: checkpoint.number,
            count: entry_hashes.len(),
            computed,
            signed: checkpoint.entries_root,
        });
    }
    Ok(())
}

/// Checks that every head a checkpoint records for `tenant` matches the chain's event at that
/// sequence. `hash_at` gives the verified chain's hash at a sequence, if the chain reaches it.
pub fn verify_heads(
    tenant: &str,
    checkpoints: &[Checkpoint],
    hash_at: impl Fn(u64) -> Option<Digest>,
) -> Result<(), ChainBreak> {
    for checkpoint in checkpoints {
        for head in checkpoint.tenant_heads.iter().filter(|h| h.tenant_id == tenant) {
            match hash_at(head.seq) {
                Some(found) if found == head.hash => {}
                Some(found) => {
                    return Err(ChainBreak {
                        tenant: tenant.to_owned(),
                        seq: head.seq,
                        problem: BreakKind::CheckpointMismatch {
                            checkpoint: checkpoint.number,
                            expected: head.hash,
                            found,
                        },
                    });
                }
                None => {
                    return Err(ChainBreak {
                        tenant: tenant.to_owned(),
                        seq: head.seq,
                        problem: BreakKind::Missing {
                            found_seq: head.seq + 1,
                        },
                    });
                }
            }
        }
    }
    Ok(())
}

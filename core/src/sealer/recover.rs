//! Recovering a partition's sealing state from what the sealed partition holds.

use super::{PartitionSealer, RememberedKey, SealerSettings, first_prev_hash};
use crate::checkpoint;
use crate::sealed::{Checkpoint, SealedEvent};
use crate::verify::{ChainBreak, check_link};

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

impl PartitionSealer {
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
        sealer.advance(sealer.handled_through);
        Ok(sealer)
    }
}

//! Rewinding (or advancing) a consumer group's offsets to replay, with the selectors of Kafka's
//! `kafka-consumer-groups --reset-offsets`: planned first (a dry run shows the plan), applied
//! only to a group without live members, and read back to confirm.

use crate::{GroupOffsets, KafkaError, Members, PartitionOffsets, ResetTarget, planned_offset};

/// Why a reset was not planned or applied.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("topic {topic} has no partition {partition} (it has {count})")]
    NoSuchPartition {
        topic: String,
        partition: i32,
        count: usize,
    },
    #[error(
        "group {group} has {live} live members; stop them (their offsets would overwrite the reset), then run again"
    )]
    LiveMembers { group: String, live: usize },
    #[error("partition {partition}: committed {committed:?} after the reset, not {wanted}")]
    NotHeld {
        partition: i32,
        committed: Option<i64>,
        wanted: i64,
    },
}

/// Each partition as it stands, and the offset the reset moves it to.
#[derive(Debug, Clone)]
pub struct ResetPlan {
    pub topic: String,
    pub target: ResetTarget,
    pub moves: Vec<(PartitionOffsets, i64)>,
}

/// A reset applied; `unknown_members` says why the broker could not tell whether the group had
/// live members (they would overwrite the reset), when it could not.
#[derive(Debug, Clone)]
pub struct ResetApplied {
    pub partitions: usize,
    pub unknown_members: Option<String>,
}

impl GroupOffsets {
    /// Where `target` moves `partitions` of `topic` (every partition when `None`).
    pub fn plan_reset(
        &self,
        topic: &str,
        partitions: Option<&[i32]>,
        target: ResetTarget,
    ) -> Result<ResetPlan, ResetError> {
        let all = self.describe(topic, None)?;
        if let Some(wanted) = partitions
            && let Some(missing) = wanted.iter().find(|p| !all.iter().any(|row| row.partition == **p))
        {
            return Err(ResetError::NoSuchPartition {
                topic: topic.to_owned(),
                partition: *missing,
                count: all.len(),
            });
        }
        let before: Vec<PartitionOffsets> = all
            .into_iter()
            .filter(|row| partitions.is_none_or(|wanted| wanted.contains(&row.partition)))
            .collect();
        let by_time = match target {
            ResetTarget::Datetime(at_ms) => {
                let numbers: Vec<i32> = before.iter().map(|row| row.partition).collect();
                self.offsets_for_time(topic, &numbers, at_ms)?
            }
            _ => Vec::new(),
        };
        let moves = before
            .into_iter()
            .map(|row| {
                let found = by_time
                    .iter()
                    .find(|(p, _)| *p == row.partition)
                    .and_then(|(_, offset)| *offset);
                let new = planned_offset(&row, target, found);
                (row, new)
            })
            .collect();
        Ok(ResetPlan {
            topic: topic.to_owned(),
            target,
            moves,
        })
    }

    /// Commits `plan` for a group without live members, then reads the offsets back.
    pub fn apply_reset(&self, plan: &ResetPlan) -> Result<ResetApplied, ResetError> {
        let unknown_members = match self.members() {
            Members::Known(0) => None,
            Members::Known(live) => {
                return Err(ResetError::LiveMembers {
                    group: self.group().to_owned(),
                    live,
                });
            }
            Members::Unknown(why) => Some(why),
        };
        let offsets: Vec<(i32, i64)> = plan.moves.iter().map(|(row, new)| (row.partition, *new)).collect();
        self.commit(&plan.topic, &offsets)?;
        let partitions: Vec<i32> = offsets.iter().map(|(partition, _)| *partition).collect();
        let after = self.describe(&plan.topic, Some(&partitions))?;
        for (row, (partition, wanted)) in after.iter().zip(&offsets) {
            if row.committed != Some(*wanted) {
                return Err(ResetError::NotHeld {
                    partition: *partition,
                    committed: row.committed,
                    wanted: *wanted,
                });
            }
        }
        Ok(ResetApplied {
            partitions: offsets.len(),
            unknown_members,
        })
    }
}

//! A consumer group's committed offsets, read and rewound without joining the group: `OffsetFetch`,
//! `ListOffsets` (by position and by time) and `OffsetCommit`, which Tansu and Apache Kafka both serve.
//! (Tansu cannot list or describe groups on SQLite storage, so whether a group has live members is
//! known only where the broker can tell.)

use crate::KafkaContext;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError as ClientError;
use rdkafka::{Offset, TopicPartitionList};

use crate::{KafkaError, KafkaSettings};

/// One partition as a group sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub topic: String,
    pub partition: i32,
    /// The group's committed offset (the next record it will read), if it committed one.
    pub committed: Option<i64>,
    /// The first offset still stored.
    pub earliest: i64,
    /// The offset the next record will get.
    pub latest: i64,
}

impl PartitionOffsets {
    /// Records the group has not read yet (from the earliest stored when it never committed).
    pub fn lag(&self) -> i64 {
        self.latest
            - self
                .committed
                .unwrap_or(self.earliest)
                .clamp(self.earliest, self.latest)
    }
}

/// Where to move a group's offsets, as `kafka-consumer-groups --reset-offsets` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTarget {
    Earliest,
    Latest,
    /// The first record whose timestamp is at or after this (Unix milliseconds); the end when
    /// none is.
    Datetime(i64),
    Offset(i64),
    ShiftBy(i64),
}

/// The offset `target` means for a partition, kept within what the partition stores. `by_time`
/// is what `ListOffsets` answered for a [`ResetTarget::Datetime`] (`None`: no record that late).
pub fn planned_offset(current: &PartitionOffsets, target: ResetTarget, by_time: Option<i64>) -> i64 {
    let wanted = match target {
        ResetTarget::Earliest => current.earliest,
        ResetTarget::Latest => current.latest,
        ResetTarget::Datetime(_) => by_time.unwrap_or(current.latest),
        ResetTarget::Offset(offset) => offset,
        ResetTarget::ShiftBy(shift) => current.committed.unwrap_or(current.earliest).saturating_add(shift),
    };
    wanted.clamp(current.earliest, current.latest)
}

/// Whether a group has live members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Members {
    Known(usize),
    /// The broker could not say (why).
    Unknown(String),
}

/// Reads and moves one group's offsets; never joins the group.
pub struct GroupOffsets {
    consumer: BaseConsumer<KafkaContext>,
    group: String,
    timeout: Duration,
}

impl std::fmt::Debug for GroupOffsets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupOffsets")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

fn failed(topic: &str) -> impl Fn(ClientError) -> KafkaError {
    let topic = topic.to_owned();
    move |source| KafkaError::Read {
        topic: topic.clone(),
        source,
    }
}

impl GroupOffsets {
    pub fn new(settings: &KafkaSettings, group: &str, timeout: Duration) -> Result<Self, KafkaError> {
        let consumer = settings
            .create(&settings.consumer(group))
            .map_err(|source| KafkaError::Client {
                bootstrap: settings.bootstrap.clone(),
                source,
            })?;
        Ok(Self {
            consumer,
            group: group.to_owned(),
            timeout,
        })
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// The partitions of `topic` (all, or those listed), with the group's committed offsets.
    pub fn describe(&self, topic: &str, only: Option<&[i32]>) -> Result<Vec<PartitionOffsets>, KafkaError> {
        let metadata = self
            .consumer
            .fetch_metadata(Some(topic), self.timeout)
            .map_err(failed(topic))?;
        let mut partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(rdkafka::metadata::MetadataPartition::id))
            .filter(|p| only.is_none_or(|only| only.contains(p)))
            .collect();
        partitions.sort_unstable();
        if partitions.is_empty() {
            return Err(KafkaError::UnknownTopic {
                topic: topic.to_owned(),
            });
        }
        let mut wanted = TopicPartitionList::new();
        for partition in &partitions {
            wanted.add_partition(topic, *partition);
        }
        let committed = self
            .consumer
            .committed_offsets(wanted, self.timeout)
            .map_err(failed(topic))?;
        partitions
            .into_iter()
            .map(|partition| {
                let (earliest, latest) = self
                    .consumer
                    .fetch_watermarks(topic, partition, self.timeout)
                    .map_err(failed(topic))?;
                let committed = committed
                    .find_partition(topic, partition)
                    .and_then(|element| match element.offset() {
                        Offset::Offset(offset) => Some(offset),
                        _ => None,
                    });
                Ok(PartitionOffsets {
                    topic: topic.to_owned(),
                    partition,
                    committed,
                    earliest,
                    latest,
                })
            })
            .collect()
    }

    /// `ListOffsets` by time: per partition, the first offset whose record timestamp is at or after
    /// `at_ms`, or `None` when no record is that late.
    pub fn offsets_for_time(
        &self,
        topic: &str,
        partitions: &[i32],
        at_ms: i64,
    ) -> Result<Vec<(i32, Option<i64>)>, KafkaError> {
        let mut wanted = TopicPartitionList::new();
        for partition in partitions {
            wanted
                .add_partition_offset(topic, *partition, Offset::Offset(at_ms))
                .map_err(failed(topic))?;
        }
        let found = self
            .consumer
            .offsets_for_times(wanted, self.timeout)
            .map_err(failed(topic))?;
        Ok(partitions
            .iter()
            .map(|partition| {
                let offset = found
                    .find_partition(topic, *partition)
                    .and_then(|element| match element.offset() {
                        Offset::Offset(offset) if offset >= 0 => Some(offset),
                        _ => None,
                    });
                (*partition, offset)
            })
            .collect())
    }

    /// Whether the group has live members, where the broker can tell (`ListGroups`/`DescribeGroups`).
    pub fn members(&self) -> Members {
        match self
            .consumer
            .fetch_group_list(Some(&self.group), Duration::from_secs(5))
        {
            Ok(list) => Members::Known(
                list.groups()
                    .iter()
                    .filter(|g| g.name() == self.group)
                    .map(|g| g.members().len())
                    .sum(),
            ),
            Err(error) => Members::Unknown(error.to_string()),
        }
    }

    /// Commits `offsets` for the group, as a member-less (simple) commit.
    pub fn commit(&self, topic: &str, offsets: &[(i32, i64)]) -> Result<(), KafkaError> {
        let mut list = TopicPartitionList::new();
        for (partition, offset) in offsets {
            list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .map_err(failed(topic))?;
        }
        self.consumer.commit(&list, CommitMode::Sync).map_err(failed(topic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(committed: Option<i64>) -> PartitionOffsets {
        PartitionOffsets {
            topic: "t".to_owned(),
            partition: 0,
            committed,
            earliest: 10,
            latest: 100,
        }
    }

    #[test]
    fn targets_land_inside_what_the_partition_stores() {
        let plan = |committed, target, by_time| planned_offset(&at(committed), target, by_time);
        assert_eq!(plan(Some(50), ResetTarget::Earliest, None), 10);
        assert_eq!(plan(Some(50), ResetTarget::Latest, None), 100);
        assert_eq!(plan(Some(50), ResetTarget::Offset(5), None), 10);
        assert_eq!(plan(Some(50), ResetTarget::Offset(500), None), 100);
        assert_eq!(plan(Some(50), ResetTarget::ShiftBy(-20), None), 30);
        assert_eq!(plan(Some(50), ResetTarget::ShiftBy(-80), None), 10);
        assert_eq!(plan(None, ResetTarget::ShiftBy(5), None), 15);
        assert_eq!(plan(Some(50), ResetTarget::Datetime(0), Some(42)), 42);
        assert_eq!(
            plan(Some(50), ResetTarget::Datetime(0), None),
            100,
            "nothing that late: the end"
        );
    }

    #[test]
    fn lag_counts_from_the_committed_offset() {
        assert_eq!(at(Some(60)).lag(), 40);
        assert_eq!(at(None).lag(), 90);
        assert_eq!(
            at(Some(3)).lag(),
            90,
            "a committed offset below what is stored reads from the earliest"
        );
    }
}

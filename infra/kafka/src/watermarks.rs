//! High watermarks from a client of their own, for lag gauges that tell the truth.
//!
//! librdkafka sends a client's requests to a broker over one connection, and a broker answers
//! them in order, so a `ListOffsets` asked on a consumer's own handle waits behind that
//! consumer's long fetch: exactly when fetches stall, the lag could not be read, and a gauge fed
//! from it showed 0. This client never fetches, so its answers come as fast as the broker gives
//! them, and a partition it cannot answer for keeps its last known high watermark.

use crate::KafkaContext;
use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use sealtrail_runtime::driver::{GroupLag, PartitionLag, PartitionStanding};

use crate::{KafkaError, KafkaSettings};

pub struct WatermarkProbe {
    consumer: BaseConsumer<KafkaContext>,
    timeout: Duration,
    last_known: HashMap<(String, i32), i64>,
}

impl std::fmt::Debug for WatermarkProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatermarkProbe")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl WatermarkProbe {
    pub fn new(settings: &KafkaSettings, timeout: Duration) -> Result<Self, KafkaError> {
        let consumer = settings
            .create(&settings.reader())
            .map_err(|source| KafkaError::Client {
                bootstrap: settings.bootstrap.clone(),
                source,
            })?;
        Ok(Self {
            consumer,
            timeout,
            last_known: HashMap::new(),
        })
    }

    /// The first offset still stored and the next offset of `partition`, if the broker answers.
    pub fn watermarks(&self, topic: &str, partition: i32) -> Option<(i64, i64)> {
        crate::context::serve_events(&self.consumer);
        self.consumer.fetch_watermarks(topic, partition, self.timeout).ok()
    }

    /// The lag of each `(partition, next offset to handle)` from the partition's high watermark.
    /// A partition whose watermark was never read is left out.
    pub fn lags(&mut self, topic: &str, positions: impl IntoIterator<Item = (i32, i64)>) -> Vec<PartitionLag> {
        crate::context::serve_events(&self.consumer);
        let mut lags = Vec::new();
        for (partition, next) in positions {
            let key = (topic.to_owned(), partition);
            let (high, stale) = match self.consumer.fetch_watermarks(topic, partition, self.timeout) {
                Ok((_, high)) => {
                    self.last_known.insert(key, high);
                    (Some(high), false)
                }
                Err(error) => {
                    tracing::debug!(topic, partition, %error, "high watermark not read; using the last known");
                    (self.last_known.get(&key).copied(), true)
                }
            };
            if let Some(high) = high {
                lags.push(PartitionLag {
                    partition,
                    lag: (high - next).max(0),
                    stale,
                });
            }
        }
        lags
    }
}

/// How far a consumer group as a whole has come on a topic: the records after its committed
/// offsets, over every partition, whoever owns it. A member's own lag covers only the partitions
/// it holds, so when partitions have no live owner (a dead member the coordinator did not replace,
/// a wedged group) every member reports 0 while this grows.
pub struct GroupLagProbe {
    /// Has the group's id but never subscribes: it only asks the coordinator for commits.
    observer: BaseConsumer<KafkaContext>,
    timeout: Duration,
}

impl std::fmt::Debug for GroupLagProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupLagProbe")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl GroupLagProbe {
    pub fn new(settings: &KafkaSettings, group: &str, timeout: Duration) -> Result<Self, KafkaError> {
        let observer = settings
            .create(&settings.consumer(group))
            .map_err(|source| KafkaError::Client {
                bootstrap: settings.bootstrap.clone(),
                source,
            })?;
        Ok(Self { observer, timeout })
    }

    /// The group's lag on every partition of `topic`, from `watermarks`, and each partition's
    /// committed offset; `None` if the broker did not answer. A partition without a commit
    /// counts every record it stores.
    pub fn lag(&self, watermarks: &WatermarkProbe, topic: &str) -> Option<GroupLag> {
        crate::context::serve_events(&self.observer);
        let metadata = self.observer.fetch_metadata(Some(topic), self.timeout).ok()?;
        let mut asked = TopicPartitionList::new();
        for partition in metadata
            .topics()
            .iter()
            .flat_map(rdkafka::metadata::MetadataTopic::partitions)
        {
            asked.add_partition(topic, partition.id());
        }
        let committed = self.observer.committed_offsets(asked, self.timeout).ok()?;
        let mut lag = GroupLag { partitions: Vec::new() };
        for element in committed.elements() {
            let (low, high) = watermarks.watermarks(topic, element.partition())?;
            let committed = match element.offset() {
                Offset::Offset(offset) => Some(offset),
                _ => None,
            };
            lag.partitions.push(PartitionStanding {
                partition: element.partition(),
                committed,
                waiting: (high - committed.map_or(low, |offset| offset.max(low))).max(0),
            });
        }
        Some(lag)
    }
}

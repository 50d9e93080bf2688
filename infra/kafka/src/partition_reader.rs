use std::time::{Duration, Instant};

use crate::KafkaContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as ClientError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use sealtrail_runtime::log::{LogError, PartitionLog, PartitionRecord};

use crate::{KafkaError, KafkaSettings};

/// Reads ranges of single partitions outside any consumer group, blocking: what processors use
/// to rebuild their state from their own output topics.
pub struct PartitionReader {
    consumer: BaseConsumer<KafkaContext>,
    timeout: Duration,
}

impl std::fmt::Debug for PartitionReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionReader")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl PartitionReader {
    pub fn new(settings: &KafkaSettings, timeout: Duration) -> Result<Self, KafkaError> {
        let consumer = settings
            .create(settings.reader().set("enable.partition.eof", "true"))
            .map_err(|source| KafkaError::Client {
                bootstrap: settings.bootstrap.clone(),
                source,
            })?;
        Ok(Self { consumer, timeout })
    }

    /// The first offset still stored and the offset the next record will get.
    pub fn watermarks(&self, topic: &str, partition: i32) -> Result<(i64, i64), KafkaError> {
        crate::context::serve_events(&self.consumer);
        self.consumer
            .fetch_watermarks(topic, partition, self.timeout)
            .map_err(|source| KafkaError::Read {
                topic: topic.to_owned(),
                source,
            })
    }

    /// The number of partitions of a topic (0 if it does not exist).
    pub fn partition_count(&self, topic: &str) -> Result<usize, KafkaError> {
        crate::context::serve_events(&self.consumer);
        let metadata = self
            .consumer
            .fetch_metadata(Some(topic), self.timeout)
            .map_err(|source| KafkaError::Read {
                topic: topic.to_owned(),
                source,
            })?;
        Ok(metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map_or(0, |t| t.partitions().len()))
    }

    /// Reads the records of `partition` with offsets in `from..until`, in order.
    pub fn read(&self, topic: &str, partition: i32, from: i64, until: i64) -> Result<Vec<PartitionRecord>, KafkaError> {
        let read_error = |source| KafkaError::Read {
            topic: topic.to_owned(),
            source,
        };
        let mut records = Vec::new();
        if from >= until {
            return Ok(records);
        }
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(topic, partition, Offset::Offset(from))
            .map_err(read_error)?;
        self.consumer.assign(&assignment).map_err(read_error)?;
        let started = Instant::now();
        let outcome = loop {
            if started.elapsed() > self.timeout {
                break Err(KafkaError::ReadTimeout {
                    topic: topic.to_owned(),
                    target: until,
                    waited: started.elapsed(),
                });
            }
            let Some(message) = self.consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            match message {
                Ok(message) => {
                    let offset = message.offset();
                    if offset >= until {
                        break Ok(());
                    }
                    if offset >= from {
                        records.push(PartitionRecord {
                            offset,
                            key: message.key().map(<[u8]>::to_vec),
                            value: message.payload().map(<[u8]>::to_vec),
                            headers: message
                                .headers()
                                .map(|headers| {
                                    headers
                                        .iter()
                                        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec).unwrap_or_default()))
                                        .collect()
                                })
                                .unwrap_or_default(),
                        });
                    }
                    if offset + 1 >= until {
                        break Ok(());
                    }
                }
                Err(ClientError::PartitionEOF(_)) => break Ok(()),
                Err(source) => break Err(read_error(source)),
            }
        };
        self.consumer.unassign().map_err(read_error)?;
        outcome.map(|()| records)
    }

    /// `ListOffsets` by time: the first offset of `partition` whose record timestamp is at or
    /// after `at_ms`, or `None` when no record is that late.
    pub fn offset_for_time(&self, topic: &str, partition: i32, at_ms: i64) -> Result<Option<i64>, KafkaError> {
        let read_error = |source| KafkaError::Read {
            topic: topic.to_owned(),
            source,
        };
        let mut wanted = TopicPartitionList::new();
        wanted
            .add_partition_offset(topic, partition, Offset::Offset(at_ms))
            .map_err(read_error)?;
        let found = self
            .consumer
            .offsets_for_times(wanted, self.timeout)
            .map_err(read_error)?;
        Ok(found
            .find_partition(topic, partition)
            .and_then(|element| match element.offset() {
                Offset::Offset(offset) if offset >= 0 => Some(offset),
                _ => None,
            }))
    }
}

impl PartitionLog for PartitionReader {
    fn watermarks(&self, topic: &str, partition: i32) -> Result<(i64, i64), LogError> {
        Self::watermarks(self, topic, partition).map_err(|error| LogError(error.to_string()))
    }

    fn read(&self, topic: &str, partition: i32, from: i64, until: i64) -> Result<Vec<PartitionRecord>, LogError> {
        Self::read(self, topic, partition, from, until).map_err(|error| LogError(error.to_string()))
    }

    fn offset_for_time(&self, topic: &str, partition: i32, at_ms: i64) -> Result<Option<i64>, LogError> {
        Self::offset_for_time(self, topic, partition, at_ms).map_err(|error| LogError(error.to_string()))
    }
}

use std::time::{Duration, Instant};

use crate::KafkaContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as KafkaClientError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::{KafkaError, KafkaSettings};

/// One record of a topic read as a log: its key and value (`None` for a tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// Reads every partition of `topic` from its first offset up to the high watermark observed when
/// the call starts, in offset order per partition.
///
/// This is how state kept in a topic (the registry's schemas, for example) is rebuilt at start.
/// The high watermark is taken once, so records appended concurrently are not waited for.
pub async fn read_log_to_end(
    settings: &KafkaSettings,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<LogRecord>, KafkaError> {
    let settings = settings.clone();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || read_blocking(&settings, &topic, timeout))
        .await
        .expect("log reader does not panic")
}

fn read_blocking(settings: &KafkaSettings, topic: &str, timeout: Duration) -> Result<Vec<LogRecord>, KafkaError> {
    let read_error = |source| KafkaError::Read {
        topic: topic.to_owned(),
        source,
    };
    // Partition EOF events end the read even where the high watermark sits past a control record.
    let consumer: BaseConsumer<KafkaContext> = settings
        .create(settings.reader().set("enable.partition.eof", "true"))
        .map_err(read_error)?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(read_error)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(rdkafka::metadata::MetadataPartition::id))
        .collect();

    let mut assignment = TopicPartitionList::new();
    let mut remaining = Vec::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .map_err(read_error)?;
        if high > low {
            assignment
                .add_partition_offset(topic, partition, Offset::Offset(low))
                .map_err(read_error)?;
            remaining.push((partition, high));
        }
    }
    let mut records = Vec::new();
    if remaining.is_empty() {
        return Ok(records);
    }
    consumer.assign(&assignment).map_err(read_error)?;

    let started = Instant::now();
    while !remaining.is_empty() {
        if started.elapsed() > timeout {
            let target = remaining.iter().map(|(_, high)| *high).max().unwrap_or_default();
            return Err(KafkaError::ReadTimeout {
                topic: topic.to_owned(),
                target,
                waited: started.elapsed(),
            });
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = match message {
            Ok(message) => message,
            Err(KafkaClientError::PartitionEOF(partition)) => {
                remaining.retain(|(p, _)| *p != partition);
                continue;
            }
            Err(source) => return Err(read_error(source)),
        };
        let partition = message.partition();
        let offset = message.offset();
        if let Some(index) = remaining.iter().position(|(p, _)| *p == partition) {
            let high = remaining[index].1;
            if offset < high {
                records.push(LogRecord {
                    partition,
                    offset,
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().map(<[u8]>::to_vec),
                });
            }
            if offset + 1 >= high {
                remaining.swap_remove(index);
            }
        }
    }
    Ok(records)
}

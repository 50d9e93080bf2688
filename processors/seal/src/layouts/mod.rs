//! Reading the pipeline's layout history and the final checkpoints that hand one layout epoch to
//! the next (see `sealtrail_core::layout`). The seal processor, the sink and `sealtrail reshard`
//! all learn their epoch here.

pub mod reshard;

use sealtrail_kafka::KafkaContext;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sealtrail_core::checkpoint::TrustedKey;
use sealtrail_core::layout::{
    CONTROL_HEADER, Handover, LAYOUT_CHANGE_CONTROL, Layout, LayoutChange, LayoutError, LayoutHistory,
};
use sealtrail_core::sealed::{Checkpoint, SealedRecord};
use sealtrail_kafka::{KafkaError, KafkaSettings, PartitionReader, TopicSpec, ensure_topics};
use sealtrail_runtime::{SealedReaders, StopSignal};

/// Why the layout could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LayoutReadError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("layout topic {topic} offset {offset}: {source}; only `sealtrail reshard` may write it")]
    BadRecord {
        topic: String,
        offset: i64,
        source: LayoutError,
    },
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("{0}")]
    Mismatch(String),
    #[error("stopped while waiting for layout epoch {epoch} to close")]
    Stopped { epoch: u32 },
    #[error("sealed partition {partition} of {topic} offset {offset} cannot be read: {reason}")]
    Sealed {
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
    },
}

/// Why a layout change could not be written.
#[derive(Debug, thiserror::Error)]
pub enum LayoutWriteError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("cannot create a Kafka producer: {0}")]
    Producer(rdkafka::error::KafkaError),
    #[error("writing the layout change into {topic} partition {partition}: {source}")]
    Send {
        topic: String,
        partition: i32,
        source: rdkafka::error::KafkaError,
    },
}

const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Appends the change to the layout topic (one partition, kept forever): the history every
/// processor reads at start.
pub async fn record_change(
    kafka: &KafkaSettings,
    layout_topic: &str,
    change: &LayoutChange,
) -> Result<(), LayoutWriteError> {
    ensure_topics(
        kafka,
        &[TopicSpec::new(layout_topic, 1).with_config("retention.ms", "-1")],
    )
    .await?;
    let producer: FutureProducer<KafkaContext> = kafka.create(&kafka.producer()).map_err(LayoutWriteError::Producer)?;
    let (key, value) = (change.to.epoch.to_string(), change.to_json());
    producer
        .send(
            FutureRecord::to(layout_topic).partition(0).key(&key).payload(&value),
            WRITE_TIMEOUT,
        )
        .await
        .map_err(|(source, _)| LayoutWriteError::Send {
            topic: layout_topic.to_owned(),
            partition: 0,
            source,
        })?;
    Ok(())
}

/// Writes the signed change, marked with the control header, into each of the old layout's raw
/// partitions in `open`: each partition's seal processor meets it in order and closes the
/// partition there.
pub async fn mark_partitions(
    kafka: &KafkaSettings,
    change: &LayoutChange,
    open: &[i32],
) -> Result<(), LayoutWriteError> {
    let producer: FutureProducer<KafkaContext> = kafka.create(&kafka.producer()).map_err(LayoutWriteError::Producer)?;
    let value = change.to_json();
    for partition in open {
        let headers = OwnedHeaders::new().insert(Header {
            key: CONTROL_HEADER,
            value: Some(LAYOUT_CHANGE_CONTROL),
        });
        let record = FutureRecord::to(&change.from.raw_topic)
            .partition(*partition)
            .key("")
            .payload(&value)
            .headers(headers);
        producer
            .send(record, WRITE_TIMEOUT)
            .await
            .map_err(|(source, _)| LayoutWriteError::Send {
                topic: change.from.raw_topic.clone(),
                partition: *partition,
                source,
            })?;
    }
    Ok(())
}

/// Every verified layout change recorded in `layout_topic` (one partition), over `first`: the
/// layout the configured topics had before any reshard. A missing topic means no reshard yet.
pub fn read_history(
    reader: &PartitionReader,
    layout_topic: &str,
    first: Layout,
    trusted: &[TrustedKey],
) -> Result<LayoutHistory, LayoutReadError> {
    let mut changes = Vec::new();
    if reader.partition_count(layout_topic)? > 0 {
        let (low, high) = reader.watermarks(layout_topic, 0)?;
        for record in reader.read(layout_topic, 0, low, high)? {
            let value = record.value.unwrap_or_default();
            let change =
                LayoutChange::parse_verified(&value, trusted).map_err(|source| LayoutReadError::BadRecord {
                    topic: layout_topic.to_owned(),
                    offset: record.offset,
                    source,
                })?;
            changes.push(change);
        }
    }
    Ok(LayoutHistory::new(first, changes)?)
}

/// The final checkpoint of each partition of `layout`, in partition order, or `None` for a
/// partition whose epoch is not closed yet. A closed partition ends with its final checkpoint:
/// nothing is written to it afterwards.
pub fn final_checkpoints(
    reader: &PartitionReader,
    sealed_readers: &mut SealedReaders,
    layout: &Layout,
) -> Result<Vec<Option<Checkpoint>>, LayoutReadError> {
    let partitions = i32::try_from(layout.partitions).unwrap_or(i32::MAX);
    let mut finals = Vec::with_capacity(layout.partitions as usize);
    for partition in 0..partitions {
        let (low, high) = reader.watermarks(&layout.sealed_topic, partition)?;
        if high <= low {
            finals.push(None);
            continue;
        }
        let last = reader.read(&layout.sealed_topic, partition, high - 1, high)?;
        let decoded = match last.first() {
            Some(record) => Some(
                sealed_readers
                    .decode(record.value.as_deref().unwrap_or_default())
                    .map_err(|reason| LayoutReadError::Sealed {
                        topic: layout.sealed_topic.clone(),
                        partition,
                        offset: record.offset,
                        reason,
                    })?,
            ),
            None => None,
        };
        finals.push(match decoded {
            Some(SealedRecord::Checkpoint(checkpoint)) if checkpoint.closes_epoch => Some(*checkpoint),
            _ => None,
        });
    }
    Ok(finals)
}

/// The handover into the epoch after `previous`, once every partition of `previous` is closed;
/// `Ok(Err(open))` names the partitions still open.
pub fn handover(
    reader: &PartitionReader,
    sealed_readers: &mut SealedReaders,
    previous: &Layout,
    trusted: &[TrustedKey],
) -> Result<Result<Handover, Vec<i32>>, LayoutReadError> {
    let finals = final_checkpoints(reader, sealed_readers, previous)?;
    let open: Vec<i32> = finals
        .iter()
        .enumerate()
        .filter(|(_, last)| last.is_none())
        .map(|(partition, _)| i32::try_from(partition).unwrap_or(i32::MAX))
        .collect();
    if !open.is_empty() {
        return Ok(Err(open));
    }
    let finals: Vec<Checkpoint> = finals.into_iter().flatten().collect();
    Ok(Ok(Handover::from_finals(previous, &finals, trusted)?))
}

/// Which layout the configured topics are, checked against the history.
pub fn configured_layout(
    history: &LayoutHistory,
    raw_topic: &str,
    sealed_topic: &str,
    dlq_topic: &str,
) -> Result<Layout, LayoutReadError> {
    let layout = history.by_raw_topic(raw_topic).ok_or_else(|| {
        LayoutReadError::Mismatch(format!(
            "raw topic {raw_topic} is in no layout of this pipeline; the current layout (epoch {}) reads {}: set RAW_TOPIC, SEALED_TOPIC and DLQ_TOPIC to its topics",
            history.current().epoch,
            history.current().raw_topic
        ))
    })?;
    if layout.sealed_topic != sealed_topic || layout.dlq_topic != dlq_topic {
        return Err(LayoutReadError::Mismatch(format!(
            "layout epoch {} seals {raw_topic} into {} with DLQ {}, not into {sealed_topic} with DLQ {dlq_topic}: set SEALED_TOPIC and DLQ_TOPIC to match",
            layout.epoch, layout.sealed_topic, layout.dlq_topic
        )));
    }
    Ok(layout.clone())
}

/// For a layout after the first: waits until every partition of the epoch before it is closed
/// (its processors seal up to the layout change, then write final checkpoints), and returns the
/// handover the new chains start from.
pub fn wait_for_handover(
    reader: &PartitionReader,
    sealed_readers: &mut SealedReaders,
    history: &LayoutHistory,
    layout: &Layout,
    trusted: &[TrustedKey],
    stop: &StopSignal,
) -> Result<Option<Arc<Handover>>, LayoutReadError> {
    let Some(previous) = layout.epoch.checked_sub(1).and_then(|epoch| history.epoch(epoch)) else {
        return Ok(None);
    };
    let mut last_warning: Option<Instant> = None;
    loop {
        match handover(reader, sealed_readers, previous, trusted)? {
            Ok(handover) => {
                tracing::info!(
                    epoch = layout.epoch,
                    tenants = handover.tenants(),
                    link = %handover.link,
                    "the previous layout is closed; chains continue from its final checkpoints"
                );
                return Ok(Some(Arc::new(handover)));
            }
            Err(open) => {
                if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(30)) {
                    last_warning = Some(Instant::now());
                    tracing::warn!(
                        epoch = layout.epoch,
                        previous_raw_topic = %previous.raw_topic,
                        open_partitions = ?open,
                        "waiting for the previous layout to close: its seal processors must run until `sealtrail reshard` reports every partition closed"
                    );
                }
            }
        }
        if stop.is_stopped() {
            return Err(LayoutReadError::Stopped { epoch: previous.epoch });
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

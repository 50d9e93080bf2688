//! Replaying the DLQ to the raw topic after a fix (a schema registered late, a producer's
//! partitioner corrected, a layout change).
//!
//! A replayed record carries its provenance ([`REPLAY_OF`], [`REPLAY_ATTEMPT`]), which the seal
//! processor keeps if the record is rejected again. Each replay is recorded on a small ledger topic
//! (`<dlq topic>.replays`) before the next one, so a DLQ record is never replayed twice; records
//! rejected again during a replay land past the offsets that were read, so a replay never loops,
//! and a bound on attempts limits how often one record goes round. A keyed record goes to the
//! partition its key belongs to in the target raw topic, which is how a `wrong_partition` or
//! `layout_closed` record reaches its tenant's chain.

use sealtrail_kafka::KafkaContext;
use std::collections::HashSet;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sealtrail_core::placement;
use sealtrail_core::validate::RejectCode;
use sealtrail_kafka::{
    KafkaError, KafkaSettings, PartitionReader, PartitionRecord, TopicSpec, ensure_topics, read_log_to_end,
};

use super::{REASON, REJECTED_AT, REPLAY_ATTEMPT, REPLAY_OF};

const TIMEOUT: Duration = Duration::from_secs(30);
/// Records read from a DLQ partition per request.
const CHUNK: i64 = 5_000;

/// A DLQ record with its coordinates.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub partition: i32,
    pub record: PartitionRecord,
}

impl Rejected {
    pub fn header(&self, name: &str) -> String {
        self.record
            .header(name)
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .unwrap_or_default()
    }

    /// How many times the record has been replayed already.
    pub fn attempts(&self) -> u32 {
        self.header(REPLAY_ATTEMPT).parse().unwrap_or(0)
    }

    /// `partition/offset` in the DLQ: the record's name in the ledger and in [`REPLAY_OF`].
    pub fn coordinates(&self) -> String {
        format!("{}/{}", self.partition, self.record.offset)
    }

    fn rejected_at_ms(&self) -> Option<i64> {
        self.header(REJECTED_AT).parse().ok()
    }
}

/// Every record of the DLQ `topic` up to the end observed at the start, in partition and offset
/// order, rejected for `reason` (any, if `None`) at or after `since_ms`. Blocking.
pub fn read_rejected(
    kafka: &KafkaSettings,
    topic: &str,
    reason: Option<&str>,
    since_ms: Option<i64>,
) -> Result<Vec<Rejected>, KafkaError> {
    let reader = PartitionReader::new(kafka, TIMEOUT)?;
    let partitions = i32::try_from(reader.partition_count(topic)?).unwrap_or(i32::MAX);
    if partitions == 0 {
        return Err(KafkaError::UnknownTopic {
            topic: topic.to_owned(),
        });
    }
    let mut found = Vec::new();
    for partition in 0..partitions {
        let (low, high) = reader.watermarks(topic, partition)?;
        let mut from = low;
        while from < high {
            let until = (from + CHUNK).min(high);
            for record in reader.read(topic, partition, from, until)? {
                let rejected = Rejected { partition, record };
                let reason_matches = reason.is_none_or(|r| rejected.header(REASON) == r);
                let recent = since_ms.is_none_or(|since| rejected.rejected_at_ms().is_some_and(|at| at >= since));
                if reason_matches && recent {
                    found.push(rejected);
                }
            }
            from = until;
        }
    }
    Ok(found)
}

/// What a replay of some DLQ records will do.
#[derive(Debug)]
pub struct ReplayPlan<'r> {
    pub due: Vec<&'r Rejected>,
    /// Replayed before (named in the ledger): never again.
    pub done: Vec<&'r Rejected>,
    /// Replayed as often as allowed already.
    pub exhausted: Vec<&'r Rejected>,
    /// `not_delivered` records: the seal never received a record at that raw offset, so there is
    /// nothing to send again.
    pub nothing_to_replay: Vec<&'r Rejected>,
    ledger: String,
}

/// Sorts `records` into due, done and exhausted by the ledger of `dlq_topic`.
pub async fn plan_replay<'r>(
    kafka: &KafkaSettings,
    dlq_topic: &str,
    records: &'r [Rejected],
    max_attempts: u32,
) -> Result<ReplayPlan<'r>, KafkaError> {
    let ledger = format!("{dlq_topic}.replays");
    ensure_topics(kafka, &[TopicSpec::new(&ledger, 1).with_config("retention.ms", "-1")]).await?;
    let replayed: HashSet<String> = read_log_to_end(kafka, &ledger, TIMEOUT)
        .await?
        .into_iter()
        .filter_map(|record| record.key.map(|key| String::from_utf8_lossy(&key).into_owned()))
        .collect();
    let (empty, records): (Vec<&Rejected>, Vec<&Rejected>) = records
        .iter()
        .partition(|r| r.header(REASON) == RejectCode::NotDelivered.as_str());
    let (fresh, done): (Vec<&Rejected>, Vec<&Rejected>) =
        records.into_iter().partition(|r| !replayed.contains(&r.coordinates()));
    let (due, exhausted) = fresh.into_iter().partition(|r| r.attempts() < max_attempts);
    Ok(ReplayPlan {
        due,
        done,
        exhausted,
        nothing_to_replay: empty,
        ledger,
    })
}

/// What a replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    pub replayed: usize,
    /// Sent to another partition than the one they were rejected in (their key's).
    pub moved: usize,
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("cannot create the replay producer: {0}")]
    Producer(rdkafka::error::KafkaError),
    #[error("the raw topic {0} does not exist")]
    NoRawTopic(String),
    #[error("replaying DLQ record {coordinates} to {raw}: {source}")]
    Send {
        coordinates: String,
        raw: String,
        source: rdkafka::error::KafkaError,
    },
    #[error("recording the replay of {coordinates}: {source}")]
    Ledger {
        coordinates: String,
        source: rdkafka::error::KafkaError,
    },
}

/// Re-publishes the plan's due records to `raw_topic`, each with its provenance, and records each
/// in the ledger; `progress` is told after each one.
pub async fn replay(
    kafka: &KafkaSettings,
    plan: &ReplayPlan<'_>,
    raw_topic: &str,
    mut progress: impl FnMut(),
) -> Result<ReplaySummary, ReplayError> {
    let producer: FutureProducer<KafkaContext> = kafka.create(&kafka.producer()).map_err(ReplayError::Producer)?;
    let raw_partitions = {
        let (kafka, topic) = (kafka.clone(), raw_topic.to_owned());
        tokio::task::spawn_blocking(move || PartitionReader::new(&kafka, TIMEOUT)?.partition_count(&topic))
            .await
            .unwrap_or(Ok(0))?
    };
    let raw_partitions = i32::try_from(raw_partitions).unwrap_or(i32::MAX);
    if raw_partitions == 0 {
        return Err(ReplayError::NoRawTopic(raw_topic.to_owned()));
    }
    let mut summary = ReplaySummary::default();
    for rejected in &plan.due {
        let coordinates = rejected.coordinates();
        let attempt = (rejected.attempts() + 1).to_string();
        let mut headers = OwnedHeaders::new();
        for (key, value) in rejected
            .record
            .headers
            .iter()
            .filter(|(k, _)| !k.starts_with("sealtrail."))
        {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        headers = headers
            .insert(Header {
                key: REPLAY_OF,
                value: Some(&coordinates),
            })
            .insert(Header {
                key: REPLAY_ATTEMPT,
                value: Some(&attempt),
            });
        // A keyless record goes back where it came from, to be rejected again.
        let partition = rejected.record.key.as_deref().map_or(rejected.partition, |key| {
            placement::partition_for_key(key, raw_partitions)
        });
        if partition != rejected.partition {
            summary.moved += 1;
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(raw_topic)
            .partition(partition)
            .payload(rejected.record.value.as_deref().unwrap_or_default())
            .headers(headers);
        if let Some(key) = rejected.record.key.as_deref() {
            record = record.key(key);
        }
        producer
            .send(record, TIMEOUT)
            .await
            .map_err(|(source, _)| ReplayError::Send {
                coordinates: coordinates.clone(),
                raw: raw_topic.to_owned(),
                source,
            })?;
        producer
            .send(
                FutureRecord::<[u8], [u8]>::to(&plan.ledger)
                    .key(coordinates.as_bytes())
                    .payload(attempt.as_bytes()),
                TIMEOUT,
            )
            .await
            .map_err(|(source, _)| ReplayError::Ledger { coordinates, source })?;
        summary.replayed += 1;
        progress();
    }
    Ok(summary)
}

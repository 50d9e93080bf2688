//! `sealtrail dlq list|show|replay`: the dead-letter queue, read without a consumer group, and
//! replayed to the raw topic after a fix (a schema registered late, say).
//!
//! A replayed record carries its provenance (`sealtrail.replay.of`, `sealtrail.replay.attempt`),
//! which the seal processor keeps if the record is rejected again. Each replay is recorded on a
//! small ledger topic (`<dlq topic>.replays`), so a DLQ record is never replayed twice; records
//! rejected again during a replay land past the offsets it read, so a replay never loops, and
//! `--max-attempts` bounds how often one record goes round.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sealtrail_core::placement;
use sealtrail_kafka::{KafkaSettings, PartitionReader, PartitionRecord, TopicSpec, ensure_topics, read_log_to_end};
use sealtrail_seal::dlq;
use time::OffsetDateTime;

use crate::settings::{KafkaArgs, TopicArgs, parse_time};

#[derive(Debug, clap::Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DlqCommand {
    /// The rejected records: where from, when, why; and counts per reason.
    List(Selection),
    /// One record's headers and size (not its payload: it may hold unredacted personal data).
    Show {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        partition: i32,
        #[arg(long)]
        offset: i64,
    },
    /// Re-publish the selected records to the raw topic, with their provenance.
    Replay {
        #[command(flatten)]
        selection: Selection,
        /// Records already replayed this many times are left in the DLQ.
        #[arg(long, default_value_t = 3)]
        max_attempts: u32,
        /// Say what would be replayed, and replay nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Clone, clap::Args)]
struct Common {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    topics: TopicArgs,
}

#[derive(Debug, Clone, clap::Args)]
struct Selection {
    #[command(flatten)]
    common: Common,
    /// Only records rejected for this reason (`unknown_schema`, `not_avro`, ...).
    #[arg(long)]
    reason: Option<String>,
    /// Only records rejected at or after this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    since: Option<OffsetDateTime>,
    /// At most this many records are listed.
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

/// A DLQ record with its coordinates.
struct Rejected {
    partition: i32,
    record: PartitionRecord,
}

impl Rejected {
    fn header(&self, name: &str) -> String {
        self.record
            .header(name)
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .unwrap_or_default()
    }

    fn attempts(&self) -> u32 {
        self.header(dlq::REPLAY_ATTEMPT).parse().unwrap_or(0)
    }

    fn coordinates(&self) -> String {
        format!("{}/{}", self.partition, self.record.offset)
    }
}

const TIMEOUT: Duration = Duration::from_secs(30);
const CHUNK: i64 = 5_000;

pub async fn run(args: DlqArgs) -> anyhow::Result<()> {
    match args.command {
        DlqCommand::List(selection) => list(selection).await,
        DlqCommand::Show {
            common,
            partition,
            offset,
        } => show(common, partition, offset).await,
        DlqCommand::Replay {
            selection,
            max_attempts,
            dry_run,
        } => replay(selection, max_attempts, dry_run).await,
    }
}

/// Every DLQ record up to the end observed at the start, selected, in partition and offset order.
async fn selected(selection: &Selection) -> anyhow::Result<Vec<Rejected>> {
    let kafka = selection.common.kafka.settings();
    sealtrail_kafka::wait_for_broker(&kafka, selection.common.kafka.connect_timeout()).await?;
    let topic = selection.common.topics.dlq_topic.clone();
    let reason = selection.reason.clone();
    let since_ms = selection.since.map(sealtrail_clickhouse::unix_ms);
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Rejected>> {
        let reader = PartitionReader::new(&kafka, TIMEOUT)?;
        let partitions = i32::try_from(reader.partition_count(&topic)?).unwrap_or(i32::MAX);
        anyhow::ensure!(partitions > 0, "the DLQ topic {topic} does not exist");
        let mut found = Vec::new();
        for partition in 0..partitions {
            let (low, high) = reader.watermarks(&topic, partition)?;
            let mut from = low;
            while from < high {
                let until = (from + CHUNK).min(high);
                for record in reader.read(&topic, partition, from, until)? {
                    let rejected = Rejected { partition, record };
                    let reason_matches = reason.as_ref().is_none_or(|r| rejected.header(dlq::REASON) == *r);
                    let recent = since_ms.is_none_or(|since| {
                        rejected
                            .header(dlq::REJECTED_AT)
                            .parse::<i64>()
                            .is_ok_and(|at| at >= since)
                    });
                    if reason_matches && recent {
                        found.push(rejected);
                    }
                }
                from = until;
            }
        }
        Ok(found)
    })
    .await?
}

async fn list(selection: Selection) -> anyhow::Result<()> {
    let records = selected(&selection).await?;
    println!(
        "{:>9} {:>9} {:<24} {:<20} {:>8}  DETAIL",
        "PARTITION", "OFFSET", "REJECTED AT", "REASON", "REPLAYS"
    );
    for rejected in records.iter().take(selection.limit) {
        let at = rejected
            .header(dlq::REJECTED_AT)
            .parse::<i64>()
            .ok()
            .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
            .and_then(|at| at.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        let mut detail = rejected.header(dlq::DETAIL);
        if detail.len() > 80 {
            let cut = (0..=77).rev().find(|i| detail.is_char_boundary(*i)).unwrap_or(0);
            detail.truncate(cut);
            detail.push_str("...");
        }
        println!(
            "{:>9} {:>9} {:<24} {:<20} {:>8}  {detail}",
            rejected.partition,
            rejected.record.offset,
            at,
            rejected.header(dlq::REASON),
            rejected.attempts()
        );
    }
    let mut by_reason: HashMap<String, usize> = HashMap::new();
    for rejected in &records {
        *by_reason.entry(rejected.header(dlq::REASON)).or_default() += 1;
    }
    let mut counts: Vec<_> = by_reason.into_iter().collect();
    counts.sort();
    let counts: Vec<String> = counts.iter().map(|(reason, n)| format!("{reason}: {n}")).collect();
    println!(
        "{} records selected ({} shown); by reason: {}",
        records.len(),
        records.len().min(selection.limit),
        if counts.is_empty() {
            "none".to_owned()
        } else {
            counts.join(", ")
        }
    );
    Ok(())
}

async fn show(common: Common, partition: i32, offset: i64) -> anyhow::Result<()> {
    let kafka = common.kafka.settings();
    let topic = common.topics.dlq_topic.clone();
    let record = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<PartitionRecord>> {
        let reader = PartitionReader::new(&kafka, TIMEOUT)?;
        Ok(reader.read(&topic, partition, offset, offset + 1)?.into_iter().next())
    })
    .await??
    .with_context(|| format!("no record at partition {partition} offset {offset} of the DLQ"))?;
    println!("DLQ record {partition}/{offset}");
    for (key, value) in &record.headers {
        println!("  {key}: {}", String::from_utf8_lossy(value));
    }
    println!(
        "  key: {}",
        record
            .key
            .as_deref()
            .map_or_else(|| "(none)".to_owned(), |k| String::from_utf8_lossy(k).into_owned())
    );
    println!(
        "  payload: {} bytes (not shown)",
        record.value.as_ref().map_or(0, Vec::len)
    );
    Ok(())
}

async fn replay(selection: Selection, max_attempts: u32, dry_run: bool) -> anyhow::Result<()> {
    let records = selected(&selection).await?;
    let kafka: KafkaSettings = selection.common.kafka.settings();
    let ledger = format!("{}.replays", selection.common.topics.dlq_topic);
    ensure_topics(&kafka, &[TopicSpec::new(&ledger, 1).with_config("retention.ms", "-1")]).await?;
    let replayed: std::collections::HashSet<String> = read_log_to_end(&kafka, &ledger, TIMEOUT)
        .await?
        .into_iter()
        .filter_map(|record| record.key.map(|key| String::from_utf8_lossy(&key).into_owned()))
        .collect();
    let (fresh, done): (Vec<&Rejected>, Vec<&Rejected>) =
        records.iter().partition(|r| !replayed.contains(&r.coordinates()));
    let (due, exhausted): (Vec<&Rejected>, Vec<&Rejected>) =
        fresh.into_iter().partition(|r| r.attempts() < max_attempts);
    println!(
        "{} records selected: {} to replay, {} already replayed, {} left after {max_attempts} attempts",
        records.len(),
        due.len(),
        done.len(),
        exhausted.len()
    );
    if dry_run || due.is_empty() {
        return Ok(());
    }
    let producer: FutureProducer = kafka.producer().create().context("creating the replay producer")?;
    let raw = &selection.common.topics.raw_topic;
    let raw_partitions = raw_partition_count(&kafka, raw).await?;
    let mut moved = 0_usize;
    let bar = ProgressBar::new(due.len() as u64).with_style(ProgressStyle::with_template(
        "  replaying {bar:40} {pos}/{len} records",
    )?);
    for rejected in &due {
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
                key: dlq::REPLAY_OF,
                value: Some(&coordinates),
            })
            .insert(Header {
                key: dlq::REPLAY_ATTEMPT,
                value: Some(&attempt),
            });
        // A keyed record goes where its key belongs, which moves a `wrong_partition` record into
        // its tenant's chain; a keyless one goes back where it came from, to be rejected again.
        let partition = rejected.record.key.as_deref().map_or(rejected.partition, |key| {
            placement::partition_for_key(key, raw_partitions)
        });
        if partition != rejected.partition {
            moved += 1;
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(raw)
            .partition(partition)
            .payload(rejected.record.value.as_deref().unwrap_or_default())
            .headers(headers);
        if let Some(key) = rejected.record.key.as_deref() {
            record = record.key(key);
        }
        producer
            .send(record, TIMEOUT)
            .await
            .map_err(|(error, _)| anyhow::anyhow!("replaying DLQ record {coordinates} to {raw}: {error}"))?;
        producer
            .send(
                FutureRecord::<[u8], [u8]>::to(&ledger)
                    .key(coordinates.as_bytes())
                    .payload(attempt.as_bytes()),
                TIMEOUT,
            )
            .await
            .map_err(|(error, _)| anyhow::anyhow!("recording the replay of {coordinates}: {error}"))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "replayed {} records to {raw} ({moved} to the partition their key belongs to); records rejected again return to the DLQ with their attempt count (see `sealtrail dlq list`)",
        due.len()
    );
    Ok(())
}

async fn raw_partition_count(kafka: &KafkaSettings, raw: &str) -> anyhow::Result<i32> {
    let kafka = kafka.clone();
    let topic = raw.to_owned();
    let count = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
        Ok(PartitionReader::new(&kafka, TIMEOUT)?.partition_count(&topic)?)
    })
    .await??;
    anyhow::ensure!(count > 0, "the raw topic {raw} does not exist");
    Ok(i32::try_from(count)?)
}

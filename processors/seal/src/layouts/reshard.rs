//! Moving a pipeline to new topics with another partition count without forking a chain: the
//! protocol `sealtrail reshard` drives (docs/operations.md, "Resharding").
//!
//! 1. create the new layout's raw, sealed and DLQ topics;
//! 2. sign the layout change and record it in the layout topic (the first recorded wins a race);
//! 3. write it into every open raw partition of the old layout: each partition's seal processor
//!    meets it in order, seals everything before it, writes a final checkpoint, seals nothing after;
//! 4. wait until every old partition is closed (and the sink has stored the final checkpoints,
//!    which `sealtrail_clickhouse::wait_for_final_checkpoints` watches).
//!
//! Beginning again resumes: the change is recorded once, and only open partitions get it again.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sealtrail_core::checkpoint::{CheckpointSigner, TrustedKey};
use sealtrail_core::layout::{Handover, Layout, LayoutChange, LayoutError, LayoutHistory};
use sealtrail_kafka::{KafkaError, KafkaSettings, PartitionReader, TopicSpec, ensure_topics};
use sealtrail_runtime::{RegistryClient, SealedReaders};
use tokio::runtime::Handle;

use super::{
    LayoutReadError, LayoutWriteError, final_checkpoints, handover, mark_partitions, read_history, record_change,
};

/// A week: the raw topic's default retention.
pub const RAW_RETENTION_HOURS: u64 = 168;

/// The topics of a layout (docs/retention.md): raw kept `raw_retention_hours`; sealed and DLQ kept
/// forever, so the sealed topic outlives the longest retention policy (ClickHouse can always be
/// rebuilt from it) and no rejected record is lost before it is replayed.
pub fn topic_specs(raw: &str, sealed: &str, dlq: &str, partitions: i32, raw_retention_hours: u64) -> Vec<TopicSpec> {
    let raw_ms = raw_retention_hours.saturating_mul(3_600_000).to_string();
    vec![
        TopicSpec::new(raw, partitions).with_config("retention.ms", &raw_ms),
        TopicSpec::new(sealed, partitions).with_config("retention.ms", "-1"),
        TopicSpec::new(dlq, partitions).with_config("retention.ms", "-1"),
    ]
}

/// Why a move could not go on; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ReshardError {
    #[error(transparent)]
    Read(Box<LayoutReadError>),
    #[error(transparent)]
    Write(#[from] LayoutWriteError),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("{0}")]
    Refused(String),
}

impl From<LayoutReadError> for ReshardError {
    fn from(error: LayoutReadError) -> Self {
        Self::Read(Box::new(error))
    }
}

/// The pipeline's first topics (the layout before any reshard) and its layout topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineTopics {
    pub raw_topic: String,
    pub sealed_topic: String,
    pub dlq_topic: String,
    pub layout_topic: String,
}

/// What the operator asks for: a partition count, and topic names other than `<first>.epoch-N`.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub partitions: Option<u32>,
    pub raw_topic: Option<String>,
    pub sealed_topic: Option<String>,
    pub dlq_topic: Option<String>,
}

/// A move under way: its change, and the old layout's partitions marked and not closed yet.
#[derive(Debug, Clone)]
pub struct Move {
    pub change: LayoutChange,
    pub open: Vec<i32>,
    /// True when an earlier run had recorded the change already.
    pub resumed: bool,
}

/// Reads and writes what a move needs: the layout history, the final checkpoints, the topics.
pub struct Resharder {
    kafka: KafkaSettings,
    topics: PipelineTopics,
    reader: PartitionReader,
    sealed: SealedReaders,
    trusted: Vec<TrustedKey>,
    runtime: Handle,
}

impl std::fmt::Debug for Resharder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resharder")
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

/// The history over `first`, whose raw topic's partition count is the first layout's.
pub fn pipeline_history(
    reader: &PartitionReader,
    first: &PipelineTopics,
    trusted: &[TrustedKey],
) -> Result<LayoutHistory, ReshardError> {
    let first_partitions = reader.partition_count(&first.raw_topic)?;
    let first_layout = Layout::first(
        &first.raw_topic,
        &first.sealed_topic,
        &first.dlq_topic,
        first_partitions,
    );
    Ok(read_history(reader, &first.layout_topic, first_layout, trusted)?)
}

/// `audit-events` becomes `audit-events.epoch-2`; an earlier `.epoch-N` suffix is replaced.
pub fn epoch_name(first: &str, epoch: u32) -> String {
    let base = first.split_once(".epoch-").map_or(first, |(base, _)| base);
    format!("{base}.epoch-{epoch}")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Resharder {
    /// Must run outside the runtime's worker threads (it blocks on `runtime`).
    pub fn new(
        kafka: &KafkaSettings,
        topics: PipelineTopics,
        registry: RegistryClient,
        trusted: Vec<TrustedKey>,
        runtime: Handle,
    ) -> Result<Self, ReshardError> {
        Ok(Self {
            reader: PartitionReader::new(kafka, Duration::from_secs(30))?,
            kafka: kafka.clone(),
            topics,
            sealed: SealedReaders::new(registry),
            trusted,
            runtime,
        })
    }

    pub fn history(&self) -> Result<LayoutHistory, ReshardError> {
        pipeline_history(&self.reader, &self.topics, &self.trusted)
    }

    /// The partitions of `layout` that have no final checkpoint yet.
    pub fn open_partitions(&mut self, layout: &Layout) -> Result<Vec<i32>, ReshardError> {
        let finals = final_checkpoints(&self.reader, &mut self.sealed, layout)?;
        Ok((0..)
            .zip(&finals)
            .filter(|(_, last)| last.is_none())
            .map(|(partition, _)| partition)
            .collect())
    }

    /// Every layout with its open partitions.
    pub fn status(&mut self) -> Result<Vec<(Layout, Vec<i32>)>, ReshardError> {
        let history = self.history()?;
        history
            .layouts()
            .iter()
            .map(|layout| Ok((layout.clone(), self.open_partitions(layout)?)))
            .collect()
    }

    /// Records the change to `target` signed by `signer` (or finds the move under way) and
    /// marks the old layout's open partitions.
    pub fn begin(&mut self, target: &Target, signer: &CheckpointSigner) -> Result<Move, ReshardError> {
        let own = TrustedKey::new(signer.public_key().to_vec());
        if !self.trusted.contains(&own) {
            self.trusted.push(own);
        }
        let history = self.history()?;
        if let Some((change, open)) = self.under_way(&history)? {
            if target.partitions.is_some_and(|p| p != change.to.partitions) {
                return Err(ReshardError::Refused(format!(
                    "a move to {} partitions ({}) is under way; finish it first (run without --partitions)",
                    change.to.partitions, change.to.raw_topic
                )));
            }
            self.runtime.block_on(mark_partitions(&self.kafka, &change, &open))?;
            return Ok(Move {
                change,
                open,
                resumed: true,
            });
        }
        let change = new_change(target, &history, signer)?;
        change.verify(&self.trusted)?;
        self.create_topics(&change.to)?;
        self.runtime
            .block_on(record_change(&self.kafka, &self.topics.layout_topic, &change))?;
        // Another reshard may have recorded its move first: the first one recorded wins.
        if let Some(winner) = self.history()?.change_after(change.from.epoch)
            && winner.to != change.to
        {
            return Err(ReshardError::Refused(format!(
                "another reshard recorded its move first (to {} with {} partitions), so this one is void; run `sealtrail reshard` without --partitions to finish that one",
                winner.to.raw_topic, winner.to.partitions
            )));
        }
        let open: Vec<i32> = (0..i32::try_from(change.from.partitions).unwrap_or(i32::MAX)).collect();
        self.runtime.block_on(mark_partitions(&self.kafka, &change, &open))?;
        Ok(Move {
            change,
            open,
            resumed: false,
        })
    }

    /// Waits until every partition of `from` ends with its final checkpoint, telling
    /// `on_progress` how many are closed.
    pub fn wait_closed(
        &mut self,
        from: &Layout,
        timeout: Duration,
        on_progress: &mut dyn FnMut(u64),
    ) -> Result<(), ReshardError> {
        let started = Instant::now();
        loop {
            let open = self.open_partitions(from)?;
            on_progress(u64::from(from.partitions) - open.len() as u64);
            if open.is_empty() {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(ReshardError::Refused(format!(
                    "partitions {open:?} of {} are not closed after {timeout:?}: are the seal processors of layout epoch {} running? Run `sealtrail reshard` again to keep waiting",
                    from.raw_topic, from.epoch
                )));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// How `from`'s final checkpoints hand every chain to the next layout.
    pub fn handover(&mut self, from: &Layout) -> Result<Handover, ReshardError> {
        match handover(&self.reader, &mut self.sealed, from, &self.trusted)? {
            Ok(handover) => Ok(handover),
            Err(open) => Err(ReshardError::Refused(format!(
                "partitions {open:?} of {} reopened while the move ran",
                from.raw_topic
            ))),
        }
    }

    /// A recorded change whose old layout still has open partitions: a move under way.
    fn under_way(&mut self, history: &LayoutHistory) -> Result<Option<(LayoutChange, Vec<i32>)>, ReshardError> {
        let Some(previous) = history.current().epoch.checked_sub(1) else {
            return Ok(None);
        };
        let Some(change) = history.change_after(previous).cloned() else {
            return Ok(None);
        };
        let open = self.open_partitions(&change.from)?;
        Ok((!open.is_empty()).then_some((change, open)))
    }

    fn create_topics(&self, to: &Layout) -> Result<(), ReshardError> {
        let partitions =
            i32::try_from(to.partitions).map_err(|_| ReshardError::Refused("--partitions is too large".to_owned()))?;
        let specs = topic_specs(
            &to.raw_topic,
            &to.sealed_topic,
            &to.dlq_topic,
            partitions,
            RAW_RETENTION_HOURS,
        );
        self.runtime.block_on(ensure_topics(&self.kafka, &specs))?;
        for topic in [&to.raw_topic, &to.sealed_topic, &to.dlq_topic] {
            let count = self.reader.partition_count(topic)?;
            if count != to.partitions as usize {
                return Err(ReshardError::Refused(format!(
                    "topic {topic} exists with {count} partitions, not {}; name new topics with --to-raw-topic, --to-sealed-topic and --to-dlq-topic",
                    to.partitions
                )));
            }
        }
        Ok(())
    }
}

/// The signed change from the current layout to `target` on new topics.
fn new_change(
    target: &Target,
    history: &LayoutHistory,
    signer: &CheckpointSigner,
) -> Result<LayoutChange, ReshardError> {
    let partitions = target.partitions.ok_or_else(|| {
        ReshardError::Refused("--partitions is required: the new layout's partition count".to_owned())
    })?;
    if partitions == 0 {
        return Err(ReshardError::Refused("--partitions must be at least 1".to_owned()));
    }
    let from = history.current().clone();
    let next = from.epoch + 1;
    let name = |chosen: &Option<String>, first: &str| chosen.clone().unwrap_or_else(|| epoch_name(first, next));
    let to = Layout {
        epoch: next,
        raw_topic: name(&target.raw_topic, &from.raw_topic),
        sealed_topic: name(&target.sealed_topic, &from.sealed_topic),
        dlq_topic: name(&target.dlq_topic, &from.dlq_topic),
        partitions,
    };
    Ok(LayoutChange::sign(from, to, now_ms(), signer))
}

#[cfg(test)]
mod tests {
    use super::epoch_name;

    #[test]
    fn new_topics_are_named_after_the_first_with_the_epoch() {
        assert_eq!(epoch_name("audit-events", 2), "audit-events.epoch-2");
        assert_eq!(epoch_name("audit-events.epoch-2", 3), "audit-events.epoch-3");
    }
}

//! Sending verified checkpoints to witnesses, in order per partition, and keeping their
//! cosignatures in ClickHouse (`cosignatures`), where exports find them. A witness that refuses a
//! checkpoint the monitor verified as a fork means two histories exist: an incident.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use sealtrail_core::sealed::Checkpoint;
use sealtrail_core::witness::{SubmittedCheckpoint, WitnessKey, note_body, origin};
use serde::{Deserialize, Serialize};

use crate::incident::{Incident, IncidentKind};
use crate::processor::MonitorProcessor;

/// Checkpoints kept per partition while a witness cannot be reached; older ones are dropped
/// (the witness then reports a gap).
const MAX_PENDING: usize = 100_000;
/// Submissions per witness per tick, so a backlog does not hold up the sealed topic.
const PER_TICK: usize = 200;
const TIMEOUT: Duration = Duration::from_secs(5);

/// A witness the monitor submits to.
#[derive(Debug, Clone)]
pub struct WitnessTarget {
    /// Its base URL (`POST <url>/add-checkpoint`).
    pub url: String,
    pub key: WitnessKey,
}

/// Per witness: the checkpoints waiting to be submitted, per partition.
#[derive(Debug, Default)]
pub(crate) struct WitnessQueue {
    pending: BTreeMap<i32, VecDeque<(i64, Checkpoint)>>,
    /// Partitions the witness cannot continue (a gap the monitor cannot fill).
    stuck: BTreeMap<i32, u64>,
}

#[derive(Debug, Deserialize)]
struct RefusalBody {
    refused: String,
    #[serde(default)]
    detail: String,
    latest: Option<u64>,
}

#[derive(Debug, clickhouse::Row, Serialize)]
struct CosignatureRow {
    layout_epoch: u32,
    sealed_partition: u32,
    number: u64,
    checkpoint_hash: String,
    origin: String,
    witness: String,
    cosignature: String,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    received_at: time::OffsetDateTime,
}

/// What one submission came to.
enum Outcome {
    Cosigned(String),
    /// Nothing more to do with this checkpoint (refused, and said why).
    Settled,
    /// Try again later.
    Retry,
}

impl MonitorProcessor {
    /// Queues a verified checkpoint (at `sealed_offset`) for every witness.
    pub(crate) fn queue_for_witnesses(&mut self, sealed_offset: i64, checkpoint: &Checkpoint) {
        for queue in &mut self.witness_queues {
            let pending = queue.pending.entry(checkpoint.partition).or_default();
            if pending.len() >= MAX_PENDING {
                pending.pop_front();
            }
            pending.push_back((sealed_offset, checkpoint.clone()));
        }
    }

    /// Submits what is pending, in order, to each witness.
    pub(crate) fn witness(&mut self) {
        for index in 0..self.config.witnesses.len() {
            let mut sent = 0;
            while sent < PER_TICK {
                let Some((partition, checkpoint)) = self.witness_queues[index]
                    .pending
                    .iter()
                    .find(|(_, queue)| !queue.is_empty())
                    .and_then(|(partition, queue)| Some((*partition, queue.front()?.1.clone())))
                else {
                    break;
                };
                sent += 1;
                match self.submit(index, &checkpoint) {
                    Outcome::Retry => break,
                    outcome => {
                        if let Outcome::Cosigned(line) = outcome {
                            self.keep_cosignature(index, &checkpoint, line);
                        }
                        if let Some(queue) = self.witness_queues[index].pending.get_mut(&partition) {
                            queue.pop_front();
                        }
                    }
                }
            }
        }
    }

    fn submit(&mut self, index: usize, checkpoint: &Checkpoint) -> Outcome {
        let target = self.config.witnesses[index].clone();
        let body = SubmittedCheckpoint::from(checkpoint);
        let url = format!("{}/add-checkpoint", target.url.trim_end_matches('/'));
        let http = self.http.clone();
        let answer = self.runtime.block_on(async move {
            let response = http.post(&url).timeout(TIMEOUT).json(&body).send().await?;
            let status = response.status();
            Ok::<_, reqwest::Error>((status, response.text().await?))
        });
        let (status, text) = match answer {
            Ok(answer) => answer,
            Err(error) => {
                tracing::warn!(witness = %target.url, %error, "the witness cannot be reached; retrying at the next tick");
                return Outcome::Retry;
            }
        };
        let origin = origin(&self.config.log_origin, checkpoint);
        let note = note_body(&origin, checkpoint.number, &checkpoint.checkpoint_hash);
        if status.is_success() {
            if target.key.verify(&text, &note).is_some() {
                self.config.metrics.assurance().cosigned();
                return Outcome::Cosigned(text.trim_end().to_owned());
            }
            tracing::error!(witness = %target.url, number = checkpoint.number, "the witness answered with a line that is not its cosignature of this checkpoint; check MONITOR_WITNESSES' key");
            return Outcome::Retry;
        }
        if status.is_server_error() {
            tracing::warn!(witness = %target.url, %status, "the witness failed; retrying at the next tick");
            return Outcome::Retry;
        }
        let refusal: RefusalBody = serde_json::from_str(&text).unwrap_or(RefusalBody {
            refused: format!("HTTP {status}"),
            detail: text,
            latest: None,
        });
        self.config.metrics.assurance().refused(&refusal.refused);
        match refusal.refused.as_str() {
            "before" => {}
            "gap" => {
                let latest = refusal.latest.unwrap_or_default();
                tracing::error!(witness = %target.url, %origin, latest, number = checkpoint.number, "the witness is behind and the monitor no longer holds the checkpoints in between; this partition is not witnessed until the monitor restarts");
                self.witness_queues[index].stuck.insert(checkpoint.partition, latest);
                if let Some(queue) = self.witness_queues[index].pending.get_mut(&checkpoint.partition) {
                    queue.clear();
                }
            }
            "fork" => {
                let incident = Incident {
                    kind: IncidentKind::WitnessFork,
                    tenant: None,
                    layout_epoch: checkpoint.epoch,
                    sealed_partition: checkpoint.partition,
                    sealed_offset: self.offset_of(index, checkpoint),
                    detail: format!(
                        "witness {} refused checkpoint {} of {origin} as a fork of the history it cosigned: {}",
                        target.key.name, checkpoint.number, refusal.detail
                    ),
                };
                self.raise(&incident);
            }
            other => {
                tracing::error!(witness = %target.url, refused = other, detail = %refusal.detail, number = checkpoint.number, "the witness refused a checkpoint the monitor verified");
            }
        }
        Outcome::Settled
    }

    fn offset_of(&self, index: usize, checkpoint: &Checkpoint) -> i64 {
        self.witness_queues[index]
            .pending
            .get(&checkpoint.partition)
            .and_then(|queue| queue.front())
            .map_or(-1, |(offset, _)| *offset)
    }

    fn keep_cosignature(&self, index: usize, checkpoint: &Checkpoint, line: String) {
        let target = &self.config.witnesses[index];
        let row = CosignatureRow {
            layout_epoch: checkpoint.epoch,
            sealed_partition: u32::try_from(checkpoint.partition).unwrap_or_default(),
            number: checkpoint.number,
            checkpoint_hash: checkpoint.checkpoint_hash.to_hex(),
            origin: origin(&self.config.log_origin, checkpoint),
            witness: target.key.name.clone(),
            cosignature: line,
            received_at: time::OffsetDateTime::now_utc(),
        };
        let client = self.projection.client();
        let stored = self.projection.bounded(async {
            let mut insert = client.insert::<CosignatureRow>("cosignatures").await?;
            insert.write(&row).await?;
            insert.end().await
        });
        if let Err(error) = stored {
            tracing::error!(%error, number = checkpoint.number, "a cosignature could not be stored; exports will lack it");
        }
    }
}

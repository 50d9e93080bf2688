//! The API's view of export jobs: every job's newest state, rebuilt from the status topic at start
//! and followed afterwards, so it survives restarts and agrees with the processor.

use sealtrail_kafka::KafkaContext;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sealtrail_kafka::{KafkaError, read_log_to_end};

use crate::{ExportJob, ExportStatus, ExportsConfig, JobState};

/// How many exports a tenant may have at once and per day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportQuota {
    /// Queued or running at once.
    pub max_active: usize,
    /// Requested in any 24 hours.
    pub max_per_day: usize,
}

impl Default for ExportQuota {
    fn default() -> Self {
        Self {
            max_active: 2,
            max_per_day: 50,
        }
    }
}

/// Why a job was not queued.
#[derive(Debug, thiserror::Error)]
pub enum QuotaExceeded {
    #[error(
        "tenant {tenant} already has {active} exports queued or running (the limit is {limit}); wait for one to finish"
    )]
    Active {
        tenant: String,
        active: usize,
        limit: usize,
    },
    #[error("tenant {tenant} requested {count} exports in the last 24 hours (the limit is {limit})")]
    Daily { tenant: String, count: usize, limit: usize },
}

type States = Arc<Mutex<HashMap<String, ExportStatus>>>;

/// How long the jobs topic keeps a job (see [`super::ExportTopics::specs`]).
pub const JOBS_KEPT_MS: i64 = 7 * 86_400_000;

/// Every export's newest state, and the producer that queues jobs.
#[derive(Clone)]
pub struct ExportBoard {
    states: States,
    producer: FutureProducer<KafkaContext>,
    config: ExportsConfig,
}

impl std::fmt::Debug for ExportBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportBoard")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ExportBoard {
    /// Reads the status topic to its end, then follows it in the background; `on_final` is called
    /// for each job that finishes after the start (not for those replayed from the topic).
    pub async fn start(
        config: ExportsConfig,
        on_final: impl Fn(ExportStatus) + Send + 'static,
    ) -> Result<Self, KafkaError> {
        sealtrail_kafka::ensure_topics(&config.kafka, &config.topics.specs()).await?;
        let producer: FutureProducer<KafkaContext> =
            config
                .kafka
                .create(&config.kafka.producer())
                .map_err(|source| KafkaError::Client {
                    bootstrap: config.kafka.bootstrap.clone(),
                    source,
                })?;
        let states: States = Arc::default();
        let history = read_log_to_end(&config.kafka, &config.topics.status, Duration::from_secs(60)).await?;
        let mut next_offset = Offset::Beginning;
        for record in history {
            next_offset = Offset::Offset(record.offset + 1);
            if let Some(status) = record.value.as_deref().and_then(|v| serde_json::from_slice(v).ok()) {
                apply(&states, status);
            }
        }
        let consumer: BaseConsumer<KafkaContext> =
            config
                .kafka
                .create(&config.kafka.reader())
                .map_err(|source| KafkaError::Client {
                    bootstrap: config.kafka.bootstrap.clone(),
                    source,
                })?;
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&config.topics.status, 0, next_offset)
            .and_then(|()| consumer.assign(&assignment))
            .map_err(|source| KafkaError::Read {
                topic: config.topics.status.clone(),
                source,
            })?;
        let weak = Arc::downgrade(&states);
        std::thread::Builder::new()
            .name("export-status".to_owned())
            .spawn(move || follow(&consumer, &weak, &on_final))
            .map_err(|e| KafkaError::CreateTopic {
                topic: "export-status follower".to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            states,
            producer,
            config,
        })
    }

    pub fn config(&self) -> &ExportsConfig {
        &self.config
    }

    /// Checks the tenant's quota, then appends the queued state and the job (in that order, so
    /// the processor never sees a job without a state).
    pub async fn submit(&self, job: &ExportJob, now_ms: i64) -> Result<ExportStatus, SubmitError> {
        self.check_quota(&job.tenant_id, now_ms)?;
        let status = ExportStatus::queued(job);
        self.publish(&status).await?;
        let payload = serde_json::to_vec(job).unwrap_or_default();
        let sent = self
            .producer
            .send(
                FutureRecord::to(&self.config.topics.jobs)
                    .key(job.tenant_id.as_bytes())
                    .payload(&payload),
                Duration::from_secs(30),
            )
            .await;
        if let Err((error, _)) = sent {
            // Not left queued for ever (it would hold the tenant's quota): failed, with the reason.
            let failed = ExportStatus {
                error: Some(format!("the export queue did not take the job: {error}")),
                ..status.next(JobState::Failed, now_ms)
            };
            let _ = self.publish(&failed).await;
            return Err(SubmitError::Kafka(error.to_string()));
        }
        Ok(status)
    }

    /// Appends a state to the status topic and to the board.
    pub async fn publish(&self, status: &ExportStatus) -> Result<(), SubmitError> {
        publish(&self.producer, &self.config.topics.status, status).await?;
        apply(&self.states, status.clone());
        Ok(())
    }

    fn check_quota(&self, tenant: &str, now_ms: i64) -> Result<(), QuotaExceeded> {
        let states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = || states.values().filter(|s| s.tenant_id == tenant);
        // A job older than the jobs topic keeps it is gone, whatever its last state says.
        let stale_before = now_ms - JOBS_KEPT_MS;
        let active = mine()
            .filter(|s| !s.state.is_final() && s.updated_at >= stale_before)
            .count();
        if active >= self.config.quota.max_active {
            return Err(QuotaExceeded::Active {
                tenant: tenant.to_owned(),
                active,
                limit: self.config.quota.max_active,
            });
        }
        let day_ago = now_ms - 86_400_000;
        let count = mine().filter(|s| s.requested_at >= day_ago).count();
        if count >= self.config.quota.max_per_day {
            return Err(QuotaExceeded::Daily {
                tenant: tenant.to_owned(),
                count,
                limit: self.config.quota.max_per_day,
            });
        }
        Ok(())
    }

    pub fn get(&self, export_id: &str) -> Option<ExportStatus> {
        self.states
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(export_id)
            .cloned()
    }

    /// The tenant's exports, newest first.
    pub fn list(&self, tenant: &str) -> Vec<ExportStatus> {
        let mut list: Vec<ExportStatus> = self
            .states
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|s| s.tenant_id == tenant)
            .cloned()
            .collect();
        list.sort_by(|a, b| b.requested_at.cmp(&a.requested_at).then(b.export_id.cmp(&a.export_id)));
        list
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Quota(#[from] QuotaExceeded),
    #[error("the export queue did not take the job: {0}")]
    Kafka(String),
}

pub(super) async fn publish(
    producer: &FutureProducer<KafkaContext>,
    topic: &str,
    status: &ExportStatus,
) -> Result<(), SubmitError> {
    let payload = serde_json::to_vec(status).unwrap_or_default();
    producer
        .send(
            FutureRecord::to(topic)
                .key(status.export_id.as_bytes())
                .payload(&payload),
            Duration::from_secs(30),
        )
        .await
        .map(|_| ())
        .map_err(|(error, _)| SubmitError::Kafka(error.to_string()))
}

/// The newest state wins, except that a finished job never goes back (a processor that re-runs a
/// job after a crash does not undo its result). Returns whether this state finished the job.
fn apply(board: &Mutex<HashMap<String, ExportStatus>>, status: ExportStatus) -> bool {
    let mut board = board.lock().unwrap_or_else(PoisonError::into_inner);
    if board.get(&status.export_id).is_some_and(|old| old.state.is_final()) {
        return false;
    }
    let finished = status.state.is_final();
    board.insert(status.export_id.clone(), status);
    finished
}

fn follow(
    consumer: &BaseConsumer<KafkaContext>,
    board: &Weak<Mutex<HashMap<String, ExportStatus>>>,
    on_final: &dyn Fn(ExportStatus),
) {
    loop {
        let Some(board) = board.upgrade() else { return };
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let Some(status) = message
            .payload()
            .and_then(|payload| serde_json::from_slice::<ExportStatus>(payload).ok())
        else {
            tracing::warn!(
                offset = message.offset(),
                "a record on the export status topic is not a status"
            );
            continue;
        };
        if apply(&board, status.clone()) {
            on_final(status);
        }
    }
}

impl JobState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

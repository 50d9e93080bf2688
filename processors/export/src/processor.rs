//! The export processor: consumes jobs from the jobs topic (in a consumer group, so several
//! processors share the work), writes each artifact, and reports every state on the status topic.
//! A job's offset is committed only after its final state is on the status topic; a job whose
//! final state is already there (a crash between the two) is not run again.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use sealtrail_clickhouse::ClickHouseSettings;
use sealtrail_core::checkpoint::CheckpointSigner;
use sealtrail_core::digest::to_hex;
use sealtrail_kafka::{KafkaError, read_log_to_end};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use crate::board::publish;
use crate::exporter::{ExportRequest, write_export};
use crate::{ExportJob, ExportStatus, ExportSummary, ExportTopics, JobState, Progress, is_export_id};

/// Progress is reported at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

pub struct ProcessorConfig {
    pub kafka: sealtrail_kafka::KafkaSettings,
    pub group: String,
    pub topics: ExportTopics,
    pub artifacts_dir: PathBuf,
    pub clickhouse: ClickHouseSettings,
    pub signer: CheckpointSigner,
    pub max_file_bytes: u64,
}

impl std::fmt::Debug for ProcessorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessorConfig")
            .field("group", &self.group)
            .field("topics", &self.topics)
            .field("artifacts_dir", &self.artifacts_dir)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    sealtrail_clickhouse::unix_ms(OffsetDateTime::now_utc())
}

fn client_error(kafka: &sealtrail_kafka::KafkaSettings) -> impl Fn(rdkafka::error::KafkaError) -> KafkaError + '_ {
    move |source| KafkaError::Client {
        bootstrap: kafka.bootstrap.clone(),
        source,
    }
}

/// Runs until `stop` resolves; `on_state` sees every state published (for progress display).
pub async fn run_processor(
    config: ProcessorConfig,
    stop: impl Future<Output = ()>,
    mut on_state: impl FnMut(&ExportStatus),
) -> Result<(), KafkaError> {
    sealtrail_kafka::ensure_topics(&config.kafka, &config.topics.specs()).await?;
    let producer: FutureProducer = config.kafka.producer().create().map_err(client_error(&config.kafka))?;
    // A job may take longer than the default poll interval; the group must not hand it to another
    // processor meanwhile.
    let consumer: StreamConsumer = config
        .kafka
        .consumer(&config.group)
        .set("max.poll.interval.ms", "86400000")
        .create()
        .map_err(client_error(&config.kafka))?;
    consumer
        .subscribe(&[&config.topics.jobs])
        .map_err(client_error(&config.kafka))?;
    // Jobs that already reached a final state are never run twice.
    let mut finished: HashSet<String> = read_log_to_end(&config.kafka, &config.topics.status, Duration::from_secs(60))
        .await?
        .into_iter()
        .filter_map(|record| serde_json::from_slice::<ExportStatus>(record.value.as_deref()?).ok())
        .filter(|status| status.state.is_final())
        .map(|status| status.export_id)
        .collect();
    tokio::pin!(stop);
    loop {
        let message = tokio::select! {
            () = &mut stop => break,
            message = consumer.recv() => message,
        };
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%error, "reading the export jobs topic failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        match message.payload().map(serde_json::from_slice::<ExportJob>) {
            Some(Ok(job)) if finished.contains(&job.export_id) => {
                tracing::info!(export = %job.export_id, "already finished; skipping the job");
            }
            Some(Ok(job)) => {
                // A stop does not wait for a long job: it is not committed, so it runs again
                // from the start after a restart (its partial directory is replaced).
                let status = tokio::select! {
                    status = run_job(&config, &producer, &job, &mut on_state) => status,
                    () = &mut stop => {
                        tracing::warn!(export = %job.export_id, "stopping in the middle of the job; it runs again after a restart");
                        break;
                    }
                };
                if publish(&producer, &config.topics.status, &status).await.is_err() {
                    // Not committed: the job runs again after a restart.
                    tracing::error!(export = %job.export_id, "cannot publish the final state; stopping");
                    break;
                }
                on_state(&status);
                finished.insert(job.export_id);
            }
            Some(Err(error)) => {
                tracing::error!(offset = message.offset(), %error, "a record on the export jobs topic is not a job; skipped");
            }
            None => tracing::error!(
                offset = message.offset(),
                "an empty record on the export jobs topic; skipped"
            ),
        }
        if let Err(error) = consumer.commit_message(&message, CommitMode::Sync) {
            tracing::warn!(%error, "cannot commit the export job offset; the job may be seen again");
        }
    }
    producer.flush(Duration::from_secs(10)).ok();
    Ok(())
}

/// Writes one artifact and returns its final state (done or failed, with the reason).
async fn run_job(
    config: &ProcessorConfig,
    producer: &FutureProducer,
    job: &ExportJob,
    on_state: &mut impl FnMut(&ExportStatus),
) -> ExportStatus {
    let queued = ExportStatus::queued(job);
    let failed = |reason: String| ExportStatus {
        error: Some(reason),
        ..queued.next(JobState::Failed, now_ms())
    };
    if !is_export_id(&job.export_id) {
        return failed(format!("`{}` is not an export id", job.export_id));
    }
    if let Err(error) = job.scope.check(true) {
        return failed(error.message);
    }
    let total = match count_lines(&config.clickhouse, job).await {
        Ok(total) => total,
        Err(error) => return failed(format!("ClickHouse: {error}")),
    };
    let running = |done| ExportStatus {
        progress: Some(Progress { done, total }),
        ..queued.next(JobState::Running, now_ms())
    };
    let first = running(0);
    if publish(producer, &config.topics.status, &first).await.is_err() {
        return failed("the status topic did not take the running state".to_owned());
    }
    on_state(&first);
    let final_dir = config.artifacts_dir.join(&job.export_id);
    // Each attempt writes its own directory: two attempts never touch each other's files, and a
    // finished artifact is never replaced (it may be downloading).
    let partial_dir = config
        .artifacts_dir
        .join(format!("{}.partial-{}", job.export_id, ulid::Ulid::new()));
    let request = ExportRequest {
        export_id: job.export_id.clone(),
        tenant: job.tenant_id.clone(),
        scope: job.scope.clone(),
        out_dir: partial_dir.clone(),
        max_file_bytes: config.max_file_bytes,
    };
    let mut last_report = Instant::now();
    let outcome = write_export(&config.clickhouse, &config.signer, &request, |done| {
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            let status = running(done);
            let payload = serde_json::to_vec(&status).unwrap_or_default();
            // Progress is best effort: it is not waited for, and a lost one is replaced by the next.
            let _ = producer.send_result(
                FutureRecord::to(&config.topics.status)
                    .key(status.export_id.as_bytes())
                    .payload(&payload),
            );
            on_state(&status);
        }
    })
    .await;
    let manifest = match outcome {
        Ok(manifest) => manifest,
        Err(error) => {
            std::fs::remove_dir_all(&partial_dir).ok();
            return failed(error.to_string());
        }
    };
    if final_dir.exists() {
        // Another attempt finished first; its artifact is the one served (it may be downloading).
        std::fs::remove_dir_all(&partial_dir).ok();
        return match read_manifest(&final_dir) {
            Ok(existing) => done(&queued, &final_dir, &existing, total),
            Err(error) => failed(format!(
                "the finished artifact in {} cannot be read: {error}",
                final_dir.display()
            )),
        };
    }
    if let Err(error) = std::fs::rename(&partial_dir, &final_dir) {
        return failed(format!(
            "cannot move the artifact into {}: {error}",
            final_dir.display()
        ));
    }
    done(&queued, &final_dir, &manifest, total)
}

fn read_manifest(dir: &std::path::Path) -> Result<sealtrail_core::export::Manifest, String> {
    let bytes = std::fs::read(dir.join(sealtrail_core::export::MANIFEST_FILE)).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

/// The done state of the artifact in `final_dir`.
fn done(
    queued: &ExportStatus,
    final_dir: &std::path::Path,
    manifest: &sealtrail_core::export::Manifest,
    total: u64,
) -> ExportStatus {
    let manifest_sha256 = std::fs::read(final_dir.join(sealtrail_core::export::MANIFEST_FILE))
        .map(|bytes| to_hex(&Sha256::digest(&bytes)))
        .unwrap_or_default();
    ExportStatus {
        progress: Some(Progress {
            done: manifest.event_count + manifest.omitted_count,
            total,
        }),
        result: Some(ExportSummary {
            event_count: manifest.event_count,
            omitted_count: manifest.omitted_count,
            unsigned_tail: manifest.unsigned_tail,
            files: manifest.files.len() as u64,
            bytes: manifest.files.iter().map(|f| f.bytes).sum(),
            checkpoints: manifest.checkpoints.len() as u64,
            key_id: manifest.key_id.clone(),
            manifest_sha256,
        }),
        ..queued.next(JobState::Done, now_ms())
    }
}

/// The lines the export will hold, for progress: the chain stretch its window touches.
async fn count_lines(clickhouse: &ClickHouseSettings, job: &ExportJob) -> Result<u64, clickhouse::error::Error> {
    let window = job.scope.window().unwrap_or(sealtrail_query::scope::Window::ALL);
    let stretch =
        sealtrail_clickhouse::chain_stretch(&clickhouse.client(), &job.tenant_id, (window.from_ms, window.to_ms))
            .await?;
    Ok(stretch.seqs().count() as u64)
}

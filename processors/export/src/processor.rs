//! The export processor: consumes jobs from the jobs topic (in a consumer group, so several
//! processors share the work), writes each artifact, and reports every state on the status topic.
//! A job's offset is committed only after its final state is on the status topic; a job whose
//! final state is already there (a crash between the two) is not run again. It runs on the shared
//! consumer driver, one job per record.

use sealtrail_kafka::KafkaContext;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use sealtrail_clickhouse::ClickHouseSettings;
use sealtrail_core::checkpoint::CheckpointSigner;
use sealtrail_core::digest::to_hex;
use sealtrail_kafka::{KafkaError, KafkaSource, read_log_to_end};
use sealtrail_runtime::driver::{self, Cadence, Committed, Control, InputRecord, PartitionedProcessor};
use sealtrail_runtime::{BlockingError, Metrics, StopSignal, Telemetry, run_blocking};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use tokio::runtime::Handle;

use crate::board::publish;
use crate::exporter::{ExportRequest, write_export};
use crate::{ExportJob, ExportStatus, ExportSummary, ExportTopics, JobReported, JobState, Progress, is_export_id};

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

/// Why the export processor stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ExportProcessorError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(
        "cannot publish the final state of export {export_id} on the status topic: {reason}; the job runs again after a restart"
    )]
    Status { export_id: String, reason: String },
    #[error(transparent)]
    Thread(#[from] BlockingError),
    #[error(
        "the export jobs group's committed offsets are unknown ({0}); exiting rather than run finished jobs again, a restart asks again"
    )]
    Offsets(String),
}

/// Runs until `stop` resolves, reporting on `metrics`. A job in progress when it resolves is
/// abandoned: it is not committed, so it runs again from the start after a restart (its partial
/// directory is replaced).
pub async fn run_processor(
    config: ProcessorConfig,
    metrics: Metrics,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ExportProcessorError> {
    sealtrail_kafka::ensure_topics(&config.kafka, &config.topics.specs()).await?;
    let producer: FutureProducer<KafkaContext> = config
        .kafka
        .create(&config.kafka.producer())
        .map_err(client_error(&config.kafka))?;
    // Jobs that already reached a final state are never run twice.
    let finished: HashSet<String> = read_log_to_end(&config.kafka, &config.topics.status, Duration::from_secs(60))
        .await?
        .into_iter()
        .filter_map(|record| serde_json::from_slice::<ExportStatus>(record.value.as_deref()?).ok())
        .filter(|status| status.state.is_final())
        .map(|status| status.export_id)
        .collect();
    let signal = StopSignal::new();
    let watcher = {
        let signal = signal.clone();
        tokio::spawn(async move {
            stop.await;
            signal.stop();
        })
    };
    let runtime = Handle::current();
    let outcome = run_blocking(move || -> Result<(), ExportProcessorError> {
        // A job may take longer than the default poll interval; the group must not hand it to
        // another processor meanwhile.
        let mut source = KafkaSource::subscribe(
            &config.kafka,
            &config.group,
            &config.topics.jobs,
            None,
            &[("max.poll.interval.ms", "86400000")],
        )?;
        let mut telemetry = Telemetry::new(metrics);
        let mut processor = JobProcessor {
            config,
            producer,
            finished,
            runtime,
            stop: signal.clone(),
            next: HashMap::new(),
        };
        let cadence = Cadence {
            commit: Duration::ZERO,
            ..Cadence::default()
        };
        let outcome = driver::run(&mut source, &mut processor, &mut telemetry, &signal, cadence);
        processor.producer.flush(Duration::from_secs(10)).ok();
        outcome
    })
    .await;
    watcher.abort();
    outcome?
}

/// The export processor on the driver: one job per record, run to its end (or to a stop) before
/// the next; a job's offset becomes committable once its final state is on the status topic.
struct JobProcessor {
    config: ProcessorConfig,
    producer: FutureProducer<KafkaContext>,
    finished: HashSet<String>,
    runtime: Handle,
    stop: StopSignal,
    /// Per assigned partition, the offset after the last job handled.
    next: HashMap<i32, i64>,
}

impl JobProcessor {
    /// Runs `job` to its final state; `None` when the processor is stopped first.
    fn run(&self, job: &ExportJob, telemetry: &mut Telemetry) -> Option<ExportStatus> {
        let stopped = async {
            while !self.stop.is_stopped() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        let mut report = |status: &ExportStatus| telemetry.emit(JobReported(status));
        self.runtime.block_on(async {
            tokio::select! {
                status = run_job(&self.config, &self.producer, job, &mut report) => Some(status),
                () = stopped => None,
            }
        })
    }
}

impl PartitionedProcessor for JobProcessor {
    type Error = ExportProcessorError;

    fn on_assign(
        &mut self,
        partitions: &[i32],
        committed: &Committed,
        _control: &mut dyn Control,
    ) -> Result<Vec<(i32, i64)>, ExportProcessorError> {
        // Guessing would run finished jobs again (or skip queued ones): wait for the broker.
        if let Some(why) = &committed.unknown {
            return Err(ExportProcessorError::Offsets(why.clone()));
        }
        // A partition the group never committed is read from its start: every job is run once.
        let positions: Vec<(i32, i64)> = partitions
            .iter()
            .map(|partition| (*partition, committed.get(*partition).unwrap_or(0)))
            .collect();
        self.next.extend(positions.iter().copied());
        Ok(positions)
    }

    fn on_record(&mut self, record: &dyn InputRecord, control: &mut dyn Control) -> Result<(), ExportProcessorError> {
        let offset = record.offset();
        match record.value().map(serde_json::from_slice::<ExportJob>) {
            Some(Ok(job)) if self.finished.contains(&job.export_id) => {
                tracing::info!(export = %job.export_id, "already finished; skipping the job");
            }
            Some(Ok(job)) => {
                let Some(status) = self.run(&job, control.telemetry()) else {
                    tracing::warn!(export = %job.export_id, "stopping in the middle of the job; it runs again after a restart");
                    return Ok(());
                };
                self.runtime
                    .block_on(publish(&self.producer, &self.config.topics.status, &status))
                    .map_err(|error| ExportProcessorError::Status {
                        export_id: job.export_id.clone(),
                        reason: error.to_string(),
                    })?;
                control.telemetry().emit(JobReported(&status));
                self.finished.insert(job.export_id);
            }
            Some(Err(error)) => {
                tracing::error!(offset, %error, "a record on the export jobs topic is not a job; skipped");
            }
            None => tracing::error!(offset, "an empty record on the export jobs topic; skipped"),
        }
        self.next.insert(record.partition(), offset + 1);
        Ok(())
    }

    fn on_tick(&mut self, _control: &mut dyn Control) -> Result<(), ExportProcessorError> {
        Ok(())
    }

    /// Jobs run to their end inside `on_record`: nothing is left half done at a revocation.
    fn on_revoke(&mut self, _partitions: &[i32], _control: &mut dyn Control) -> Result<(), ExportProcessorError> {
        Ok(())
    }

    fn release(&mut self, partitions: &[i32]) {
        for partition in partitions {
            self.next.remove(partition);
        }
    }

    fn positions(&self) -> Vec<(i32, i64)> {
        self.committable()
    }

    fn committable(&self) -> Vec<(i32, i64)> {
        self.next.iter().map(|(partition, next)| (*partition, *next)).collect()
    }
}

/// Writes one artifact and returns its final state (done or failed, with the reason).
async fn run_job(
    config: &ProcessorConfig,
    producer: &FutureProducer<KafkaContext>,
    job: &ExportJob,
    on_state: &mut dyn FnMut(&ExportStatus),
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

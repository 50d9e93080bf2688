//! Sends what the outbox holds to Kafka, oldest first, a batch at a time; the outbox forgets a
//! record only once Kafka acknowledged it and every record before it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::join_all;
use rdkafka::producer::DeliveryFuture;

use super::log::{OutboxLog, OutboxStats, Position};
use super::record::Stored;
use super::{Shared, is_permanent};
use crate::{AuditEmitter, Enqueue};

/// Records sent before their acknowledgements are awaited.
const BATCH: usize = 1000;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const LAST_BACKOFF: Duration = Duration::from_secs(15);
/// How often the age of the oldest record is reported while nothing else happens.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// What to do with the log next, decided under its lock (off the runtime's threads: the log's
/// calls read files and fsync).
enum Next {
    /// Everything is acknowledged: wait for records to arrive.
    Idle(OutboxStats),
    Send(Vec<(Stored, Position)>),
    /// Handed out, not yet acknowledged: nothing to send until a rewind.
    Stalled,
    Failed(String),
}

/// Runs `work` on the log on a blocking thread.
async fn with_log<T: Send + 'static>(
    shared: &Arc<Shared>,
    work: impl FnOnce(&mut OutboxLog) -> T + Send + 'static,
) -> T {
    let shared = Arc::clone(shared);
    let joined = tokio::task::spawn_blocking(move || work(&mut shared.log())).await;
    joined.unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))
}

/// Drains for as long as the emitter lives.
pub async fn run(shared: Arc<Shared>, emitter: Arc<AuditEmitter>) {
    let mut backoff = FIRST_BACKOFF;
    let mut sent_since_empty = 0_u64;
    loop {
        let gate = Arc::clone(&shared);
        let next = with_log(&shared, move |log| {
            if log.is_drained() {
                gate.spilling.store(false, Ordering::Release);
                return Next::Idle(log.stats());
            }
            match log.next_unsent(BATCH) {
                Ok(records) if records.is_empty() => {
                    log.rewind();
                    Next::Stalled
                }
                Ok(records) => Next::Send(records),
                Err(error) => Next::Failed(error.to_string()),
            }
        })
        .await;
        let records = match next {
            Next::Idle(stats) => {
                shared.report(stats);
                if sent_since_empty > 0 {
                    tracing::info!(
                        records = sent_since_empty,
                        "the outbox is drained; events go straight to Kafka again"
                    );
                    sent_since_empty = 0;
                }
                tokio::time::timeout(REPORT_EVERY, shared.arrived.notified()).await.ok();
                continue;
            }
            Next::Stalled => {
                tokio::time::sleep(FIRST_BACKOFF).await;
                continue;
            }
            Next::Failed(error) => {
                tracing::error!(%error, "cannot read the outbox; retrying");
                tokio::time::sleep(LAST_BACKOFF).await;
                continue;
            }
            Next::Send(records) => records,
        };
        let outcome = send_batch(&emitter, records).await;
        sent_since_empty += outcome.acknowledged;
        let (stats, failure) = with_log(&shared, move |log| settle(log, outcome)).await;
        shared.report(stats);
        match failure {
            Some(failure) => {
                tracing::warn!(
                    outbox_records = stats.records,
                    retry_in_ms = backoff.as_millis(),
                    %failure,
                    "Kafka did not take the outbox's events yet"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(LAST_BACKOFF);
            }
            None => backoff = FIRST_BACKOFF,
        }
    }
}

/// Records what a batch achieved: sets aside what Kafka refused for good, moves the cursor past
/// what it acknowledged, and rewinds after any failure (sending, setting aside, or recording),
/// which the caller backs off from.
fn settle(log: &mut OutboxLog, outcome: Outcome) -> (OutboxStats, Option<String>) {
    let mut failure = outcome.failure;
    let mut drained_to = outcome.drained_to;
    if let Err(error) = outcome.refused.iter().try_for_each(|stored| log.set_aside(stored)) {
        // Only what came before the first refused record may be forgotten.
        drained_to = outcome.clean_to;
        failure.get_or_insert(format!("cannot set aside a record Kafka refused: {error}"));
    }
    if let Some(position) = drained_to
        && let Err(error) = log.mark_drained(position)
    {
        failure.get_or_insert(format!("cannot record what the outbox sent: {error}"));
    }
    if failure.is_some() {
        log.rewind();
    }
    (log.stats(), failure)
}

/// What sending one batch achieved.
struct Outcome {
    /// After the last record that was acknowledged with all those before it.
    drained_to: Option<Position>,
    /// After the last such record before the first one Kafka refused for good.
    clean_to: Option<Position>,
    acknowledged: u64,
    /// Records Kafka refused for good, to set aside.
    refused: Vec<Stored>,
    failure: Option<String>,
}

async fn send_batch(emitter: &AuditEmitter, records: Vec<(Stored, Position)>) -> Outcome {
    let mut deliveries = Vec::with_capacity(records.len());
    for (stored, _) in &records {
        deliveries.push(enqueue(emitter, stored).await);
    }
    let results = join_all(deliveries.into_iter().map(|delivery| async move {
        match delivery {
            Ok(delivery) => match delivery.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((error, _))) if is_permanent(&error) => Err((true, error.to_string())),
                Ok(Err((error, _))) => Err((false, error.to_string())),
                Err(_) => Err((false, "the producer was dropped".to_owned())),
            },
            Err(reason) => Err((false, reason)),
        }
    }))
    .await;
    let mut outcome = Outcome {
        drained_to: None,
        clean_to: None,
        acknowledged: 0,
        refused: Vec::new(),
        failure: None,
    };
    for ((stored, after), result) in records.iter().zip(results) {
        match result {
            Ok(()) => outcome.acknowledged += 1,
            Err((true, reason)) => {
                // Sending it again would block the outbox for ever: it is set aside in
                // refused.log, named here by its sequence.
                tracing::error!(
                    sequence = stored.sequence,
                    %reason,
                    file = super::log::REFUSED,
                    "Kafka refused an outbox record for good; it is set aside"
                );
                if outcome.failure.is_none() {
                    if outcome.refused.is_empty() {
                        outcome.clean_to = outcome.drained_to;
                    }
                    outcome.refused.push(stored.clone());
                }
            }
            Err((false, reason)) => {
                outcome.failure.get_or_insert(reason);
            }
        }
        if outcome.failure.is_none() {
            outcome.drained_to = Some(*after);
        }
    }
    outcome
}

async fn enqueue(emitter: &AuditEmitter, stored: &Stored) -> Result<DeliveryFuture, String> {
    let headers: Vec<(&str, &str)> = stored
        .record
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    loop {
        match emitter.try_enqueue(stored.record.key.as_deref(), &stored.record.payload, &headers) {
            Ok(delivery) => return Ok(delivery),
            Err(Enqueue::QueueFull) => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(Enqueue::Failed(error)) => return Err(error.to_string()),
        }
    }
}

//! Sends what the outbox holds to Kafka, oldest first, a batch at a time; the outbox forgets a
//! record only once Kafka acknowledged it and every record before it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::join_all;
use rdkafka::producer::DeliveryFuture;

use super::log::Position;
use super::record::Stored;
use super::{Shared, is_permanent};
use crate::{AuditEmitter, Enqueue};

/// Records sent before their acknowledgements are awaited.
const BATCH: usize = 1000;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const LAST_BACKOFF: Duration = Duration::from_secs(15);
/// How often the age of the oldest record is reported while nothing else happens.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Drains for as long as the emitter lives.
pub async fn run(shared: Arc<Shared>, emitter: Arc<AuditEmitter>) {
    let mut backoff = FIRST_BACKOFF;
    let mut sent_since_empty = 0_u64;
    loop {
        let batch = {
            let mut log = shared.log();
            if log.is_drained() {
                shared.spilling.store(false, Ordering::Release);
                None
            } else {
                Some(log.next_unsent(BATCH))
            }
        };
        let records = match batch {
            None => {
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
            Some(Err(error)) => {
                tracing::error!(%error, "cannot read the outbox; retrying");
                tokio::time::sleep(LAST_BACKOFF).await;
                continue;
            }
            Some(Ok(records)) => records,
        };
        let outcome = send_batch(&emitter, records).await;
        let stats = {
            let mut log = shared.log();
            let kept = outcome.refused.iter().try_for_each(|stored| log.set_aside(stored));
            if let Err(error) = &kept {
                tracing::error!(%error, "cannot set aside a record Kafka refused; it stays in the outbox");
            } else if let Some(position) = outcome.drained_to
                && let Err(error) = log.mark_drained(position)
            {
                tracing::error!(%error, "cannot record what the outbox sent; it will be sent again");
            }
            if outcome.failure.is_some() || kept.is_err() {
                log.rewind();
            }
            log.stats()
        };
        shared.report(stats);
        sent_since_empty += outcome.acknowledged;
        match outcome.failure {
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

/// What sending one batch achieved.
struct Outcome {
    /// After the last record that was acknowledged with all those before it.
    drained_to: Option<Position>,
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

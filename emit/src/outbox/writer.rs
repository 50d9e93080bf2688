//! Appends to the outbox on a thread of its own, a group at a time: records that arrive while one
//! fsync runs share the next, so an outage costs one fsync per group, not per event.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;

use tokio::sync::oneshot;

use super::{OutboxRecord, Shared, now_ms};
use crate::EmitError;

/// The most records one fsync covers.
const GROUP: usize = 4096;

type Request = (OutboxRecord, oneshot::Sender<Result<u64, EmitError>>);

pub struct Writer {
    requests: mpsc::Sender<Request>,
}

impl Writer {
    /// Starts the thread; it ends when the writer is dropped.
    pub fn start(shared: Arc<Shared>) -> Self {
        let (requests, received) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("sealtrail-outbox".to_owned())
            .spawn(move || write_groups(&shared, &received))
            .map_or_else(
                |error| tracing::error!(%error, "cannot start the outbox writer; events that need the outbox will fail"),
                drop,
            );
        Self { requests }
    }

    /// Appends `record` and answers with its sequence once it is on disk.
    pub async fn append(&self, record: OutboxRecord) -> Result<u64, EmitError> {
        let (answer, answered) = oneshot::channel();
        let stopped = || EmitError::NotAcknowledged("the outbox writer stopped".to_owned());
        self.requests.send((record, answer)).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

fn write_groups(shared: &Shared, received: &mpsc::Receiver<Request>) {
    while let Ok(first) = received.recv() {
        let mut group = vec![first];
        while group.len() < GROUP {
            match received.try_recv() {
                Ok(request) => group.push(request),
                Err(_) => break,
            }
        }
        let (records, answers): (Vec<OutboxRecord>, Vec<_>) = group.into_iter().unzip();
        let (taken, stats) = {
            let mut log = shared.log();
            let taken = log.append(&records, now_ms());
            if !log.is_drained() && !shared.spilling.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    outbox = %log.dir().display(),
                    "Kafka is not acknowledging; events go to the outbox until it answers again"
                );
            }
            (taken, log.stats())
        };
        shared.report(stats);
        shared.arrived.notify_one();
        match taken {
            Ok(results) => {
                for (answer, result) in answers.into_iter().zip(results) {
                    answer.send(result.map_err(EmitError::from)).ok();
                }
            }
            Err(error) => {
                tracing::error!(%error, "the outbox cannot write; events that need it fail");
                let reason = error.to_string();
                for answer in answers {
                    answer.send(Err(EmitError::NotAcknowledged(reason.clone()))).ok();
                }
            }
        }
    }
}

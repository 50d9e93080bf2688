//! What Kafka has acknowledged: the producer's delivery reports, per source partition.

use std::collections::HashMap;
use std::sync::Mutex;

use rdkafka::ClientContext;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::ProducerContext;

/// What a produced record was, reported back with its delivery.
#[derive(Debug, Clone, Copy)]
pub enum Produced {
    Sealed { partition: i32 },
    Rejected { partition: i32 },
    Checkpoint { partition: i32, source_offset: i64 },
}

impl Produced {
    fn kind(self) -> &'static str {
        match self {
            Self::Sealed { .. } => "sealed event",
            Self::Rejected { .. } => "DLQ",
            Self::Checkpoint { .. } => "checkpoint",
        }
    }

    fn partition(self) -> i32 {
        match self {
            Self::Sealed { partition } | Self::Rejected { partition } | Self::Checkpoint { partition, .. } => partition,
        }
    }
}

#[derive(Debug, Default)]
pub struct DeliveryState {
    /// The first delivery that failed: sealing cannot continue past a hole in its output.
    pub failure: Option<String>,
    pub dlq_in_flight: HashMap<i32, u64>,
    /// The offset the next DLQ record of a partition will get, as far as acknowledged.
    pub dlq_next: HashMap<i32, i64>,
    /// Source offsets safe to commit: those covered by an acknowledged checkpoint.
    pub committable: HashMap<i32, i64>,
}

/// The producer context: records every delivery report in [`DeliveryState`].
#[derive(Debug, Default)]
pub struct Deliveries {
    pub state: Mutex<DeliveryState>,
}

impl Deliveries {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, DeliveryState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn sent(&self, produced: Produced) {
        let mut state = self.lock();
        if let Produced::Rejected { partition } = produced {
            *state.dlq_in_flight.entry(partition).or_default() += 1;
        }
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<Produced>;

    fn delivery(&self, result: &DeliveryResult<'_>, produced: Box<Produced>) {
        let mut state = self.lock();
        if let Produced::Rejected { partition } = *produced {
            let pending = state.dlq_in_flight.entry(partition).or_default();
            *pending = pending.saturating_sub(1);
        }
        match result {
            Ok(message) => match *produced {
                Produced::Rejected { partition } => {
                    let next = state.dlq_next.entry(partition).or_default();
                    *next = (*next).max(message.offset() + 1);
                }
                Produced::Checkpoint {
                    partition,
                    source_offset,
                } => {
                    state.committable.insert(partition, source_offset + 1);
                }
                Produced::Sealed { .. } => {}
            },
            Err((error, message)) => {
                if state.failure.is_none() {
                    state.failure = Some(format!(
                        "a {} record for {} partition {} was not acknowledged: {error}",
                        produced.kind(),
                        message.topic(),
                        produced.partition()
                    ));
                }
            }
        }
    }
}

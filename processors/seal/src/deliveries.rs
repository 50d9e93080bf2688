//! What Kafka has acknowledged: the producer's delivery reports, per source partition.

use std::collections::HashMap;
use std::sync::Mutex;

use rdkafka::ClientContext;
use rdkafka::client::OAuthToken;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::ProducerContext;
use sealtrail_kafka::oauth::OAuthTokens;

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
    tokens: OAuthTokens,
}

impl Deliveries {
    pub fn new(tokens: OAuthTokens) -> Self {
        Self {
            state: Mutex::default(),
            tokens,
        }
    }

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

impl ClientContext for Deliveries {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(&self, _config: Option<&str>) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        self.tokens.generate()
    }
}

impl sealtrail_kafka::RefreshesTokens for Deliveries {
    fn oauth_tokens(&self) -> &OAuthTokens {
        &self.tokens
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<Produced>;

    fn delivery(&self, result: &DeliveryResult<'_>, produced: Box<Produced>) {
        let outcome = match result {
            Ok(message) => Ok(message.offset()),
            Err((error, message)) => Err(format!(
                "{} partition {}: {error}",
                message.topic(),
                message.partition()
            )),
        };
        self.record(*produced, outcome);
    }
}

impl Deliveries {
    /// Records one delivery report: the offset the record got, or why it was not acknowledged.
    pub fn record(&self, produced: Produced, outcome: Result<i64, String>) {
        let mut state = self.lock();
        if let Produced::Rejected { partition } = produced {
            let pending = state.dlq_in_flight.entry(partition).or_default();
            *pending = pending.saturating_sub(1);
        }
        match outcome {
            Ok(offset) => match produced {
                Produced::Rejected { partition } => {
                    let next = state.dlq_next.entry(partition).or_default();
                    *next = (*next).max(offset + 1);
                }
                Produced::Checkpoint {
                    partition,
                    source_offset,
                } => {
                    state.committable.insert(partition, source_offset + 1);
                }
                Produced::Sealed { .. } => {}
            },
            Err(reason) => {
                if state.failure.is_none() {
                    state.failure = Some(format!(
                        "a {} record of source partition {} was not acknowledged ({reason})",
                        produced.kind(),
                        produced.partition()
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dlq_records_are_counted_until_acknowledged_and_move_the_next_offset() {
        let deliveries = Deliveries::default();
        for _ in 0..3 {
            deliveries.sent(Produced::Rejected { partition: 1 });
        }
        deliveries.sent(Produced::Sealed { partition: 1 });
        assert_eq!(deliveries.lock().dlq_in_flight[&1], 3);
        deliveries.record(Produced::Rejected { partition: 1 }, Ok(7));
        deliveries.record(Produced::Rejected { partition: 1 }, Ok(5));
        assert_eq!(
            deliveries.lock().dlq_in_flight[&1],
            1,
            "a checkpoint still waits for one"
        );
        assert_eq!(
            deliveries.lock().dlq_next[&1],
            8,
            "acknowledgements out of order keep the highest"
        );
        deliveries.record(Produced::Rejected { partition: 1 }, Ok(8));
        assert_eq!(deliveries.lock().dlq_in_flight[&1], 0);
        assert_eq!(deliveries.lock().dlq_next[&1], 9);
        assert!(deliveries.lock().failure.is_none());
    }

    #[test]
    fn only_an_acknowledged_checkpoint_makes_source_offsets_committable() {
        let deliveries = Deliveries::default();
        deliveries.record(Produced::Sealed { partition: 0 }, Ok(41));
        assert!(
            deliveries.lock().committable.is_empty(),
            "a sealed event alone commits nothing"
        );
        deliveries.record(
            Produced::Checkpoint {
                partition: 0,
                source_offset: 99,
            },
            Ok(42),
        );
        assert_eq!(deliveries.lock().committable[&0], 100);
    }

    #[test]
    fn the_first_failed_delivery_is_kept_and_stops_the_processor() {
        let deliveries = Deliveries::default();
        deliveries.sent(Produced::Rejected { partition: 2 });
        deliveries.record(Produced::Rejected { partition: 2 }, Err("timed out".into()));
        deliveries.record(Produced::Sealed { partition: 3 }, Err("later".into()));
        let state = deliveries.lock();
        assert_eq!(state.dlq_in_flight[&2], 0, "a failed record is no longer in flight");
        assert!(state.dlq_next.is_empty(), "nor acknowledged");
        let failure = state.failure.as_deref().expect("a failure");
        assert!(failure.contains("DLQ") && failure.contains("timed out"), "{failure}");
    }
}

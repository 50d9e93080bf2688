//! The driver's partition source on Kafka: a member of a consumer group whose rebalance
//! callbacks only queue what happened, for the processor's own loop to act on (the way Vector's
//! Kafka source forwards its callbacks), so no processor work ever runs inside librdkafka.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::OAuthToken;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::{BorrowedMessage, Headers as _, Message};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sealtrail_runtime::driver::{GroupLag, Header, InputRecord, PartitionLag, PartitionSource, Polled};
use sealtrail_runtime::telemetry::events::ErrorKind;

use crate::group_heal::{leave_group, rejoin_after_leaving};
use crate::oauth::OAuthTokens;
use crate::{GroupLagProbe, KafkaError, KafkaSettings, RebalanceWatch, WatermarkProbe};

/// A rebalance as the callback saw it.
#[derive(Debug)]
enum Rebalance {
    Assigned(Vec<i32>),
    Revoked(Vec<i32>),
    Failed(String),
}

/// The consumer context: rebalances are queued, never acted on here.
#[derive(Debug, Default)]
struct Queueing {
    rebalances: Mutex<VecDeque<Rebalance>>,
    watch: Mutex<RebalanceWatch>,
    /// Set once the processor is done with its partitions: revocations complete at once.
    leaving: Mutex<bool>,
    /// Why the broker refused the last commit made without waiting, until the driver asks.
    commit_failure: Mutex<Option<String>>,
    tokens: OAuthTokens,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn partitions(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements()
        .iter()
        .map(rdkafka::topic_partition_list::TopicPartitionListElem::partition)
        .collect()
}

impl ClientContext for Queueing {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(&self, _config: Option<&str>) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        self.tokens.generate()
    }
}

impl crate::RefreshesTokens for Queueing {
    fn oauth_tokens(&self) -> &OAuthTokens {
        &self.tokens
    }
}

impl ConsumerContext for Queueing {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        if *lock(&self.leaving) {
            consumer.unassign().ok();
            return;
        }
        let rebalance = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                // The generation is read here, where it is the one this assignment belongs to.
                lock(&self.watch).on_assign(consumer);
                Rebalance::Assigned(partitions(tpl))
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                lock(&self.watch).revoked();
                Rebalance::Revoked(partitions(tpl))
            }
            other => {
                consumer.unassign().ok();
                Rebalance::Failed(format!("rebalance failed: {other:?}"))
            }
        };
        lock(&self.rebalances).push_back(rebalance);
    }

    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(error) = result {
            *lock(&self.commit_failure) = Some(error.to_string());
        }
    }
}

/// A record fetched from Kafka, as the driver hands it to a processor.
pub struct KafkaRecord<'a>(BorrowedMessage<'a>);

impl std::fmt::Debug for KafkaRecord<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaRecord")
            .field("partition", &self.0.partition())
            .field("offset", &self.0.offset())
            .finish_non_exhaustive()
    }
}

impl InputRecord for KafkaRecord<'_> {
    fn partition(&self) -> i32 {
        self.0.partition()
    }

    fn offset(&self) -> i64 {
        self.0.offset()
    }

    fn key(&self) -> Option<&[u8]> {
        self.0.key()
    }

    fn value(&self) -> Option<&[u8]> {
        self.0.payload()
    }

    fn headers(&self) -> Vec<Header<'_>> {
        self.0
            .headers()
            .map(|headers| headers.iter().map(|h| (h.key, h.value)).collect())
            .unwrap_or_default()
    }

    fn timestamp_ms(&self) -> Option<i64> {
        self.0.timestamp().to_millis()
    }
}

/// One member of `group` reading `topic`.
pub struct KafkaSource {
    consumer: BaseConsumer<Queueing>,
    topic: String,
    /// High watermarks on a connection of their own: a stalled fetch cannot hide the lag.
    probe: WatermarkProbe,
    /// The whole group's lag, which also counts partitions no live member owns.
    group_lag: GroupLagProbe,
    paused: bool,
    membership: Membership,
}

/// Where the member stands in its group, for leaving and joining again safely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Membership {
    Steady,
    /// An assignment or a revocation was handed out and waits for `assign` or `unassign`:
    /// librdkafka waits for that call, and leaving the group meanwhile would strand the member
    /// outside it (a later `assign` would then be a manual assignment). `then_rejoin` when the
    /// revocation is the one leaving caused.
    AwaitingCall {
        then_rejoin: bool,
    },
    /// Left after a stale assignment; joins again once the revocation this causes is done.
    Leaving,
    /// Joining again failed; it is tried again at every poll.
    Resubscribe,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl KafkaSource {
    /// Joins `group` on `topic` (range assignment, so a partition's owner changes only when the
    /// membership does), as the static member `instance` if given, with `extra` client settings.
    pub fn subscribe(
        settings: &KafkaSettings,
        group: &str,
        topic: &str,
        instance: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Result<Self, KafkaError> {
        let mut config = settings.consumer(group);
        config.set("partition.assignment.strategy", "range");
        if let Some(instance) = instance {
            config.set("group.instance.id", instance);
        }
        for (key, value) in extra {
            config.set(*key, *value);
        }
        let client = |source| KafkaError::Client {
            bootstrap: settings.bootstrap.clone(),
            source,
        };
        let context = Queueing {
            tokens: settings.oauth_tokens().map_err(client)?,
            ..Queueing::default()
        };
        let consumer: BaseConsumer<Queueing> = settings.create_with_context(&config, context).map_err(client)?;
        consumer.subscribe(&[topic]).map_err(|source| KafkaError::Group {
            what: format!("subscribe to {topic}"),
            source,
        })?;
        Ok(Self {
            consumer,
            topic: topic.to_owned(),
            probe: WatermarkProbe::new(settings, Duration::from_secs(2))?,
            group_lag: GroupLagProbe::new(settings, group, Duration::from_secs(2))?,
            paused: false,
            membership: Membership::Steady,
        })
    }

    /// The membership after handing out a rebalance that waits for `assign` or `unassign`.
    fn awaiting(&self) -> Membership {
        Membership::AwaitingCall {
            then_rejoin: matches!(
                self.membership,
                Membership::Leaving | Membership::AwaitingCall { then_rejoin: true }
            ),
        }
    }

    /// Joins the group again after leaving it.
    fn rejoin(&mut self) -> Result<(), String> {
        match rejoin_after_leaving(&self.consumer, &[&self.topic]) {
            Ok(()) => {
                self.membership = Membership::Steady;
                Ok(())
            }
            Err(error) => {
                // Tried again at every poll: a member must not stay outside its group.
                self.membership = Membership::Resubscribe;
                Err(format!(
                    "cannot join the group on {} again: {error}; retrying",
                    self.topic
                ))
            }
        }
    }

    /// The next queued rebalance, and whether it waits for `assign` or `unassign`.
    fn next_rebalance(consumer: &BaseConsumer<Queueing>) -> Option<(Polled<KafkaRecord<'static>>, bool)> {
        let rebalance = lock(&consumer.context().rebalances).pop_front()?;
        Some(match rebalance {
            Rebalance::Assigned(partitions) => (Polled::Assigned(partitions), true),
            Rebalance::Revoked(partitions) => (Polled::Revoked(partitions), true),
            Rebalance::Failed(detail) => (
                Polled::Trouble {
                    kind: ErrorKind::Rebalance,
                    detail,
                },
                false,
            ),
        })
    }

    fn positions(&self, offsets: &[(i32, i64)]) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        for (partition, offset) in offsets {
            list.add_partition_offset(&self.topic, *partition, Offset::Offset(*offset))
                .ok();
        }
        list
    }
}

impl PartitionSource for KafkaSource {
    type Record<'a> = KafkaRecord<'a>;

    fn topic(&self) -> &str {
        &self.topic
    }

    fn poll(&mut self, timeout: Duration) -> Polled<KafkaRecord<'_>> {
        if let Some((rebalance, awaiting)) = Self::next_rebalance(&self.consumer) {
            if awaiting {
                self.membership = self.awaiting();
            }
            return rebalance;
        }
        if self.membership == Membership::Resubscribe {
            return match self.consumer.subscribe(&[&self.topic]) {
                Ok(()) => {
                    self.membership = Membership::Steady;
                    Polled::Nothing
                }
                Err(error) => Polled::Trouble {
                    kind: ErrorKind::Rebalance,
                    detail: format!("cannot join the group on {} again: {error}; retrying", self.topic),
                },
            };
        }
        if self.membership == Membership::Steady && lock(&self.consumer.context().watch).take_rejoin(Instant::now()) {
            // Leaving revokes the partitions (queued like any revocation); the member joins
            // again once that revocation is done (`unassign`). Without partitions there is no
            // revocation to wait for.
            let holds = self.consumer.assignment().map_or(0, |assignment| assignment.count());
            self.consumer.unsubscribe();
            if holds == 0 {
                if let Err(error) = self.rejoin() {
                    return Polled::Trouble {
                        kind: ErrorKind::Rebalance,
                        detail: error,
                    };
                }
            } else {
                self.membership = Membership::Leaving;
            }
            return Polled::Trouble {
                kind: ErrorKind::StaleAssignment,
                detail: "the coordinator handed back a stale assignment; leaving and joining the group again"
                    .to_owned(),
            };
        }
        let polled = self.consumer.poll(timeout);
        if let Some((rebalance, awaiting)) = Self::next_rebalance(&self.consumer) {
            // A record fetched in the same poll belongs to the assignment being revoked: it was
            // not handled, nothing was committed for it, and its next owner reads it again.
            drop(polled);
            if awaiting {
                self.membership = self.awaiting();
            }
            return rebalance;
        }
        match polled {
            None => Polled::Nothing,
            Some(Err(error)) => Polled::Trouble {
                kind: ErrorKind::Consume,
                detail: error.to_string(),
            },
            Some(Ok(message)) if self.paused => {
                // Fetched before the pause took effect: put it back, it must not be skipped.
                let (partition, offset) = (message.partition(), message.offset());
                drop(message);
                let detail = match self.consumer.seek(
                    &self.topic,
                    partition,
                    Offset::Offset(offset),
                    Duration::from_secs(5),
                ) {
                    Ok(()) => format!("partition {partition} offset {offset} arrived while paused; read again later"),
                    Err(error) => format!(
                        "partition {partition} offset {offset} arrived while paused and cannot be read again: {error}"
                    ),
                };
                Polled::Trouble {
                    kind: ErrorKind::FetchedWhilePaused,
                    detail,
                }
            }
            Some(Ok(message)) => Polled::Record(KafkaRecord(message)),
        }
    }

    fn committed(&mut self, partitions: &[i32]) -> Result<HashMap<i32, i64>, String> {
        let offsets: Vec<(i32, i64)> = partitions.iter().map(|partition| (*partition, 0)).collect();
        let found = self
            .consumer
            .committed_offsets(self.positions(&offsets), Duration::from_secs(10))
            .map_err(|error| format!("reading the committed offsets of {}: {error}", self.topic))?;
        Ok(found
            .elements()
            .iter()
            .filter_map(|element| match element.offset() {
                Offset::Offset(offset) if offset >= 0 => Some((element.partition(), offset)),
                _ => None,
            })
            .collect())
    }

    fn assign(&mut self, positions: &[(i32, i64)]) -> Result<(), String> {
        if matches!(self.membership, Membership::AwaitingCall { .. }) {
            self.membership = Membership::Steady;
        }
        self.consumer.assign(&self.positions(positions)).map_err(|error| {
            format!(
                "cannot assign {} partitions of {}: {error}",
                positions.len(),
                self.topic
            )
        })
    }

    fn unassign(&mut self) -> Result<(), String> {
        let unassigned = self
            .consumer
            .unassign()
            .map_err(|error| format!("cannot unassign {}: {error}", self.topic));
        match self.membership {
            Membership::AwaitingCall { then_rejoin: true } => self.rejoin()?,
            Membership::AwaitingCall { then_rejoin: false } => self.membership = Membership::Steady,
            Membership::Steady | Membership::Leaving | Membership::Resubscribe => {}
        }
        unassigned
    }

    fn commit(&mut self, offsets: &[(i32, i64)], wait: bool) -> Result<(), String> {
        let mode = if wait { CommitMode::Sync } else { CommitMode::Async };
        self.consumer
            .commit(&self.positions(offsets), mode)
            .map_err(|error| error.to_string())
    }

    fn take_commit_failure(&mut self) -> Option<String> {
        lock(&self.consumer.context().commit_failure).take()
    }

    fn pause(&mut self, paused: bool) {
        let assignment = self.consumer.assignment().unwrap_or_default();
        let outcome = if paused {
            self.consumer.pause(&assignment)
        } else {
            self.consumer.resume(&assignment)
        };
        if let Err(error) = outcome {
            tracing::warn!(%error, paused, topic = %self.topic, "cannot pause or resume the assignment");
        }
        self.paused = paused;
    }

    fn lags(&mut self, positions: &[(i32, i64)]) -> Vec<PartitionLag> {
        self.probe.lags(&self.topic, positions.iter().copied())
    }

    fn group_lag(&mut self) -> Option<GroupLag> {
        self.group_lag.lag(&self.probe, &self.topic)
    }

    fn leave(&mut self) {
        *lock(&self.consumer.context().leaving) = true;
        if let Err(error) = leave_group(&self.consumer) {
            tracing::warn!(%error, topic = %self.topic, "leaving the group failed; the other instances take over when this one's session expires");
        }
    }
}

//! Getting a consumer group to hand out a dead member's partitions when the coordinator does not.
//!
//! Tansu 0.6.0's coordinator, when a member's session expires, drops the member but keeps the
//! group's generation and its old assignment: the survivors are told to rejoin, and are handed
//! back exactly what they had, so the dead member's partitions stay unowned for good (measured in
//! docs/operations.md, "Many instances"). On Apache Kafka every rebalance after a revocation ends
//! in a new generation, so an assignment at the generation of the previous one is the sign of
//! that defect. A member that sees it leaves the group and joins again: the `LeaveGroup` moves the
//! coordinator to a new generation with a fresh assignment over the live members.
//!
//! This is the second module of the workspace allowed `unsafe`: librdkafka exposes the group
//! generation only through its C API (rdkafka keeps its group metadata pointer private).
#![allow(unsafe_code)]

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

use crate::KafkaError;

/// The fewest seconds between two rejoins of one member: a heal takes a few seconds on the
/// local broker, and a member must never keep its group rebalancing.
const REJOIN_AT_MOST_EVERY: Duration = Duration::from_secs(30);

/// The generation of the group this consumer last joined; `None` outside a group.
fn group_generation<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> Option<i32> {
    // SAFETY: the client pointer is valid while `consumer` is borrowed; librdkafka returns a new
    // metadata object (or NULL) that we own, read once and destroy.
    unsafe {
        let metadata = rdkafka_sys::rd_kafka_consumer_group_metadata(consumer.client().native_ptr());
        if metadata.is_null() {
            return None;
        }
        let generation = rdkafka_sys::rd_kafka_consumer_group_metadata_generation_id(metadata);
        rdkafka_sys::rd_kafka_consumer_group_metadata_destroy(metadata);
        (generation >= 0).then_some(generation)
    }
}

/// Watches a member's rebalances for an assignment handed back unchanged at the same generation.
/// Fed by the rebalance callbacks; asked by the member's own loop (never act inside a callback).
#[derive(Debug, Default)]
pub struct RebalanceWatch {
    last_assigned_generation: Option<i32>,
    revoked_since_assigned: bool,
    rejoin_due: bool,
    last_rejoin: Option<Instant>,
}

impl RebalanceWatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn revoked(&mut self) {
        self.revoked_since_assigned = true;
    }

    /// Records an assignment at `generation`; true when it is the stale re-sync described above.
    pub fn assigned(&mut self, generation: Option<i32>) -> bool {
        let stale = self.revoked_since_assigned && generation.is_some() && generation == self.last_assigned_generation;
        self.revoked_since_assigned = false;
        self.last_assigned_generation = generation;
        if stale {
            self.rejoin_due = true;
        }
        stale
    }

    /// Records the assignment `consumer` was just given (call it from the assign callback), and
    /// warns when it is stale.
    pub fn on_assign<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        let generation = group_generation(consumer);
        if self.assigned(generation) {
            tracing::warn!(
                ?generation,
                "the group coordinator handed back the previous assignment at the same generation; a dead member's partitions may be unowned: leaving and rejoining the group"
            );
        }
    }

    /// True (once) when the member should leave and rejoin now.
    pub fn take_rejoin(&mut self, now: Instant) -> bool {
        let rested = self
            .last_rejoin
            .is_none_or(|at| now.duration_since(at) >= REJOIN_AT_MOST_EVERY);
        if self.rejoin_due && rested {
            self.rejoin_due = false;
            self.last_rejoin = Some(now);
            return true;
        }
        false
    }
}

/// Leaves the group: unsubscribes and serves the consumer until its revocation has run and the
/// `LeaveGroup` has gone out. librdkafka sends no `LeaveGroup` when a static member (`group.instance.id`)
/// closes, so without this a member that stops for good keeps its partitions until its session
/// expires (and on Tansu, forever). Records fetched meanwhile are dropped: they were not handled,
/// so nothing was committed for them, and whoever gets their partition reads them again.
pub fn leave_group<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> Result<(), KafkaError> {
    consumer.unsubscribe();
    let revoked_by = Instant::now() + Duration::from_secs(3);
    while Instant::now() < revoked_by
        && consumer
            .assignment()
            .map_err(|source| KafkaError::Group {
                what: "read the assignment".to_owned(),
                source,
            })?
            .count()
            > 0
    {
        drop(consumer.poll(Duration::from_millis(100)));
    }
    // The `LeaveGroup` is sent by librdkafka's own thread once the revocation is done.
    let sent_by = Instant::now() + Duration::from_millis(500);
    while Instant::now() < sent_by {
        drop(consumer.poll(Duration::from_millis(100)));
    }
    Ok(())
}

/// Joins the group again after leaving it (see the module documentation): the `LeaveGroup`
/// goes out first, so the coordinator moves to a new generation.
pub fn rejoin_after_leaving<C: ConsumerContext>(consumer: &BaseConsumer<C>, topics: &[&str]) -> Result<(), KafkaError> {
    let sent_by = Instant::now() + Duration::from_millis(500);
    while Instant::now() < sent_by {
        drop(consumer.poll(Duration::from_millis(100)));
    }
    consumer.subscribe(topics).map_err(|source| KafkaError::Group {
        what: format!("subscribe to {topics:?} again"),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revocation_answered_by_a_new_generation_needs_nothing() {
        let mut watch = RebalanceWatch::new();
        assert!(!watch.assigned(Some(1)));
        watch.revoked();
        assert!(!watch.assigned(Some(2)));
        assert!(!watch.take_rejoin(Instant::now()));
    }

    #[test]
    fn the_same_generation_after_a_revocation_asks_for_one_rejoin() {
        let mut watch = RebalanceWatch::new();
        watch.assigned(Some(3));
        watch.revoked();
        assert!(watch.assigned(Some(3)));
        let now = Instant::now();
        assert!(watch.take_rejoin(now));
        assert!(!watch.take_rejoin(now), "asked once");
    }

    #[test]
    fn rejoins_are_spaced_out() {
        let mut watch = RebalanceWatch::new();
        let start = Instant::now();
        watch.assigned(Some(5));
        watch.revoked();
        watch.assigned(Some(5));
        assert!(watch.take_rejoin(start));
        watch.revoked();
        watch.assigned(Some(5));
        assert!(!watch.take_rejoin(start + Duration::from_secs(5)), "too soon");
        assert!(watch.take_rejoin(start + REJOIN_AT_MOST_EVERY), "still due later");
    }

    #[test]
    fn a_first_assignment_or_an_unknown_generation_is_never_stale() {
        let mut watch = RebalanceWatch::new();
        watch.revoked();
        assert!(!watch.assigned(None));
        watch.revoked();
        assert!(!watch.assigned(None), "no generation known: nothing to compare");
    }
}

//! sealtrail's patch of librdkafka (`third_party/rdkafka-sys`, see its PATCHES.md), held by a
//! test on the running broker.
//!
//! librdkafka 2.12's idempotent producer counts in-flight *messages* against its limit of five
//! in-flight *requests* per partition, so while a request of five records or more is in flight it
//! holds back the next; but it had already told its broker thread to wake at once because a batch
//! was ready. The thread
//! then woke, found it could not send, and woke again: a busy loop for as long as the broker took
//! to answer (measured: about 0.6 of a core in the seal's producer under load, and a produce ->
//! queryable median of 3.7 s instead of 2.0 s at 5,000 events/s).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::producer::{BaseProducer, ProducerContext};
use rdkafka::statistics::Statistics;

use crate::backlog::{one_partition_topic, produce_all};
use crate::harness::shared;

/// Keeps the latest statistics librdkafka reports.
#[derive(Clone, Default)]
struct LatestStatistics(Arc<Mutex<Option<Statistics>>>);

impl ClientContext for LatestStatistics {
    fn stats(&self, statistics: Statistics) {
        *self.0.lock().expect("statistics lock") = Some(statistics);
    }
}

impl ProducerContext for LatestStatistics {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, (): ()) {}
}

/// Enough records that many batches queue up behind each request the broker is working on.
const RECORDS: usize = 50_000;
const RECORD_BYTES: usize = 1_000;

/// Wake-ups of the broker thread per produce request. Waking for a response, a timer or newly
/// queued records costs a few per request (patched, this test counted 2.9); the busy loop costs
/// one per pass, thousands per request while the broker writes a batch (unpatched: 66,595).
const MAX_WAKEUPS_PER_REQUEST: f64 = 100.0;

#[test]
fn an_idempotent_producer_waits_for_its_request_instead_of_spinning() {
    let stack = shared();
    let topic = one_partition_topic("spin");
    let statistics = LatestStatistics::default();
    let producer: BaseProducer<LatestStatistics> = stack
        .kafka()
        .producer()
        .set("statistics.interval.ms", "200")
        .create_with_context(statistics.clone())
        .expect("the product's idempotent producer");
    produce_all(&producer, &topic, RECORDS, RECORD_BYTES);

    // Statistics are cumulative: wait for a report that counts every record delivered.
    let started = Instant::now();
    let report = loop {
        producer.poll(Duration::from_millis(100));
        let latest = statistics.0.lock().expect("statistics lock").clone();
        if let Some(report) = latest.filter(|report| usize::try_from(report.txmsgs).is_ok_and(|sent| sent >= RECORDS)) {
            break report;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "librdkafka never reported the {RECORDS} records delivered"
        );
    };
    let (wakeups, requests) = report.brokers.values().filter(|broker| broker.nodeid >= 0).fold(
        (0_u64, 0_i64),
        |(wakeups, requests), broker| {
            (
                wakeups + broker.wakeups.unwrap_or_default(),
                requests + broker.req.get("Produce").copied().unwrap_or_default(),
            )
        },
    );
    assert!(requests > 0, "no produce request counted: {:?}", report.brokers.keys());
    let per_request = wakeups as f64 / requests as f64;
    eprintln!("{wakeups} wake-ups of the broker thread for {requests} produce requests ({per_request:.1} each)");
    assert!(
        per_request < MAX_WAKEUPS_PER_REQUEST,
        "the producer's broker thread woke {per_request:.0} times per produce request ({wakeups} for {requests}): \
         it busy-loops while a request is in flight; is third_party/rdkafka-sys patched in (Cargo.toml's [patch.crates-io])?"
    );
}

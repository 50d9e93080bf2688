//! A consumer starting far behind still gets records: the reproduction of the stall Tansu 0.6.0
//! had on a backlog (each fetch read the partition from the fetch offset to the high watermark,
//! so a request outlived the client's timeout and was retried forever). The local stack runs
//! Tansu with sealtrail's patch (`infra/local/src/install/tansu_source.rs`); without it, this test
//! reads nothing and ends at its deadline.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use sealtrail_kafka::{TopicSpec, ensure_topics};

use crate::harness::{shared, unique};

/// About 100 MB behind: enough for an unpatched broker to spend longer than the request timeout
/// below on every fetch, and quick to produce.
const BACKLOG: usize = 200_000;
const RECORD_BYTES: usize = 500;
const WANTED: usize = 20_000;

#[test]
fn a_consumer_far_behind_gets_records_with_a_short_request_timeout() {
    let stack = shared();
    let topic = unique("backlog");
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(ensure_topics(&stack.kafka(), &[TopicSpec::new(&topic, 1)]))
        .expect("topic");
    let producer: BaseProducer = stack.kafka().producer().create().expect("producer");
    let payload = vec![b'x'; RECORD_BYTES];
    for n in 0..BACKLOG {
        let key = format!("key-{}", n % 97);
        let mut record = BaseRecord::to(&topic).partition(0).key(&key).payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(300))
        .expect("every record acknowledged");

    // A fetch that scanned the whole backlog would take seconds; 5 s fails it every time.
    let consumer: BaseConsumer = stack
        .kafka()
        .reader()
        .set("socket.timeout.ms", "5000")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&assignment).expect("assign");
    let started = Instant::now();
    let mut read = 0;
    while read < WANTED {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "only {read} of {WANTED} records read from a {BACKLOG}-record backlog: fetches stall"
        );
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(_)) => read += 1,
            Some(Err(error)) => eprintln!("consume error: {error}"),
            None => {}
        }
    }
    assert_eq!(read, WANTED);
}

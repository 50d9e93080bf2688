//! The local broker's patches (`infra/local/src/install/tansu_source.rs`), each held by a test on
//! the running broker. A consumer starting far behind still gets records: the reproduction of the
//! stall Tansu 0.6.0 had on a backlog (each fetch read the partition from the fetch offset to the
//! high watermark, so a request outlived the client's timeout and was retried forever); without
//! the patch, that test reads nothing and ends at its deadline. A record's headers are found
//! through an index, and a fetch that has its records answers at once.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};
use sealtrail_kafka::{TopicSpec, ensure_topics};

use crate::harness::{shared, unique};

/// A new topic of one partition on the shared stack.
pub(crate) fn one_partition_topic(prefix: &str) -> String {
    let topic = unique(prefix);
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(ensure_topics(&shared().kafka(), &[TopicSpec::new(&topic, 1)]))
        .expect("topic");
    topic
}

/// Produces `count` records of `bytes` bytes to partition 0 of `topic` (keys cycling over 97),
/// waiting for room in the producer's queue, then waits for every acknowledgement.
pub(crate) fn produce_all<C: ProducerContext<DeliveryOpaque = ()>>(
    producer: &BaseProducer<C>,
    topic: &str,
    count: usize,
    bytes: usize,
) {
    let payload = vec![b'x'; bytes];
    for n in 0..count {
        let key = format!("key-{}", n % 97);
        let mut record = BaseRecord::to(topic).partition(0).key(&key).payload(&payload);
        while let Err((_, back)) = producer.send(record) {
            record = back;
            producer.poll(Duration::from_millis(10));
        }
    }
    producer
        .flush(Duration::from_secs(300))
        .expect("every record acknowledged");
}

fn read_from_the_start(consumer: &BaseConsumer, topic: &str) {
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&assignment).expect("assign");
}

/// About 100 MB behind: enough for an unpatched broker to spend longer than the request timeout
/// below on every fetch, and quick to produce.
const BACKLOG: usize = 200_000;
const RECORD_BYTES: usize = 500;
const WANTED: usize = 20_000;

#[test]
fn a_consumer_far_behind_gets_records_with_a_short_request_timeout() {
    let stack = shared();
    let topic = one_partition_topic("backlog");
    let producer: BaseProducer = stack.kafka().producer().create().expect("producer");
    produce_all(&producer, &topic, BACKLOG, RECORD_BYTES);

    // A fetch that scanned the whole backlog would take seconds; 5 s fails it every time.
    let consumer: BaseConsumer = stack
        .kafka()
        .reader()
        .set("socket.timeout.ms", "5000")
        .create()
        .expect("consumer");
    read_from_the_start(&consumer, &topic);
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

/// The query Tansu 0.6.0 runs for each fetched record's headers (`header_fetch.sql`).
const HEADER_FETCH_SQL: &str = "select h.k, h.v from header h \
    join record r on h.topition = r.topition and h.offset_id = r.offset_id \
    join topition tp on tp.id = r.topition join topic t on tp.topic = t.id \
    join cluster c on t.cluster = c.id \
    where c.name = ?1 and t.name = ?2 and tp.partition = ?3 and r.offset_id = ?4";

/// Sealed records carry headers, and the broker looks up each fetched record's headers: without
/// the index of sealtrail's patch that lookup scanned every header stored, so a consumer of the
/// sealed topic slowed down with every record sealed (the 1,000,000-event `bench-peer` runs
/// plateaued at about 1,400 rows/s). The plan SQLite chooses for the broker's own query, on the
/// running broker's database, must search an index; the record's headers must still come back.
#[test]
fn the_broker_finds_a_records_headers_through_an_index() {
    use rdkafka::Message as _;
    use rdkafka::message::{Header, Headers as _, OwnedHeaders};

    let stack = shared();
    let topic = one_partition_topic("headers");
    let producer: BaseProducer = stack.kafka().producer().create().expect("producer");
    let headers = OwnedHeaders::new().insert(Header {
        key: "traceparent",
        value: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    });
    producer
        .send(
            BaseRecord::to(&topic)
                .partition(0)
                .key("k")
                .payload("v")
                .headers(headers),
        )
        .map_err(|(error, _)| error)
        .expect("queue the record");
    producer
        .flush(Duration::from_secs(60))
        .expect("the record acknowledged");

    let consumer: BaseConsumer = stack.kafka().reader().create().expect("consumer");
    read_from_the_start(&consumer, &topic);
    let started = Instant::now();
    let record = loop {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the record never came back"
        );
        if let Some(result) = consumer.poll(Duration::from_millis(500)) {
            break result.expect("a record").detach();
        }
    };
    let header = record.headers().expect("the record's headers").get(0);
    assert_eq!(header.key, "traceparent");
    assert_eq!(
        header.value,
        Some(&b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"[..])
    );

    let database = stack.data_dir.join("kafka/tansu.db");
    let script = "import sqlite3, sys\n\
         c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True, timeout=60)\n\
         for row in c.execute('explain query plan ' + sys.argv[2], ('sealtrail-local', sys.argv[3], 0, 0)):\n    \
         print(row[-1])\n";
    let output = std::process::Command::new(crate::interop::python_with_confluent_kafka())
        .arg("-c")
        .arg(script)
        .arg(&database)
        .arg(HEADER_FETCH_SQL)
        .arg(&topic)
        .output()
        .expect("run Python's sqlite3");
    let plan = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cannot read the plan from {}: {}",
        database.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let header_step = plan
        .lines()
        .find(|line| line.contains(" h ") || line.ends_with(" h"))
        .unwrap_or_else(|| panic!("no step of the plan reads `header h`:\n{plan}"));
    assert!(
        header_step.starts_with("SEARCH h USING INDEX"),
        "the broker reads a record's headers by `{header_step}`, not an index:\n{plan}"
    );
}

/// Tansu 0.6.0's fetch slept before checking whether it had found records, so a fetch with
/// records still waited half of the consumer's `fetch.wait.max.ms` (250 ms of librdkafka's
/// default 500 ms at every hop of the pipeline). With a 30 s wait the unpatched broker holds the
/// first answer for at least 15 s by construction; the patched broker answers when it has the
/// record, so the bound below is the line between the two, not a guess at the machine's speed.
#[test]
fn a_fetch_that_finds_records_answers_without_waiting_out_its_maximum() {
    const FETCH_WAIT_MAX: Duration = Duration::from_secs(30);
    let stack = shared();
    let topic = one_partition_topic("prompt");
    let producer: BaseProducer = stack.kafka().producer().create().expect("producer");
    producer
        .send(BaseRecord::to(&topic).partition(0).key("k").payload("v"))
        .map_err(|(error, _)| error)
        .expect("queue the record");
    producer
        .flush(Duration::from_secs(60))
        .expect("the record acknowledged");

    let consumer: BaseConsumer = stack
        .kafka()
        .reader()
        .set("fetch.wait.max.ms", FETCH_WAIT_MAX.as_millis().to_string())
        .set("socket.timeout.ms", "120000")
        .create()
        .expect("consumer");
    read_from_the_start(&consumer, &topic);
    let started = Instant::now();
    loop {
        if let Some(result) = consumer.poll(Duration::from_millis(100)) {
            result.expect("the record");
            break;
        }
        assert!(
            started.elapsed() < FETCH_WAIT_MAX / 2,
            "no record {:?} after assigning: the broker sat on a fetch that had found one",
            started.elapsed()
        );
    }
}

//! What survives crashes and restarts of the local stack. Each test runs its own stack.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sealtrail_kafka::{TopicSpec, ensure_topics};

use crate::harness::{TestStack, fresh_data_dir, run_sealtrail};

const TOPIC: &str = "durability";

#[tokio::test]
async fn kill_9_of_the_broker_loses_no_acknowledged_message() {
    let data_dir = fresh_data_dir("kill9");
    let stack = TestStack::start(&data_dir);
    ensure_topics(&stack.kafka(), &[TopicSpec::new(TOPIC, 4)])
        .await
        .expect("topic");
    let producer: FutureProducer = stack.kafka().producer().create().expect("producer");
    let mut acknowledged = Vec::new();
    for n in 0..2000 {
        let payload = format!("message-{n}");
        let key = format!("tenant-{}", n % 5);
        let delivery = producer.send(
            FutureRecord::to(TOPIC).key(&key).payload(&payload),
            Duration::from_secs(30),
        );
        if delivery.await.is_ok() {
            acknowledged.push(payload);
        }
    }
    assert_eq!(acknowledged.len(), 2000);
    let registered = stack
        .registry_request(reqwest::Method::POST, "/subjects/durable-value/versions")
        .body(r#"{"schema":"{\"type\":\"record\",\"name\":\"D\",\"fields\":[{\"name\":\"a\",\"type\":\"string\"}]}"}"#)
        .send()
        .await
        .expect("register");
    assert!(registered.status().is_success());
    drop(producer);

    kill(Pid::from_raw(stack.child_pid("tansu")), Signal::SIGKILL).expect("kill -9 the broker");
    let (status, stderr) = stack.wait_for_exit();
    assert!(!status.success(), "up reports the failure");
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    assert!(
        last.starts_with("error: the Kafka broker (Tansu) exited unexpectedly"),
        "{last}"
    );
    assert!(last.contains("run `sealtrail up` again"), "{last}");

    let restarted = TestStack::start(&data_dir);
    let consumer: BaseConsumer = restarted.kafka().consumer("after-crash").create().expect("consumer");
    consumer.subscribe(&[TOPIC]).expect("subscribe");
    let mut seen = Vec::new();
    while seen.len() < acknowledged.len() {
        if let Some(message) = consumer.poll(Duration::from_secs(1)) {
            let message = message.expect("consumed");
            seen.push(String::from_utf8(message.payload().expect("payload").to_vec()).expect("utf-8"));
        }
    }
    seen.sort();
    acknowledged.sort();
    assert_eq!(seen, acknowledged);
    // A new client: pooled connections to the stopped registry are gone.
    let schema = restarted
        .registry_request(reqwest::Method::GET, "/subjects/durable-value/versions/latest")
        .send()
        .await
        .expect("lookup");
    assert_eq!(schema.status().as_u16(), 200, "the registry's log survived too");
    assert!(restarted.stop().success());
}

#[tokio::test]
async fn clickhouse_keeps_inserted_rows_across_down_and_up() {
    let data_dir = fresh_data_dir("ch-restart");
    let stack = TestStack::start(&data_dir);
    let client = stack.clickhouse().client();
    client
        .query("CREATE TABLE kept (n UInt64) ENGINE = MergeTree ORDER BY n")
        .execute()
        .await
        .expect("create");
    client
        .query("INSERT INTO kept SELECT number FROM numbers(100000)")
        .execute()
        .await
        .expect("insert");
    client
        .query("INSERT INTO kept SETTINGS async_insert = 1, wait_for_async_insert = 0 VALUES (100000)")
        .execute()
        .await
        .expect("async insert");

    let (status, stdout, stderr) = run_sealtrail(&["down", "--data-dir", data_dir.to_str().expect("utf-8")], &[]);
    assert!(status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("stopped sealtrail"), "{stdout}");
    let (status, _) = stack.wait_for_exit();
    assert!(status.success(), "a requested stop is a clean exit");
    let log = std::fs::read_to_string(data_dir.join("logs/clickhouse.log")).unwrap_or_default();
    assert!(log.contains("SIGTERM received"), "ClickHouse stopped on SIGTERM: {log}");

    let restarted = TestStack::start(&data_dir);
    let (count, max): (u64, u64) = restarted
        .clickhouse()
        .client()
        .query("SELECT count(), max(n) FROM kept")
        .fetch_one()
        .await
        .expect("count");
    assert_eq!((count, max), (100_001, 100_000));
    assert!(restarted.stop().success());
}

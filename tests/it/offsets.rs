//! `sealtrail offsets describe|reset` against the real broker: committed offsets, end offsets and
//! lag; dry runs change nothing; `--to-datetime` lands where `ListOffsets` by time says; the other
//! selectors and `--partitions` do what Kafka's tool does.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use sealtrail_kafka::{GroupOffsets, TopicSpec, ensure_topics};

use crate::harness::{shared, unique};

const PER_PARTITION: i64 = 10;
/// Record timestamps: the first half of each partition an hour before the second.
const EARLY_MS: i64 = 1_790_000_000_000;
const LATE_MS: i64 = EARLY_MS + 3_600_000;

fn committed(offsets: &GroupOffsets, topic: &str) -> Vec<Option<i64>> {
    offsets
        .describe(topic, None)
        .expect("describe")
        .iter()
        .map(|row| row.committed)
        .collect()
}

#[tokio::test]
async fn offsets_are_described_and_reset_like_kafkas_own_tool() {
    let stack = shared();
    let kafka = stack.kafka();
    let (topic, group) = (unique("offsets"), unique("group"));
    ensure_topics(&kafka, &[TopicSpec::new(&topic, 2)])
        .await
        .expect("topic");
    let producer: FutureProducer = kafka.producer().create().expect("producer");
    for partition in 0..2 {
        for i in 0..PER_PARTITION {
            let at = if i < PER_PARTITION / 2 {
                EARLY_MS + i
            } else {
                LATE_MS + i
            };
            let record = FutureRecord::<[u8], [u8]>::to(&topic)
                .partition(partition)
                .payload(b"x")
                .timestamp(at);
            producer.send(record, Duration::from_secs(30)).await.expect("produce");
        }
    }
    let offsets = GroupOffsets::new(&kafka, &group, Duration::from_secs(10)).expect("group");
    offsets.commit(&topic, &[(0, 10), (1, 3)]).expect("commit");

    let bootstrap = stack.endpoints.kafka_bootstrap.clone();
    let sealtrail = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--group", &group, "--kafka-bootstrap", &bootstrap]);
        stack.sealtrail(&all, &[])
    };
    let (status, described, stderr) = sealtrail(&["offsets", "describe", "--topic", &topic]);
    assert!(status.success(), "{stderr}");
    let row = |partition: i32| {
        described
            .lines()
            .find(|line| {
                line.split_whitespace()
                    .take(2)
                    .eq([topic.as_str(), &partition.to_string()])
            })
            .map_or_else(
                || panic!("no partition {partition} in {described}"),
                |line| line.split_whitespace().skip(2).collect::<Vec<_>>().join(" "),
            )
    };
    assert_eq!(row(0), "10 10 0", "committed, end, lag: {described}");
    assert_eq!(row(1), "3 10 7", "{described}");

    // A dry run changes nothing.
    let late = "2026-09-21T15:13:20Z"; // LATE_MS
    let (status, planned, stderr) = sealtrail(&["offsets", "reset", "--topic", &topic, "--to-datetime", late]);
    assert!(status.success() && planned.contains("dry run"), "{planned}{stderr}");
    assert_eq!(committed(&offsets, &topic), [Some(10), Some(3)]);

    // Executed, it lands where `ListOffsets` by time says.
    let (status, applied, stderr) = sealtrail(&[
        "offsets",
        "reset",
        "--topic",
        &topic,
        "--to-datetime",
        late,
        "--execute",
    ]);
    assert!(
        status.success() && applied.contains("reset applied"),
        "{applied}{stderr}"
    );
    let by_time = offsets.offsets_for_time(&topic, &[0, 1], LATE_MS).expect("by time");
    assert_eq!(by_time, [(0, Some(5)), (1, Some(5))]);
    assert_eq!(committed(&offsets, &topic), [Some(5), Some(5)]);

    // The other selectors, and one partition only.
    for (args, expected) in [
        (vec!["--shift-by", "-2", "--partitions", "1"], [Some(5), Some(3)]),
        (vec!["--to-offset", "99"], [Some(10), Some(10)]),
        (vec!["--to-earliest", "--partitions", "0"], [Some(0), Some(10)]),
        (vec!["--to-latest"], [Some(10), Some(10)]),
    ] {
        let mut all = vec!["offsets", "reset", "--topic", &topic, "--execute"];
        all.extend(args.iter().copied());
        let (status, stdout, stderr) = sealtrail(&all);
        assert!(status.success(), "{args:?}: {stdout}{stderr}");
        assert_eq!(committed(&offsets, &topic), expected, "{args:?}");
    }

    // Without a target, or with an unknown partition, it says what is wrong.
    let (status, _, stderr) = sealtrail(&["offsets", "reset", "--topic", &topic]);
    assert!(!status.success() && stderr.contains("--to-earliest"), "{stderr}");
    let (status, _, stderr) = sealtrail(&[
        "offsets",
        "reset",
        "--topic",
        &topic,
        "--to-latest",
        "--partitions",
        "7",
    ]);
    assert!(!status.success() && stderr.contains("no partition 7"), "{stderr}");
}

//! Topics, idempotent keyed produce and group consumption with committed offsets.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sealtrail_kafka::{GroupLagProbe, TopicSpec, WatermarkProbe, ensure_topics};

use crate::harness::{shared, unique};

const PARTITIONS: i32 = 4;

async fn topic_with_partitions(partitions: i32) -> String {
    let stack = shared();
    let topic = unique("smoke");
    ensure_topics(&stack.kafka(), &[TopicSpec::new(&topic, partitions)])
        .await
        .expect("create topic");
    // Creating it again is not an error: every start of the pipeline does it.
    ensure_topics(&stack.kafka(), &[TopicSpec::new(&topic, partitions)])
        .await
        .expect("create again");
    topic
}

#[tokio::test]
async fn a_four_partition_topic_carries_a_thousand_tenant_keyed_messages_to_a_consumer_group() {
    let stack = shared();
    let topic = topic_with_partitions(PARTITIONS).await;
    let consumer: BaseConsumer = stack.kafka().consumer(&unique("group")).create().expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .expect("metadata");
    assert_eq!(metadata.topics()[0].partitions().len(), 4);

    let producer: FutureProducer = stack.kafka().producer().create().expect("producer");
    let mut sent_to: HashMap<String, i32> = HashMap::new();
    for n in 0..1000 {
        let tenant = format!("tenant-{}", n % 17);
        let payload = format!("{tenant}:{n}");
        let delivery = producer
            .send(
                FutureRecord::to(&topic).key(&tenant).payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .expect("acknowledged");
        // Keyed records of one tenant always land on the same partition.
        let previous = sent_to.insert(tenant.clone(), delivery.partition);
        assert!(
            previous.is_none_or(|p| p == delivery.partition),
            "{tenant} moved partitions"
        );
    }
    let used: std::collections::HashSet<i32> = sent_to.values().copied().collect();
    assert!(
        used.len() > 1,
        "17 tenants spread over more than one partition: {used:?}"
    );

    consumer.subscribe(&[&topic]).expect("subscribe");
    let mut received: HashMap<i32, Vec<i64>> = HashMap::new();
    let mut count = 0;
    while count < 1000 {
        let Some(message) = consumer.poll(Duration::from_secs(1)) else {
            continue;
        };
        let message = message.expect("no consume error");
        let key = String::from_utf8(message.key().expect("keyed").to_vec()).expect("utf-8");
        let payload = String::from_utf8(message.payload().expect("payload").to_vec()).expect("utf-8");
        assert!(payload.starts_with(&format!("{key}:")), "{payload} under key {key}");
        assert_eq!(sent_to[&key], message.partition());
        received.entry(message.partition()).or_default().push(message.offset());
        // Offsets are stored only once a message is handled, as the pipeline does.
        consumer.store_offset_from_message(&message).expect("store offset");
        count += 1;
    }
    for offsets in received.values() {
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "offsets in order within a partition"
        );
    }
    consumer
        .commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        .expect("commit");

    // The committed offsets are the ends of the partitions: nothing would be read twice.
    let mut wanted = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        wanted.add_partition(&topic, partition);
    }
    let committed = consumer
        .committed_offsets(wanted, Duration::from_secs(10))
        .expect("committed offsets");
    let mut total = 0;
    for element in committed.elements() {
        let (_, high) = consumer
            .fetch_watermarks(&topic, element.partition(), Duration::from_secs(10))
            .expect("watermarks");
        let expected = if high == 0 {
            Offset::Invalid
        } else {
            Offset::Offset(high)
        };
        assert_eq!(element.offset(), expected, "partition {}", element.partition());
        total += high;
    }
    assert_eq!(total, 1000);
}

/// librdkafka's `murmur2_random` must place keys where Java's default partitioner does:
/// `toPositive(murmur2(key)) % partitions`. The hashes are the vectors of Kafka's own unit tests.
#[tokio::test]
async fn keys_land_on_the_partition_javas_partitioner_picks() {
    let stack = shared();
    let topic = topic_with_partitions(PARTITIONS).await;
    let producer: FutureProducer = stack.kafka().producer().create().expect("producer");
    let java_murmur2: [(&str, i32); 5] = [
        ("21", -973_932_308),
        ("foobar", -790_332_482),
        ("a-little-bit-long-string", -985_981_536),
        ("a-little-bit-longer-string", -1_486_304_829),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
    ];
    for (key, hash) in java_murmur2 {
        let expected = (hash & 0x7fff_ffff) % PARTITIONS;
        let delivery = producer
            .send(FutureRecord::to(&topic).key(key).payload("x"), Duration::from_secs(30))
            .await
            .expect("acknowledged");
        assert_eq!(delivery.partition, expected, "key {key}");
    }
}

/// The group lag counts every partition, owned or not: what a committed offset leaves, and all
/// of a partition nobody committed (a member's own lag would show 0 for partitions it lacks).
#[tokio::test]
async fn the_group_lag_counts_partitions_without_an_owner() {
    let stack = shared();
    let topic = topic_with_partitions(2).await;
    let producer: FutureProducer = stack.kafka().producer().create().expect("producer");
    for (partition, records) in [(0, 10), (1, 7)] {
        for n in 0..records {
            producer
                .send(
                    FutureRecord::to(&topic)
                        .partition(partition)
                        .key("t")
                        .payload(&format!("{n}")),
                    Duration::from_secs(30),
                )
                .await
                .expect("acknowledged");
        }
    }
    let group = unique("group-lag");
    let settings = stack.kafka();
    let lag = tokio::task::spawn_blocking(move || {
        // One partition's progress committed (as a member that then died would leave it); none for the other.
        let committer: BaseConsumer = settings.consumer(&group).create().expect("consumer");
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(&topic, 0, Offset::Offset(4))
            .expect("offset");
        committer
            .commit(&offsets, rdkafka::consumer::CommitMode::Sync)
            .expect("commit");
        let watermarks = WatermarkProbe::new(&settings, Duration::from_secs(10)).expect("probe");
        let probe = GroupLagProbe::new(&settings, &group, Duration::from_secs(10)).expect("group probe");
        probe.lag(&watermarks, &topic)
    })
    .await
    .expect("probe thread");
    let lag = lag.expect("the broker answered");
    assert_eq!(lag.waiting(), (10 - 4) + 7);
    let mut standing: Vec<(i32, Option<i64>, i64)> = lag
        .partitions
        .iter()
        .map(|standing| (standing.partition, standing.committed, standing.waiting))
        .collect();
    standing.sort_unstable();
    assert_eq!(standing, vec![(0, Some(4), 10 - 4), (1, None, 7)]);
}

//! Replay semantics on a stack of its own, with the seal and sink processors run by the test so it
//! can stop them and rewind their groups (`up` would restart them):
//! - a producer retry (same tenant and idempotency key) is sealed once, the copy goes to the DLQ as
//!   `duplicate`, also after a restart (the window is rebuilt from the sealed topic);
//! - rewinding the seal group re-reads the raw topic and seals nothing again: the sealed topic
//!   stays byte-identical;
//! - rewinding the sink group restores rows ClickHouse lost, never a purged one, and never
//!   duplicates one;
//! - `/metrics` counts all of it, and `sealtrail verify` confirms the chains afterwards.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sealtrail_core::event::{ActorType, AuditEvent};
use sealtrail_emit::AuditEmitter;
use sealtrail_kafka::{GroupOffsets, PartitionReader, PartitionRecord};

use crate::harness::{Processor, TestStack, fresh_data_dir};
use crate::pipeline::{DLQ, RAW, SEALED, now_ms};

const SEAL_GROUP: &str = "replay-seal";
const SINK_GROUP: &str = "replay-sink";
const DEADLINE: Duration = Duration::from_secs(180);

fn event(tenant: &str, n: u32, idempotency_key: &str) -> AuditEvent {
    let mut event = AuditEvent {
        event_id: ulid::Ulid::new().to_string(),
        tenant_id: tenant.to_owned(),
        occurred_at: now_ms(),
        action: "billing.refund.posted".to_owned(),
        idempotency_key: Some(idempotency_key.to_owned()),
        ..AuditEvent::default()
    };
    format!("service-{n}").clone_into(&mut event.actor.id);
    event.actor.kind = ActorType::Service;
    "invoice".clone_into(&mut event.resource.kind);
    format!("inv-{n}").clone_into(&mut event.resource.id);
    event
}

fn all_records(reader: &PartitionReader, topic: &str) -> Vec<(i32, PartitionRecord)> {
    let partitions = i32::try_from(reader.partition_count(topic).expect("partitions")).expect("few");
    let mut records = Vec::new();
    for partition in 0..partitions {
        let (low, high) = reader.watermarks(topic, partition).expect("watermarks");
        records.extend(
            reader
                .read(topic, partition, low, high)
                .expect("read")
                .into_iter()
                .map(|record| (partition, record)),
        );
    }
    records
}

fn duplicates_in_dlq(reader: &PartitionReader) -> usize {
    all_records(reader, DLQ)
        .iter()
        .filter(|(_, record)| record.header("sealtrail.reason") == Some(b"duplicate".as_slice()))
        .count()
}

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < DEADLINE, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether the group has committed the end of every partition of `topic`.
fn caught_up(stack: &TestStack, group: &str, topic: &str) -> bool {
    let offsets = GroupOffsets::new(&stack.kafka(), group, Duration::from_secs(10)).expect("group");
    offsets
        .describe(topic, None)
        .expect("describe")
        .iter()
        .all(|row| row.committed == Some(row.latest))
}

async fn count(stack: &TestStack, sql: &str) -> u64 {
    stack
        .clickhouse()
        .client()
        .query(sql)
        .fetch_one::<u64>()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn rewind(stack: &TestStack, group: &str, topic: &str) {
    let (status, stdout, stderr) = stack.sealtrail(
        &[
            "offsets",
            "reset",
            "--group",
            group,
            "--topic",
            topic,
            "--to-earliest",
            "--execute",
            "--kafka-bootstrap",
            &stack.endpoints.kafka_bootstrap,
        ],
        &[],
    );
    assert!(status.success(), "{stdout}{stderr}");
}

fn verify(stack: &TestStack, tenant: &str) {
    let keys = stack.data_dir.join("keys/trusted");
    let (status, stdout, stderr) = stack.sealtrail(
        &[
            "verify",
            "--tenant",
            tenant,
            "--clickhouse-url",
            &stack.endpoints.clickhouse_url,
            "--trusted-keys",
            &keys.display().to_string(),
        ],
        &[],
    );
    assert!(status.success(), "{tenant} verifies:\n{stdout}{stderr}");
}

#[tokio::test]
async fn rewinds_and_retries_never_seal_or_project_anything_twice() {
    let data_dir = fresh_data_dir("replay");
    let stack = TestStack::try_start(&data_dir, &["--no-pipeline"]).unwrap_or_else(|failure| panic!("{failure}"));
    stack.init_keys_and_topics();
    let reader = PartitionReader::new(&stack.kafka(), Duration::from_secs(60)).expect("reader");
    let emitter = AuditEmitter::connect(&stack.kafka(), &stack.registry(), RAW)
        .await
        .expect("emitter");
    let tenants = ["replay-a", "replay-b", "replay-c"];
    let mut seal = Processor::start(&stack, "seal", SEAL_GROUP, &[]);
    let mut sink = Processor::start(&stack, "sink", SINK_GROUP, &[]);

    // 30 events, and two producer retries that repeat a key with a fresh event id.
    for n in 0..30 {
        let tenant = tenants[n as usize % 3];
        emitter
            .emit(&event(tenant, n, &format!("key-{n}")))
            .await
            .expect("emit");
    }
    emitter.emit(&event("replay-a", 100, "key-0")).await.expect("retry");
    emitter.emit(&event("replay-b", 101, "key-1")).await.expect("retry");
    wait_until("30 events are queryable", async || {
        count(&stack, "SELECT count() FROM events").await == 30
    })
    .await;
    wait_until("the retries are in the DLQ", async || duplicates_in_dlq(&reader) == 2).await;
    assert_eq!(
        seal.metric("sealtrail_events_rejected_total{component=\"seal\",reason=\"duplicate\"}")
            .await,
        2
    );

    // Rewind the seal group: everything is read again and recognised.
    seal.stop();
    let sealed_before = all_records(&reader, SEALED);
    rewind(&stack, SEAL_GROUP, RAW);
    seal = Processor::start(&stack, "seal", SEAL_GROUP, &[]);
    wait_until("the rewound seal group reads to the end", async || {
        caught_up(&stack, SEAL_GROUP, RAW)
    })
    .await;
    assert_eq!(
        seal.metric("sealtrail_events_skipped_total{component=\"seal\",reason=\"already_sealed\"}")
            .await,
        32,
        "every raw record was read again and recognised"
    );
    assert_eq!(
        all_records(&reader, SEALED),
        sealed_before,
        "the sealed topic is byte-identical"
    );

    // The idempotency window survived the restart.
    emitter.emit(&event("replay-c", 102, "key-2")).await.expect("retry");
    emitter.emit(&event("replay-c", 30, "key-30")).await.expect("new");
    wait_until("the late retry is in the DLQ", async || duplicates_in_dlq(&reader) == 3).await;
    wait_until("31 events are queryable", async || {
        count(&stack, "SELECT count() FROM events").await == 31
    })
    .await;

    sink = rewind_the_sink_over_lost_and_purged_rows(&stack, sink).await;
    // A stopping seal processor checkpoints what is uncovered; the sink projects that, then stops.
    seal.stop();
    wait_until("the sink has the last checkpoint", async || {
        caught_up(&stack, SINK_GROUP, SEALED)
    })
    .await;
    sink.stop();

    // The chains hold over the replayed ranges (replay-c's planted tombstone has no attestation,
    // so only the others are verified).
    verify(&stack, "replay-a");
    verify(&stack, "replay-b");
    stack.stop();
}

/// ClickHouse loses rows of replay-a, and replay-c's seq 2 is purged (tombstoned); the sink
/// group is rewound: the lost rows come back, the purged one does not, nothing is doubled.
async fn rewind_the_sink_over_lost_and_purged_rows(stack: &TestStack, sink: Processor) -> Processor {
    sink.stop();
    let client = stack.clickhouse().client();
    client
        .query(
            "INSERT INTO tombstones SELECT tenant_id, seq, event_id, occurred_at, category, prev_hash, hash, \
             sealed_partition, sealed_offset, 'test-policy', 'test-run', now64(3), layout_epoch FROM events \
             WHERE tenant_id = 'replay-c' AND seq = 2",
        )
        .execute()
        .await
        .expect("tombstone");
    // The newest row of each partition too: ClickHouse then holds less than was inserted, and the
    // restored rows come back with the offsets of an insert ClickHouse still remembers.
    for filter in [
        "tenant_id = 'replay-a' AND seq <= 4",
        "tenant_id = 'replay-c' AND seq = 2",
        "(sealed_partition, sealed_offset) IN (SELECT sealed_partition, max(sealed_offset) FROM events GROUP BY sealed_partition)",
    ] {
        client
            .query(&format!("DELETE FROM events WHERE {filter}"))
            .execute()
            .await
            .expect("delete");
    }
    assert!(count(stack, "SELECT count() FROM events").await < 26);
    rewind(stack, SINK_GROUP, SEALED);
    let sink = Processor::start(stack, "sink", SINK_GROUP, &[]);
    wait_until("the rewound sink group reads to the end", async || {
        caught_up(stack, SINK_GROUP, SEALED)
    })
    .await;
    let per_tenant: HashMap<String, u64> = client
        .query("SELECT toString(tenant_id), count() FROM events GROUP BY tenant_id")
        .fetch_all::<(String, u64)>()
        .await
        .expect("counts")
        .into_iter()
        .collect();
    assert_eq!(per_tenant["replay-a"], 10, "the lost rows are restored");
    assert_eq!(per_tenant["replay-b"], 10);
    assert_eq!(per_tenant["replay-c"], 10, "the purged row stays purged");
    assert_eq!(
        count(stack, "SELECT count() FROM events").await,
        count(stack, "SELECT uniqExact(tenant_id, seq) FROM events").await,
        "no duplicate"
    );
    assert_eq!(
        count(
            stack,
            "SELECT count() FROM events WHERE tenant_id = 'replay-c' AND seq = 2"
        )
        .await,
        0
    );
    assert!(
        sink.metric("sealtrail_events_skipped_total{component=\"sink\",reason=\"already_projected\"}")
            .await
            > 0
    );
    assert!(sink.metric("sealtrail_events_in_total{component=\"sink\"}").await > 0);
    sink
}

//! Records a real producer puts in the wrong raw partition never fork a chain: Python's
//! confluent-kafka with librdkafka's default partitioner (`consistent_random`, CRC-32 of the key)
//! places most tenants elsewhere than Java's murmur2. The seal processor rejects those records as
//! `wrong_partition`, `sealtrail dlq replay` moves them where their key belongs, and every tenant
//! ends with one gap-free chain holding every event once.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use sealtrail_core::event::{ActorType, AuditEvent};
use sealtrail_core::placement::partition_for_key;
use sealtrail_emit::AuditEmitter;
use sealtrail_kafka::PartitionReader;

use crate::harness::{TestStack, shared, unique};
use crate::interop::python_with_confluent_kafka;
use crate::pipeline::{DLQ, RAW, now_ms, verify_once_signed};

const PER_HALF: usize = 20;
const DEADLINE: Duration = Duration::from_secs(900);

/// librdkafka's `consistent_random` for a keyed record: the key's CRC-32 (IEEE, as zlib).
fn librdkafka_consistent(key: &[u8], partitions: i32) -> i32 {
    let mut crc = !0_u32;
    for byte in key {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    i32::try_from(u64::from(!crc) % u64::try_from(partitions).expect("positive")).expect("small")
}

fn event(tenant: &str, n: usize) -> AuditEvent {
    let mut event = AuditEvent {
        event_id: ulid::Ulid::new().to_string(),
        tenant_id: tenant.to_owned(),
        occurred_at: now_ms(),
        action: "user.login".to_owned(),
        ..AuditEvent::default()
    };
    format!("service-{n}").clone_into(&mut event.actor.id);
    event.actor.kind = ActorType::Service;
    "account".clone_into(&mut event.resource.kind);
    format!("acct-{n}").clone_into(&mut event.resource.id);
    event
}

/// Three tenants: two that librdkafka's default places away from their murmur2 partition, one
/// it places right, so the test shows both and never depends on luck.
fn tenants(prefix: &str, partitions: i32) -> Vec<String> {
    let misplaced = |tenant: &String| {
        librdkafka_consistent(tenant.as_bytes(), partitions) != partition_for_key(tenant.as_bytes(), partitions)
    };
    let candidates: Vec<String> = (0..200).map(|n| format!("{prefix}-t{n}")).collect();
    let mut chosen: Vec<String> = candidates.iter().filter(|t| misplaced(t)).take(2).cloned().collect();
    chosen.extend(candidates.iter().find(|t| !misplaced(t)).cloned());
    assert_eq!(chosen.len(), 3, "candidates of both kinds among 200 names");
    chosen
}

fn dlq_wrong_partition(reader: &PartitionReader, tenants: &HashSet<&str>) -> usize {
    let partitions = i32::try_from(reader.partition_count(DLQ).expect("partitions")).expect("few");
    let mut found = 0;
    for partition in 0..partitions {
        let (low, high) = reader.watermarks(DLQ, partition).expect("watermarks");
        for record in reader.read(DLQ, partition, low, high).expect("read") {
            let ours = record
                .key
                .as_deref()
                .and_then(|key| std::str::from_utf8(key).ok())
                .is_some_and(|key| tenants.contains(key));
            if ours && record.header("sealtrail.reason") == Some(b"wrong_partition".as_slice()) {
                found += 1;
            }
        }
    }
    found
}

async fn stored_per_tenant(stack: &TestStack, prefix: &str) -> HashMap<String, (u64, u64)> {
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Row {
        tenant_id: String,
        rows: u64,
        seqs: u64,
    }
    let rows: Vec<Row> = stack
        .clickhouse()
        .client()
        .query("SELECT tenant_id, count() AS rows, uniqExact(seq) AS seqs FROM events WHERE startsWith(tenant_id, ?) GROUP BY tenant_id")
        .bind(prefix)
        .fetch_all()
        .await
        .expect("count events");
    rows.into_iter().map(|r| (r.tenant_id, (r.rows, r.seqs))).collect()
}

/// Produces half of each tenant's events through librdkafka's default partitioner and half through
/// murmur2, with Python's confluent-kafka; returns how many landed outside their key's partition.
async fn produce_with_python(stack: &TestStack, tenants: &[String], partitions: i32) -> usize {
    let emitter = AuditEmitter::connect(&stack.kafka(), &stack.registry(), RAW)
        .await
        .expect("emitter");
    let mut lines = String::new();
    for (half, partitioner) in ["default", "murmur2_random"].into_iter().enumerate() {
        for tenant in tenants {
            for n in 0..PER_HALF {
                write!(lines, "{partitioner}\t{tenant}\t").expect("write");
                for byte in emitter.encode(&event(tenant, half * PER_HALF + n)) {
                    write!(lines, "{byte:02x}").expect("write");
                }
                lines.push('\n');
            }
        }
    }
    let input = std::env::temp_dir().join(format!("{}.tsv", tenants[0]));
    std::fs::write(&input, lines).expect("write the records");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/partitioners.py");
    let output = Command::new(python_with_confluent_kafka())
        .arg(script)
        .arg(&stack.endpoints.kafka_bootstrap)
        .arg(RAW)
        .arg(&input)
        .arg(
            stack
                .endpoints
                .get("KAFKA_CONFIG_FILE")
                .expect("the stack's client properties"),
        )
        .output()
        .expect("run the Python producer");
    std::fs::remove_file(&input).ok();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.lines().last(),
        Some(format!("ok {}", 2 * PER_HALF * tenants.len()).as_str())
    );

    // Where the producer put them: every record at librdkafka's or murmur2's choice.
    let mut misplaced = 0;
    for line in stdout.lines().filter(|l| !l.starts_with("ok ")) {
        let (tenant, partition) = line.split_once(' ').expect("key partition");
        let partition: i32 = partition.parse().expect("a partition");
        let right = partition_for_key(tenant.as_bytes(), partitions);
        assert!(
            partition == right || partition == librdkafka_consistent(tenant.as_bytes(), partitions),
            "{tenant} landed in {partition}"
        );
        if partition != right {
            misplaced += 1;
        }
    }
    misplaced
}

/// Every event once, in one chain per tenant, gap-free and signed.
async fn assert_one_whole_chain_each(stack: &TestStack, prefix: &str, tenants: &[String]) {
    let count = 2 * PER_HALF as u64;
    let started = Instant::now();
    loop {
        let stored = stored_per_tenant(stack, prefix).await;
        if tenants
            .iter()
            .all(|t| stored.get(t).is_some_and(|(rows, _)| *rows >= count))
        {
            for tenant in tenants {
                assert_eq!(
                    stored[tenant],
                    (count, count),
                    "{tenant}: each event once, one seq each"
                );
            }
            break;
        }
        assert!(started.elapsed() < DEADLINE, "after the replay: {stored:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for tenant in tenants {
        let report = verify_once_signed(stack, tenant).await;
        assert_eq!(
            (report.events, report.first_seq, report.last_seq),
            (count, Some(1), Some(count)),
            "{tenant}"
        );
        assert_eq!(
            report.signed_through, count,
            "{tenant}: every event under a signed checkpoint"
        );
    }
}

#[tokio::test]
async fn pythons_default_partitioner_cannot_fork_a_chain_and_replay_puts_records_in_place() {
    let stack = shared();
    let reader = PartitionReader::new(&stack.kafka(), Duration::from_secs(60)).expect("reader");
    let partitions = i32::try_from(reader.partition_count(RAW).expect("partitions")).expect("few");
    assert!(partitions > 1, "the raw topic has several partitions");
    let prefix = unique("placement").replace('_', "-");
    let tenants = tenants(&prefix, partitions);
    let misplaced = produce_with_python(stack, &tenants, partitions).await;
    assert_eq!(
        misplaced,
        2 * PER_HALF,
        "two tenants' default-partitioned halves are misplaced"
    );

    // The well-placed records are sealed; the misplaced ones wait in the DLQ, never sealed.
    let ours: HashSet<&str> = tenants.iter().map(String::as_str).collect();
    let expected_stored = u64::try_from(2 * PER_HALF * tenants.len() - misplaced).expect("small");
    let started = Instant::now();
    loop {
        let stored: u64 = stored_per_tenant(stack, &prefix)
            .await
            .values()
            .map(|(rows, _)| rows)
            .sum();
        let rejected = dlq_wrong_partition(&reader, &ours);
        if stored == expected_stored && rejected == misplaced {
            break;
        }
        assert!(
            stored <= expected_stored,
            "a misplaced record was sealed ({stored} stored)"
        );
        assert!(started.elapsed() < DEADLINE, "stored {stored}, rejected {rejected}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let bootstrap = stack.endpoints.kafka_bootstrap.as_str();
    let (status, replayed, stderr) = stack.sealtrail(
        &[
            "dlq",
            "replay",
            "--reason",
            "wrong_partition",
            "--kafka-bootstrap",
            bootstrap,
        ],
        &[],
    );
    assert!(
        status.success() && replayed.contains(&format!("{misplaced} to replay")),
        "{replayed}{stderr}"
    );
    assert!(
        replayed.contains(&format!("({misplaced} to the partition their key belongs to)")),
        "{replayed}"
    );
    assert_one_whole_chain_each(stack, &prefix, &tenants).await;
}

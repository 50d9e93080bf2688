//! Resharding a running pipeline without a fork: `sealtrail reshard` moves it from the first
//! layout (4 partitions) to new topics with 8, while a workload flows into the old raw topic.
//! Each old partition's seal processor meets the signed layout change in order and closes the
//! partition with a final checkpoint; records that reach the old topic after it go to the DLQ as
//! `layout_closed`, and `sealtrail dlq replay` moves them to the new topic. The new layout's
//! processors continue every chain from the final checkpoints. Afterwards every good event is
//! stored once, every malformed one is in a DLQ with its reason, every tenant's chain verifies
//! gap-free and signed across both epochs, and an export spanning the move verifies offline.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sealtrail_emit::generator::Workload;
use sealtrail_export::exporter::{ExportRequest, write_export};
use sealtrail_kafka::PartitionReader;

use crate::harness::{Processor, TestStack, fresh_data_dir};
use crate::pipeline::{DLQ, RAW, Sent, now_ms, prefix, read_topic, send_workload_into, verify_once_signed};

const NEW_RAW: &str = "audit-events.epoch-2";
const NEW_SEALED: &str = "audit-events-sealed.epoch-2";
const NEW_DLQ: &str = "audit-events-dlq.epoch-2";
const TENANTS: usize = 16;

fn workload(prefix: &str, seed: u64) -> Workload {
    Workload {
        tenants: TENANTS,
        bad_ratio: 0.02,
        seed,
        now_ms: now_ms(),
        tenant_prefix: prefix.to_owned(),
    }
}

/// DLQ records of `topic` by reason.
fn reasons(stack: &TestStack, topic: &str) -> HashMap<String, u64> {
    let mut found = HashMap::new();
    for record in read_topic(stack, topic) {
        let reason = String::from_utf8_lossy(record.header("sealtrail.reason").expect("a reason")).into_owned();
        *found.entry(reason).or_default() += 1;
    }
    found
}

fn reshard(stack: &TestStack) -> String {
    let keys = stack.data_dir.join("keys");
    let (status, stdout, stderr) = stack.sealtrail(
        &["reshard", "--partitions", "8", "--timeout-secs", "600"],
        &[
            ("KAFKA_BOOTSTRAP", stack.endpoints.kafka_bootstrap.as_str()),
            ("SCHEMA_REGISTRY_URL", stack.registry_url()),
            ("CLICKHOUSE_URL", stack.endpoints.clickhouse_url.as_str()),
            ("SEALTRAIL_KEY_DIR", keys.to_str().expect("utf-8 path")),
        ],
    );
    assert!(status.success(), "reshard: {stdout}{stderr}");
    format!("{stdout}{stderr}")
}

/// The records of the old raw topic that follow the layout change in their partition: the ones
/// the closed layout must refuse.
fn after_the_change(stack: &TestStack) -> u64 {
    let reader = PartitionReader::new(&stack.kafka(), Duration::from_secs(60)).expect("reader");
    let mut after = 0;
    for partition in 0..4 {
        let (low, high) = reader.watermarks(RAW, partition).expect("watermarks");
        let records = reader.read(RAW, partition, low, high).expect("read");
        let marker = records
            .iter()
            .position(|r| r.header(sealtrail_core::layout::CONTROL_HEADER).is_some())
            .unwrap_or_else(|| panic!("raw partition {partition} holds the layout change"));
        after += (records.len() - marker - 1) as u64;
    }
    after
}

/// Waits until the old DLQ holds `count` `layout_closed` records.
async fn wait_for_closed_records(stack: &TestStack, count: u64) {
    let started = Instant::now();
    loop {
        let closed = reasons(stack, DLQ).get("layout_closed").copied().unwrap_or_default();
        assert!(
            closed <= count,
            "{closed} layout_closed records, {count} sent after the change"
        );
        if closed == count {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "{closed} of {count} layout_closed"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn assert_every_event_once(stack: &TestStack, sent: &Sent) {
    let ids = crate::pipeline::wait_until_stored(stack, &sent.prefix, sent.good.len()).await;
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no event is stored twice");
    assert_eq!(
        unique,
        sent.good.keys().collect(),
        "every good event is stored, and nothing else"
    );
}

/// Every tenant's chain verifies from 1, gap-free and signed; returns those that changed partition.
async fn assert_chains(stack: &TestStack, sent: &Sent) -> Vec<String> {
    let mut per_tenant: HashMap<&String, u64> = HashMap::new();
    for tenant in sent.good.values() {
        *per_tenant.entry(tenant).or_default() += 1;
    }
    let mut moved = Vec::new();
    for (tenant, count) in per_tenant {
        let report = verify_once_signed(stack, tenant).await;
        assert_eq!(
            (report.events, report.first_seq, report.last_seq, report.signed_through),
            (count, Some(1), Some(count), count),
            "tenant {tenant}: every event once, gap-free from 1, signed"
        );
        assert_eq!(
            report.segments.iter().map(|(epoch, _)| *epoch).collect::<Vec<_>>(),
            vec![1, 2],
            "tenant {tenant}: its chain runs through both layouts"
        );
        if report.segments[0].1 != report.segments[1].1 {
            moved.push(tenant.clone());
        }
    }
    moved
}

async fn export_and_verify(stack: &TestStack, tenant: &str) {
    let keys = stack.data_dir.join("keys");
    let signer = sealtrail_runtime::keys::load_signer(&keys.join(sealtrail_runtime::keys::SIGNING_KEY_FILE))
        .expect("the signing key");
    let out = stack.data_dir.join(format!("export-{tenant}"));
    let manifest = write_export(
        &stack.clickhouse(),
        &signer,
        &ExportRequest {
            export_id: format!("exp_{tenant}"),
            tenant: tenant.to_owned(),
            scope: sealtrail_api::scope::EventScope::default(),
            out_dir: out.clone(),
            max_file_bytes: 64 << 20,
        },
        |_| {},
    )
    .await
    .expect("export");
    let epochs: std::collections::BTreeSet<u32> = manifest.checkpoints.iter().map(|c| c.epoch).collect();
    assert_eq!(epochs, [1, 2].into(), "the export's proofs reach into both layouts");
    let public = keys.join("signing-key.pub");
    std::fs::write(&public, sealtrail_core::digest::to_hex(signer.public_key())).expect("key");
    let (verified, printed) = crate::api::export::verify_export(&out, &public);
    assert!(verified, "verify-export: {printed}");
}

fn new_layout_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("RAW_TOPIC", NEW_RAW),
        ("SEALED_TOPIC", NEW_SEALED),
        ("DLQ_TOPIC", NEW_DLQ),
    ]
}

fn partitions(stack: &TestStack, topic: &str) -> usize {
    PartitionReader::new(&stack.kafka(), Duration::from_secs(30))
        .expect("reader")
        .partition_count(topic)
        .expect("partitions")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_pipeline_moves_to_more_partitions_without_a_fork_gap_or_duplicate() {
    let stack = TestStack::try_start(&fresh_data_dir("reshard"), &["--no-pipeline"])
        .unwrap_or_else(|failure| panic!("{failure}"));
    stack.init_keys_and_topics();
    let old_seal = Processor::start(&stack, "seal", "reshard-seal", &[]);
    let old_sink = Processor::start(&stack, "sink", "reshard-sink", &[]);
    let prefix = prefix("reshard");

    // The move happens while records flow into the old raw topic.
    let (during, printed) = tokio::join!(
        send_workload_into(&stack, RAW, workload(&prefix, 1), 3_000, Some(300)),
        async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let stack = &stack;
            tokio::task::block_in_place(|| reshard(stack))
        }
    );
    assert!(printed.contains("layout epoch 1 is closed"), "{printed}");
    assert_eq!(partitions(&stack, NEW_RAW), 8);

    // A producer not yet moved: its records are refused by the closed layout, never sealed.
    let late = send_workload_into(&stack, RAW, workload(&prefix, 2), 400, None).await;
    let refused = after_the_change(&stack);
    assert!(
        refused >= 400,
        "the late producer's records follow the change ({refused})"
    );
    wait_for_closed_records(&stack, refused).await;
    old_seal.stop();
    old_sink.stop();

    // The new layout's processors continue every chain; producers now write to the new topic.
    let new_seal = Processor::start(&stack, "seal", "reshard-seal", &new_layout_env());
    let new_sink = Processor::start(&stack, "sink", "reshard-sink", &new_layout_env());
    let after = send_workload_into(&stack, NEW_RAW, workload(&prefix, 3), 2_000, None).await;
    let (status, replayed, stderr) = stack.sealtrail(
        &["dlq", "replay", "--reason", "layout_closed"],
        &[
            ("KAFKA_BOOTSTRAP", stack.endpoints.kafka_bootstrap.as_str()),
            ("DLQ_TOPIC", DLQ),
            ("RAW_TOPIC", NEW_RAW),
        ],
    );
    assert!(status.success(), "replay: {replayed}{stderr}");

    let sent = during.and(late).and(after);
    assert_every_event_once(&stack, &sent).await;
    let moved = assert_chains(&stack, &sent).await;
    assert!(!moved.is_empty(), "some tenants moved to another partition number");

    // Every malformed record is in one of the DLQs with its own reason; the records the closed
    // layout refused were replayed and judged on their own merits in the new one.
    let old = reasons(&stack, DLQ);
    let new = reasons(&stack, NEW_DLQ);
    let mut judged: HashMap<String, u64> = new.clone();
    for (reason, count) in old.iter().filter(|(reason, _)| reason.as_str() != "layout_closed") {
        *judged.entry(reason.clone()).or_default() += count;
    }
    let expected: HashMap<String, u64> = sent.bad.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    assert_eq!(judged, expected, "old DLQ {old:?}, new DLQ {new:?}");
    assert!(old.get("layout_closed").copied().unwrap_or_default() >= 400);

    export_and_verify(&stack, &moved[0]).await;
    new_seal.stop();
    new_sink.stop();
    let data_dir = stack.data_dir.clone();
    assert!(stack.stop().success());

    // `sealtrail up` on the same data runs its pipeline on the newest layout.
    let stack = TestStack::start(&data_dir);
    assert_eq!(stack.endpoints.get("RAW_TOPIC"), Some(NEW_RAW));
    assert_eq!(stack.endpoints.get("SEALED_TOPIC"), Some(NEW_SEALED));
    let more = send_workload_into(&stack, NEW_RAW, workload(&prefix, 4), 300, None).await;
    let sent = sent.and(more);
    assert_every_event_once(&stack, &sent).await;
    assert!(assert_chains(&stack, &sent).await.len() == moved.len());
    assert!(stack.stop().success());
}

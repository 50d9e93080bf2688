//! `sealtrail dlq list|show|replay` on a stack of its own (the shared stack's DLQ is asserted
//! record by record elsewhere): a record written with a schema registered too late is rejected,
//! replayed after the schema is registered, and sealed; a second replay does not repeat it.

use std::time::{Duration, Instant};

use sealtrail_core::avro::Framed;
use sealtrail_core::avro::contract::{AUDIT_EVENT_SCHEMA, encode_audit_event};
use sealtrail_core::event::AuditEvent;
use sealtrail_emit::AuditEmitter;
use sealtrail_kafka::PartitionReader;

use crate::harness::{TestStack, fresh_data_dir};
use crate::pipeline::{DLQ, RAW};

/// The contract with one more optional field at the end: a compatible schema the registry does
/// not have yet.
fn later_schema() -> String {
    let mut schema: serde_json::Value = serde_json::from_str(AUDIT_EVENT_SCHEMA).expect("contract");
    schema["fields"]
        .as_array_mut()
        .expect("fields")
        .push(serde_json::json!({"name": "late_field", "type": ["null", "string"], "default": null}));
    schema.to_string()
}

fn dlq_records(stack: &TestStack) -> Vec<sealtrail_kafka::PartitionRecord> {
    let reader = PartitionReader::new(&stack.kafka(), Duration::from_secs(60)).expect("reader");
    let mut records = Vec::new();
    for partition in 0..i32::try_from(reader.partition_count(DLQ).expect("partitions")).expect("few") {
        let (low, high) = reader.watermarks(DLQ, partition).expect("watermarks");
        records.extend(reader.read(DLQ, partition, low, high).expect("read"));
    }
    records
}

#[tokio::test]
async fn a_record_with_a_late_schema_is_replayed_from_the_dlq_and_sealed_once() {
    let stack = TestStack::start(&fresh_data_dir("dlq"));
    let emitter = AuditEmitter::connect(&stack.kafka(), &stack.registry(), RAW)
        .await
        .expect("emitter");
    // The next id the registry gives; the record names it before it exists.
    let late_id = emitter.schema_id().max(2) + 1;
    let tenant = "late-schema";
    let mut event = AuditEvent {
        event_id: ulid::Ulid::new().to_string(),
        tenant_id: tenant.to_owned(),
        occurred_at: crate::pipeline::now_ms(),
        action: "user.login".to_owned(),
        ..AuditEvent::default()
    };
    "service-7".clone_into(&mut event.actor.id);
    event.actor.kind = sealtrail_core::event::ActorType::Service;
    "account".clone_into(&mut event.resource.kind);
    "acct-7".clone_into(&mut event.resource.id);
    let mut writer = sealtrail_core::avro::Writer::default();
    encode_audit_event(&event, &mut writer);
    let mut body = writer.into_bytes();
    body.push(0); // late_field: null
    let delivery = emitter
        .enqueue_raw(Some(tenant.as_bytes()), &Framed::frame(late_id, &body))
        .expect("queued");
    sealtrail_emit::acknowledged(delivery).await.expect("produced");
    let started = Instant::now();
    while dlq_records(&stack).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(900), "never rejected");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let registered = AuditEmitter::connect_with_schema(&stack.kafka(), &stack.registry(), RAW, &later_schema())
        .await
        .expect("the late schema registers");
    assert_eq!(registered.schema_id(), late_id);

    let bootstrap = stack.endpoints.kafka_bootstrap.clone();
    let dlq = |args: &[&str]| {
        let mut all = vec!["dlq"];
        all.extend_from_slice(args);
        all.extend(["--kafka-bootstrap", bootstrap.as_str()]);
        stack.sealtrail(&all, &[])
    };
    let (status, listed, stderr) = dlq(&["list"]);
    assert!(
        status.success() && listed.contains("unknown_schema: 1"),
        "{listed}{stderr}"
    );
    let (status, shown, stderr) = dlq(&["show", "--partition", "0", "--offset", "0"]);
    assert!(
        status.success() && shown.contains("sealtrail.reason: unknown_schema") && shown.contains("not shown"),
        "{shown}{stderr}"
    );

    let (status, replayed, stderr) = dlq(&["replay", "--reason", "unknown_schema"]);
    assert!(
        status.success() && replayed.contains("1 to replay"),
        "{replayed}{stderr}"
    );
    // Waits for one of the two outcomes (sealed and projected, or rejected again), not for a
    // time: the deadline only bounds a broken run on a loaded machine.
    let client = stack.clickhouse().client();
    let started = Instant::now();
    let stored = loop {
        let stored: u64 = client
            .query("SELECT count() FROM events WHERE tenant_id = ?")
            .bind(tenant)
            .fetch_one()
            .await
            .expect("count");
        let rejected_again = dlq_records(&stack).len() > 1;
        if stored > 0 || rejected_again || started.elapsed() > Duration::from_secs(900) {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let reasons: Vec<String> = dlq_records(&stack)
        .iter()
        .map(|r| {
            format!(
                "{:?}",
                r.headers
                    .iter()
                    .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
                    .collect::<Vec<_>>()
            )
        })
        .collect();
    assert_eq!(stored, 1, "the replayed record is sealed; the DLQ holds {reasons:#?}");

    // A second replay finds it already replayed.
    let (status, again, stderr) = dlq(&["replay"]);
    assert!(
        status.success() && again.contains("0 to replay, 1 already replayed"),
        "{again}{stderr}"
    );
    assert!(stack.stop().success());
}

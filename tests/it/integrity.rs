//! Tampering with ClickHouse is caught by `verify` at exactly the row tampered with, and two
//! producer versions of the contract live at once flow end to end.

use apache_avro::Schema;
use apache_avro::types::Value;
use sealtrail_clickhouse::{VerifyFailure, VerifyRequest, verify_tenant};
use sealtrail_core::avro::Framed;
use sealtrail_core::avro::contract::{AUDIT_EVENT_SCHEMA, encode_audit_event};
use sealtrail_core::verify::BreakKind;
use sealtrail_emit::AuditEmitter;
use sealtrail_emit::generator::{Generated, Generator, Workload};

use crate::harness::shared;
use crate::pipeline::{RAW, assert_outcome, now_ms, prefix, send_workload, wait_until_stored};

async fn verify(tenant: &str) -> Result<u64, VerifyFailure> {
    let stack = shared();
    let request = VerifyRequest {
        tenant: tenant.to_owned(),
        from: None,
        to: None,
    };
    verify_tenant(&stack.clickhouse(), &request, &stack.trusted_keys())
        .await
        .map(|r| r.events)
}

async fn tamper(statement: &str, tenant: &str) {
    shared()
        .clickhouse()
        .client()
        .query(statement)
        .bind(tenant)
        .with_setting("mutations_sync", "2")
        .execute()
        .await
        .expect("tamper");
}

fn broken_at(result: Result<u64, VerifyFailure>) -> (u64, BreakKind) {
    match result {
        Err(VerifyFailure::Chain(chain_break)) => (chain_break.seq, chain_break.problem),
        other => panic!("expected a chain break, got {other:?}"),
    }
}

#[tokio::test]
async fn editing_deleting_inserting_or_reordering_one_row_fails_verify_at_that_row() {
    let stack = shared();
    let sent = send_workload(stack, 600, 4, 0.0, &prefix("tamper")).await;
    assert_outcome(stack, &sent).await;
    let [edited, deleted, inserted, reordered] = [0, 1, 2, 3].map(|i| sent.tenants[i].clone());
    for tenant in [&edited, &deleted, &inserted, &reordered] {
        assert!(
            verify(tenant).await.expect("verifies before tampering") >= 10,
            "{tenant} has events"
        );
    }

    tamper(
        "ALTER TABLE events UPDATE reason_text = 'nothing to see here' WHERE tenant_id = ? AND seq = 5",
        &edited,
    )
    .await;
    let (seq, problem) = broken_at(verify(&edited).await);
    assert_eq!(seq, 5);
    assert!(matches!(problem, BreakKind::HashMismatch { .. }), "{problem:?}");

    tamper("DELETE FROM events WHERE tenant_id = ? AND seq = 7", &deleted).await;
    assert_eq!(
        broken_at(verify(&deleted).await),
        (7, BreakKind::Missing { found_seq: 8 })
    );

    tamper(
        "INSERT INTO events SELECT * FROM events WHERE tenant_id = ? AND seq = 3",
        &inserted,
    )
    .await;
    assert_eq!(
        broken_at(verify(&inserted).await),
        (4, BreakKind::OutOfOrder { found_seq: 3 })
    );

    // The sorting key cannot be updated in place: move the two rows out and back, swapped.
    let swap = crate::harness::unique("swap");
    shared()
        .clickhouse()
        .client()
        .query(&format!("CREATE TABLE {swap} AS events"))
        .execute()
        .await
        .expect("create the swap table");
    for statement in [
        format!(
            "INSERT INTO {swap} SELECT * REPLACE (if(seq = 2, 3, 2) AS seq) FROM events WHERE tenant_id = ? AND seq IN (2, 3)"
        ),
        "DELETE FROM events WHERE tenant_id = ? AND seq IN (2, 3)".to_owned(),
        format!("INSERT INTO events SELECT * FROM {swap} WHERE tenant_id = ?"),
    ] {
        tamper(&statement, &reordered).await;
    }
    let (seq, problem) = broken_at(verify(&reordered).await);
    assert_eq!(seq, 2);
    assert!(
        matches!(problem, BreakKind::PrevMismatch { .. } | BreakKind::HashMismatch { .. }),
        "{problem:?}"
    );

    // The command says the same, and fails.
    let keys = stack.data_dir.join("keys/trusted");
    let (status, _, stderr) = stack.sealtrail(
        &[
            "verify",
            "--tenant",
            &deleted,
            "--trusted-keys",
            keys.to_str().expect("utf-8"),
        ],
        &[("CLICKHOUSE_URL", &stack.endpoints.clickhouse_url)],
    );
    assert!(!status.success());
    assert!(
        stderr.contains(&format!("tenant {deleted}: expected sequence 7, found 8")),
        "{stderr}"
    );
}

#[tokio::test]
async fn two_producer_versions_live_at_once_both_flow_end_to_end() {
    let stack = shared();
    let prefix = prefix("versions");
    let v1_text = include_str!("../../schemas/history/audit-event.v1.avsc");
    let v1 = Schema::parse_str(v1_text).expect("v1 parses");
    let current = AuditEmitter::connect(&stack.kafka(), &stack.registry(), RAW)
        .await
        .expect("current producer");
    let old = AuditEmitter::connect_with_schema(&stack.kafka(), &stack.registry(), RAW, v1_text)
        .await
        .expect("a v1 producer registers alongside");
    assert_ne!(old.schema_id(), current.schema_id());

    let mut generator = Generator::new(Workload {
        tenants: 3,
        bad_ratio: 0.0,
        seed: 9,
        now_ms: now_ms(),
        tenant_prefix: prefix.clone(),
    });
    let (mut from_v1, mut from_v2) = (Vec::new(), Vec::new());
    for n in 0..200 {
        let Generated::Good(mut event) = generator.next_record() else {
            unreachable!("no bad records")
        };
        if n % 2 == 0 {
            event.session_id = Some(format!("sess-{n}"));
            current.emit(&event).await.expect("v2 event acknowledged");
            from_v2.push(event.event_id.clone());
        } else {
            // Written as a v1 producer would: the v1 schema, without session_id.
            let mut writer = sealtrail_core::avro::Writer::default();
            encode_audit_event(&event, &mut writer);
            let current_body = writer.into_bytes();
            let value = read_with(AUDIT_EVENT_SCHEMA, &current_body);
            let Value::Record(fields) = value else { panic!("record") };
            let v1_value = Value::Record(fields.into_iter().filter(|(name, _)| name != "session_id").collect());
            let body = apache_avro::writer::datum::GenericDatumWriter::builder(&v1)
                .build()
                .expect("writer")
                .write_value_to_vec(v1_value)
                .expect("v1 encodes");
            let delivery = old
                .enqueue_raw(Some(event.tenant_id.as_bytes()), &Framed::frame(old.schema_id(), &body))
                .expect("queued");
            sealtrail_emit::acknowledged(delivery)
                .await
                .expect("v1 event acknowledged");
            from_v1.push(event.event_id.clone());
        }
    }
    wait_until_stored(stack, &prefix, 200).await;
    let client = stack.clickhouse().client();
    let count_with_session = |ids: Vec<String>| {
        let client = client.clone();
        let prefix = prefix.clone();
        async move {
            client
                .query("SELECT countIf(session_id IS NOT NULL), count() FROM events WHERE startsWith(tenant_id, ?) AND has(?, event_id)")
                .bind(prefix)
                .bind(ids)
                .fetch_one::<(u64, u64)>()
                .await
                .expect("count")
        }
    };
    assert_eq!(
        count_with_session(from_v2).await,
        (100, 100),
        "v2 events keep their session id"
    );
    assert_eq!(
        count_with_session(from_v1).await,
        (0, 100),
        "v1 events arrive without one"
    );
    for tenant in generator.tenant_ids() {
        verify(tenant).await.unwrap_or_else(|e| panic!("{tenant}: {e}"));
    }
}

fn read_with(schema: &str, mut body: &[u8]) -> Value {
    let schema = Schema::parse_str(schema).expect("schema");
    apache_avro::reader::datum::GenericDatumReader::builder(&schema)
        .build()
        .expect("reader")
        .read_value(&mut body)
        .expect("decodes")
}

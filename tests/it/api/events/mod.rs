//! `GET /v1/events`, `GET /v1/events/{id}` and `GET /v1/integrity/proof`, over events sealed by
//! the real seal core and projected into the real ClickHouse as the sink writes them. Thirty events
//! of two tenants share one partition; a signed checkpoint covers the first twenty.

mod sealing;

pub(crate) use sealing::{seal_events, seal_into_clickhouse};

use std::collections::BTreeSet;

use sealtrail_api::auth::Role;
use sealtrail_clickhouse::EventRow;
use sealtrail_core::checkpoint::{TrustedKey, tenant_head_leaf, verify_checkpoint};
use sealtrail_core::digest::{Digest, from_hex};
use sealtrail_core::merkle;
use sealtrail_core::sealed::{Checkpoint, TenantHead};
use serde_json::Value;

use super::{Api, BRAVO_MARKER};

const EVENTS: usize = 30;
const COVERED: usize = 20;

impl Api {
    pub(crate) async fn get(&self, credential: &str, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(credential)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Every event a filter finds, following the cursor page by page.
    async fn all_events(&self, credential: &str, filter: &str) -> Vec<Value> {
        let mut found = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(cursor) => format!("/v1/events?limit=7{filter}&cursor={cursor}"),
                None => format!("/v1/events?limit=7{filter}"),
            };
            let (status, body) = self.get(credential, &path).await;
            assert_eq!(status, 200, "{path}: {body}");
            found.extend(body["events"].as_array().expect("events").iter().cloned());
            match body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return found,
            }
        }
    }
}

fn ids(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .map(|e| e["event_id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn events_are_filtered_paged_and_carry_their_checkpoint() {
    let api = Api::empty().await;
    let sealed = seal_into_clickhouse(&api).await;
    let alfa = api.key(&api.alfa, Role::Auditor).await;
    let alfa_rows: Vec<&EventRow> = sealed.events.iter().filter(|e| e.tenant_id == api.alfa).collect();

    let all = api.all_events(&alfa, "").await;
    assert_eq!(ids(&all), alfa_rows.iter().map(|e| e.event_id.clone()).collect());
    assert_eq!(all.len(), alfa_rows.len(), "no event twice across pages");
    // Compared as times: RFC 3339 text drops trailing zeros of the fraction (".1Z" is ".100Z").
    let times: Vec<time::OffsetDateTime> = all
        .iter()
        .map(|e| {
            let text = e["occurred_at"].as_str().expect("time");
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).expect("RFC 3339")
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "ordered by time: {times:?}");
    for (event, row) in all.iter().zip(&alfa_rows) {
        assert_eq!(event["integrity"]["seq"], row.seq);
        assert_eq!(event["integrity"]["hash"], row.hash.as_str());
        assert_eq!(event["integrity"]["prev_hash"], row.prev_hash.as_str());
        let covered = usize::try_from(row.sealed_offset).expect("small") < COVERED;
        assert_eq!(
            event["integrity"]["checkpoint"]["number"].as_u64(),
            covered.then_some(1),
            "{event}"
        );
        assert!(
            event["actor"]["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("tok:email:")),
            "{event}"
        );
    }

    let count = |rows: &[&EventRow], keep: &dyn Fn(&EventRow) -> bool| rows.iter().filter(|r| keep(r)).count();
    for (filter, expected) in [
        ("&action=user.login", count(&alfa_rows, &|r| r.action == "user.login")),
        (
            "&action_prefix=billing.",
            count(&alfa_rows, &|r| r.action.starts_with("billing.")),
        ),
        ("&outcome=denied", count(&alfa_rows, &|r| r.outcome == "DENIED")),
        (
            "&correlation_id=corr-2",
            count(&alfa_rows, &|r| r.correlation_id.as_deref() == Some("corr-2")),
        ),
        ("&resource_type=account&resource_id=acct-4", 1),
        ("&label=email", alfa_rows.len()),
        ("&category=billing", count(&alfa_rows, &|r| r.category == "billing")),
    ] {
        let found = api.all_events(&alfa, filter).await;
        assert_eq!(found.len(), expected, "{filter}");
    }
    // The token lookup finds exactly the events whose actor was user1@example.com.
    let user1 = api
        .all_events(&alfa, "&match_label=email&match_value=User1%40Example.com")
        .await;
    let expected_user1 = sealed
        .events
        .iter()
        .enumerate()
        .filter(|(i, e)| e.tenant_id == api.alfa && i % 4 == 1)
        .count();
    assert_eq!(user1.len(), expected_user1);
    assert!(expected_user1 > 0);

    let first = &alfa_rows[0].event_id;
    let (status, one) = api.get(&alfa, &format!("/v1/events/{first}")).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["event_id"], first.as_str());

    for (path, at) in [
        ("/v1/events?limit=0", "limit"),
        ("/v1/events?outcome=maybe", "outcome"),
        ("/v1/events?from=yesterday", "from"),
        ("/v1/events?cursor=zz", "cursor"),
        ("/v1/events?match_value=x", "match_value"),
        ("/v1/events?match_value=x&match_label=shoe_size", "match_label"),
        ("/v1/events?colour=red", "query string"),
    ] {
        let (status, body) = api.get(&alfa, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["at"], at, "{path}: {body}");
    }
}

#[tokio::test]
async fn no_filter_reaches_another_tenant() {
    let api = Api::empty().await;
    let sealed = seal_into_clickhouse(&api).await;
    let alfa = api.key(&api.alfa, Role::Auditor).await;
    let bravo_rows: Vec<&EventRow> = sealed.events.iter().filter(|e| e.tenant_id == api.bravo).collect();
    let bravo_event = &bravo_rows[0];
    let mut paths = vec![
        format!("/v1/events?actor={}", bravo_event.actor_id),
        format!("/v1/events?resource_id={}", bravo_event.resource_id),
        format!(
            "/v1/events?correlation_id={}",
            bravo_event.correlation_id.clone().unwrap_or_default()
        ),
        format!("/v1/events?action={}", bravo_event.action),
        "/v1/events?match_label=email&match_value=user0%40example.com".to_owned(),
        "/v1/events?limit=1000".to_owned(),
        format!("/v1/events/{}", bravo_event.event_id),
        format!("/v1/integrity/proof?event_id={}", bravo_event.event_id),
    ];
    paths.extend(bravo_rows.iter().map(|e| format!("/v1/events/{}", e.event_id)));
    for path in &paths {
        let (status, body) = api.get(&alfa, path).await;
        let text = body.to_string();
        assert!(
            !text.contains(BRAVO_MARKER) && !text.contains(api.bravo.as_str()),
            "{path}: {text}"
        );
        assert!(matches!(status, 200 | 404), "{path}: {status} {text}");
    }
    // Naming bravo is refused outright.
    for path in [
        format!("/v1/events?tenant={}", api.bravo),
        format!("/v1/events/{}?tenant={}", bravo_event.event_id, api.bravo),
        format!(
            "/v1/integrity/proof?event_id={}&tenant={}",
            bravo_event.event_id, api.bravo
        ),
    ] {
        let (status, body) = api.get(&alfa, &path).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    // An SRE key reads no events at all.
    let sre = api.key(&api.alfa, Role::Sre).await;
    assert_eq!(api.get(&sre, "/v1/events").await.0, 403);
}

#[tokio::test]
async fn an_inclusion_proof_verifies_offline_against_the_signed_checkpoint() {
    let api = Api::empty().await;
    let sealed = seal_into_clickhouse(&api).await;
    let alfa = api.key(&api.alfa, Role::Auditor).await;
    let trusted = [TrustedKey::new(sealed.signer_public_key.clone())];
    // The signing keys are published, and the newest checkpoint's key is marked active.
    let keys: Value = api
        .http
        .get(format!("{}/v1/integrity/keys", api.url))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    assert_eq!(keys["keys"][0]["key_id"], trusted[0].key_id.as_str(), "{keys}");
    assert_eq!(
        keys["keys"][0]["public_key"],
        sealtrail_core::digest::to_hex(&trusted[0].public_key)
    );
    assert_eq!(keys["keys"][0]["active"], true);
    let covered: Vec<&EventRow> = sealed
        .events
        .iter()
        .filter(|e| e.tenant_id == api.alfa && usize::try_from(e.sealed_offset).expect("small") < COVERED)
        .collect();
    assert!(covered.len() >= 10, "{} covered events", covered.len());
    for row in &covered {
        let (status, proof) = api
            .get(&alfa, &format!("/v1/integrity/proof?event_id={}", row.event_id))
            .await;
        assert_eq!(status, 200, "{proof}");
        let text = proof.to_string();
        assert!(
            !text.contains(BRAVO_MARKER) && !text.contains(api.bravo.as_str()),
            "{text}"
        );
        assert_eq!(proof["entry_hash"], row.hash.as_str());

        // Offline, from the answer alone and the public key, as docs/integrity.md describes.
        let hex = |value: &Value| Digest::from_hex(value.as_str().expect("hex")).expect("digest");
        let path = |value: &Value| value.as_array().expect("path").iter().map(hex).collect::<Vec<_>>();
        let c = &proof["checkpoint"];
        let checkpoint = checkpoint_from_json(c);
        verify_checkpoint(&checkpoint, &trusted).expect("the checkpoint signature verifies");
        let entry = &proof["entry_inclusion"];
        let leaf = merkle::leaf_hash(&hex(&proof["entry_hash"]).0);
        assert!(merkle::verify_inclusion(
            &leaf,
            entry["leaf_index"].as_u64().expect("index"),
            entry["tree_size"].as_u64().expect("size"),
            &path(&entry["audit_path"]),
            &checkpoint.entries_root,
        ));
        let head = &proof["tenant_head"];
        let head_leaf = tenant_head_leaf(&TenantHead {
            tenant_id: head["tenant_id"].as_str().expect("tenant").to_owned(),
            seq: head["seq"].as_u64().expect("seq"),
            hash: hex(&head["hash"]),
        });
        assert!(merkle::verify_inclusion(
            &head_leaf,
            head["leaf_index"].as_u64().expect("index"),
            head["tree_size"].as_u64().expect("size"),
            &path(&head["audit_path"]),
            &checkpoint.tenant_heads_root,
        ));
        // A proof for another event's hash does not verify.
        let wrong = merkle::leaf_hash(&Digest::of(&[b"not the event"]).0);
        assert!(!merkle::verify_inclusion(
            &wrong,
            entry["leaf_index"].as_u64().expect("index"),
            entry["tree_size"].as_u64().expect("size"),
            &path(&entry["audit_path"]),
            &checkpoint.entries_root,
        ));
    }
    let uncovered = sealed
        .events
        .iter()
        .find(|e| e.tenant_id == api.alfa && usize::try_from(e.sealed_offset).expect("small") > COVERED)
        .expect("an event after the checkpoint");
    let (status, body) = api
        .get(&alfa, &format!("/v1/integrity/proof?event_id={}", uncovered.event_id))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "not_yet_covered");
}

impl Api {
    /// Runs a verification job to its end (it runs in the background; the deadline only bounds
    /// a broken run).
    async fn verification(&self, credential: &str) -> Value {
        let response = self
            .http
            .post(format!("{}/v1/integrity/verifications", self.url))
            .bearer_auth(credential)
            .json(&serde_json::json!({}))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 202);
        let started: Value = response.json().await.expect("JSON");
        let job_id = started["job_id"].as_str().expect("job id").to_owned();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let (status, job) = self
                .get(credential, &format!("/v1/integrity/verifications/{job_id}"))
                .await;
            assert_eq!(status, 200, "{job}");
            if job["state"] != "running" {
                return job;
            }
            assert!(std::time::Instant::now() < deadline, "the job never finished: {job}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn a_verification_job_passes_then_a_tampered_row_raises_a_signed_incident() {
    let api = Api::empty().await;
    let sealed = seal_into_clickhouse(&api).await;
    let compliance = api.key(&api.alfa, Role::Compliance).await;
    let alfa_events = sealed.events.iter().filter(|e| e.tenant_id == api.alfa).count() as u64;

    let job = api.verification(&compliance).await;
    assert_eq!(job["state"], "passed", "{job}");
    assert_eq!(job["report"]["events"], alfa_events);
    assert!(job["report"]["checkpoints_verified"].as_u64() >= Some(1), "{job}");

    let receiver = super::holds::Receiver::start().await;
    let admin = api.key(&api.alfa, Role::TenantAdmin).await;
    let (status, registered) = api
        .hold_request(
            &admin,
            "/v1/webhooks",
            None,
            &serde_json::json!({"url": receiver.url, "events": ["integrity.incident"]}),
            &crate::harness::unique("r"),
        )
        .await;
    assert_eq!(status, 201, "{registered}");
    api.settings
        .client()
        .query("ALTER TABLE events UPDATE reason_text = 'nothing to see here' WHERE tenant_id = {tenant:String} AND seq = 3")
        .param("tenant", &api.alfa)
        .with_setting("mutations_sync", "2")
        .execute()
        .await
        .expect("tamper");

    let job = api.verification(&compliance).await;
    assert_eq!(job["state"], "failed", "{job}");
    let first_break = job["report"]["first_break"].as_str().expect("first break");
    assert!(
        first_break.contains("seq 3") || first_break.contains("sequence 3"),
        "{first_break}"
    );

    let (signature, body) = receiver.first().await;
    let secret = registered["secret"].as_str().expect("secret");
    let now = i64::try_from(super::now()).expect("time");
    sealtrail_core::webhook::verify(secret.as_bytes(), &signature, &body, now, 300).expect("signed");
    let incident: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(incident["type"], "integrity.incident");
    assert_eq!(incident["data"]["job_id"], job["job_id"]);
    let records = super::sealed_records(&api.alfa, job["job_id"].as_str().expect("id")).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].action, "integrity.incident");
}

/// A checkpoint's signed fields as the proof route answers them (without its tenant heads).
fn checkpoint_from_json(c: &Value) -> Checkpoint {
    let hex = |value: &Value| Digest::from_hex(value.as_str().expect("hex")).expect("digest");
    Checkpoint {
        scheme: u32::try_from(c["scheme"].as_u64().expect("scheme")).expect("small"),
        partition: i32::try_from(c["partition"].as_i64().expect("partition")).expect("small"),
        number: c["number"].as_u64().expect("number"),
        prev_checkpoint_hash: hex(&c["prev_checkpoint_hash"]),
        entries_root: hex(&c["entries_root"]),
        entry_count: c["entry_count"].as_u64().expect("count"),
        tenant_heads_root: hex(&c["tenant_heads_root"]),
        tenant_count: c["tenant_count"].as_u64().expect("count"),
        source_offset: c["source_offset"].as_i64().expect("offset"),
        dlq_next_offset: c["dlq_next_offset"].as_i64().expect("offset"),
        created_at: c["created_at"].as_i64().expect("time"),
        epoch: u32::try_from(c["epoch"].as_u64().expect("epoch")).expect("small"),
        partitions: u32::try_from(c["partitions"].as_u64().expect("partitions")).expect("small"),
        closes_epoch: c["closes_epoch"].as_bool().expect("closes_epoch"),
        key_id: c["key_id"].as_str().expect("key").to_owned(),
        checkpoint_hash: hex(&c["checkpoint_hash"]),
        signature: from_hex(c["signature"].as_str().expect("signature")).expect("hex"),
        tenant_heads: Vec::new(),
    }
}

//! `POST /v1/ingest/events` on the shared pipeline: events sent as JSON, as arrays and as NDJSON
//! are acknowledged by Kafka, sealed, queryable and verified, and the raw records the edge wrote
//! are byte for byte what a Kafka producer writes for the same events; a batch with bad events is
//! a partial success naming each refusal; and only a producer credential writes, only for its own
//! tenant, and reads nothing.

use std::time::Duration;

use sealtrail_api::auth::Role;
use sealtrail_api::ingest::IngestSettings;
use sealtrail_api::ingest::quota::QuotaSettings;
use sealtrail_api::rate_limit::RateLimit;
use sealtrail_core::event::{Actor, ActorType, AuditEvent, Change, Evidence, Outcome, OutcomeStatus, Resource};
use sealtrail_emit::AuditEmitter;
use sealtrail_kafka::PartitionReader;
use serde_json::{Value, json};

use super::{Api, raw_topic};
use crate::harness::{shared, stored_event_ids, unique};
use crate::pipeline::verify_once_signed;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn now_ms() -> i64 {
    sealtrail_clickhouse::unix_ms(time::OffsetDateTime::now_utc())
}

/// A complete event: every field of the contract set, as a producer's JSON.
pub(super) fn full_event(tenant: &str, occurred_at: i64) -> (AuditEvent, Value) {
    let event = AuditEvent {
        event_id: ulid::Ulid::new().to_string(),
        tenant_id: tenant.to_owned(),
        occurred_at,
        action: "billing.refund.posted".to_owned(),
        actor: Actor {
            id: "svc-billing".to_owned(),
            kind: ActorType::Service,
            display_name: Some("Billing".to_owned()),
            authority: Some("refunds:write".to_owned()),
            on_behalf_of: Some("agent-7".to_owned()),
        },
        resource: Resource {
            kind: "invoice".to_owned(),
            id: "inv-1001".to_owned(),
            path: Some("org/acme/invoices/inv-1001".to_owned()),
        },
        outcome: Outcome {
            status: OutcomeStatus::Success,
            reason_code: Some("customer_request".to_owned()),
            reason_text: Some("refund approved".to_owned()),
        },
        correlation_id: Some("corr-1".to_owned()),
        causation_id: None,
        trace_id: Some("0af7651916cd43dd8448eb211c80319c".to_owned()),
        span_id: Some("b7ad6b7169203331".to_owned()),
        idempotency_key: Some("refund-1001".to_owned()),
        policy_version: Some("p-3".to_owned()),
        evidence: vec![Evidence {
            kind: "ticket".to_owned(),
            uri: "https://tickets.example/T-1".to_owned(),
            sha256: None,
        }],
        changes: vec![Change {
            field: "status".to_owned(),
            before: Some("open".to_owned()),
            after: Some("refunded".to_owned()),
        }],
        // In the order the body holds them (`json!` writes object keys sorted).
        attributes: vec![
            ("amount".to_owned(), "12.50".to_owned()),
            ("currency".to_owned(), "EUR".to_owned()),
        ],
        session_id: Some("sess-9".to_owned()),
    };
    let json = json!({
        "event_id": event.event_id, "tenant_id": tenant, "occurred_at": occurred_at,
        "action": "billing.refund.posted",
        "actor": {"id": "svc-billing", "type": "SERVICE", "display_name": "Billing",
                  "authority": "refunds:write", "on_behalf_of": "agent-7"},
        "resource": {"type": "invoice", "id": "inv-1001", "path": "org/acme/invoices/inv-1001"},
        "outcome": {"status": "SUCCESS", "reason_code": "customer_request", "reason_text": "refund approved"},
        "correlation_id": "corr-1", "causation_id": null,
        "trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331",
        "idempotency_key": "refund-1001", "policy_version": "p-3",
        "evidence": [{"kind": "ticket", "uri": "https://tickets.example/T-1"}],
        "changes": [{"field": "status", "before": "open", "after": "refunded"}],
        "attributes": {"currency": "EUR", "amount": "12.50"},
        "session_id": "sess-9"
    });
    (event, json)
}

/// A small event with only the required fields.
fn small_event(tenant: &str, action: &str) -> Value {
    json!({
        "event_id": ulid::Ulid::new().to_string(), "tenant_id": tenant,
        "occurred_at": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).expect("time"),
        "action": action, "actor": {"id": "user-1", "type": "USER"},
        "resource": {"type": "account", "id": "acct-1"}, "outcome": {"status": "SUCCESS"}
    })
}

struct Sent {
    status: u16,
    body: Value,
}

async fn send(api: &Api, key: &str, tenant: &str, content_type: &str, body: String, extra: &[(&str, &str)]) -> Sent {
    let mut request = api
        .http
        .post(format!("{}/v1/ingest/events", api.url))
        .bearer_auth(key)
        .header("content-type", content_type)
        .header("x-tenant-id", tenant)
        .body(body);
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    Sent {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

/// The raw record Kafka stored for an accepted event.
fn raw_record(result: &Value) -> sealtrail_kafka::PartitionRecord {
    let partition = i32::try_from(result["partition"].as_i64().expect("partition")).expect("small");
    let offset = result["offset"].as_i64().expect("offset");
    let reader = PartitionReader::new(&shared().kafka(), Duration::from_secs(60)).expect("reader");
    let mut records = reader
        .read(&raw_topic(), partition, offset, offset + 1)
        .expect("read the raw record");
    assert_eq!(records.len(), 1);
    records.remove(0)
}

/// The event ids stored for `tenant`, once there are `expected` of them.
async fn stored(api: &Api, tenant: &str, expected: usize) -> Vec<String> {
    stored_event_ids(&api.settings, tenant, expected).await
}

fn accepted_ids(answer: &Value) -> Vec<String> {
    answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|result| result["status"] == "accepted")
        .map(|result| result["event_id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_over_rest_are_sealed_queryable_and_written_as_a_kafka_producer_writes_them() {
    let api = Api::on_pipeline().await;
    let tenant = unique("ingest");
    let producer = api.key(&tenant, Role::Producer).await;
    let (event, json) = full_event(&tenant, now_ms() - 60_000);

    let one = send(&api, &producer, &tenant, "application/json", json.to_string(), &[]).await;
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(
        (one.body["accepted"].as_u64(), one.body["rejected"].as_u64()),
        (Some(1), Some(0))
    );
    // The record the edge wrote is the one a Kafka producer with the contract writes.
    let emitter = AuditEmitter::connect(&shared().kafka(), &shared().registry(), &raw_topic())
        .await
        .expect("emitter");
    let record = raw_record(&one.body["results"][0]);
    assert_eq!(record.value.as_deref(), Some(emitter.encode(&event).as_slice()));
    assert_eq!(record.key.as_deref(), Some(tenant.as_bytes()));
    assert_eq!(record.header("idempotency-key"), Some(b"refund-1001".as_slice()));

    let array = json!([small_event(&tenant, "user.login"), small_event(&tenant, "user.logout")]);
    let batch = send(
        &api,
        &producer,
        &tenant,
        "application/json",
        array.to_string(),
        &[("x-idempotency-key", "req-42"), ("traceparent", TRACEPARENT)],
    )
    .await;
    assert_eq!(batch.status, 200, "{}", batch.body);
    let second = raw_record(&batch.body["results"][1]);
    let second_key = format!("req-42/{}", array[1]["event_id"].as_str().expect("id"));
    assert_eq!(second.header("idempotency-key"), Some(second_key.as_bytes()));
    assert!(
        second
            .header("sealtrail.producer")
            .is_some_and(|who| who.starts_with(b"key:"))
    );
    assert_eq!(second.header("traceparent"), Some(TRACEPARENT.as_bytes()));

    let lines = format!(
        "{}\n{}\n",
        small_event(&tenant, "data.exported"),
        small_event(&tenant, "configuration.changed")
    );
    let ndjson = send(&api, &producer, &tenant, "application/x-ndjson", lines, &[]).await;
    assert_eq!(ndjson.status, 200, "{}", ndjson.body);

    let mut sent: Vec<String> = [&one.body, &batch.body, &ndjson.body]
        .into_iter()
        .flat_map(accepted_ids)
        .collect();
    sent.sort();
    assert_eq!(
        stored(&api, &tenant, 5).await,
        sent,
        "each accepted event is sealed once"
    );
    let report = verify_once_signed(shared(), &tenant).await;
    assert_eq!(report.events, 5, "{report:?}");

    // Queryable, with the request's trace context on the events that named none.
    let auditor = api.key(&tenant, Role::Auditor).await;
    let events: Value = api
        .http
        .get(format!("{}/v1/events?action=user.logout", api.url))
        .bearer_auth(&auditor)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let logout = &events["events"][0];
    assert_eq!(logout["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "{events}");
    assert_eq!(logout["idempotency_key"], second_key.as_str(), "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_bad_events_seals_the_good_ones_and_names_each_refusal() {
    let api = Api::on_pipeline().await;
    let tenant = unique("ingest-mixed");
    let producer = api.key(&tenant, Role::Producer).await;
    let mut bad_id = small_event(&tenant, "user.login");
    bad_id["event_id"] = json!("not-a-ulid");
    let mut no_action = small_event(&tenant, "user.login");
    no_action.as_object_mut().expect("object").remove("action");
    let future = json!(now_ms() + 3_600_000);
    let mut ahead = small_event(&tenant, "user.login");
    ahead["occurred_at"] = future;
    let mut reserved = small_event(&tenant, "audit.events.read");
    reserved["actor"]["id"] = json!("someone");
    let mut first_keyed = small_event(&tenant, "user.login");
    first_keyed["idempotency_key"] = json!("k-1");
    let mut second_keyed = small_event(&tenant, "user.login");
    second_keyed["idempotency_key"] = json!("k-1");
    // A name given twice, which `json!` cannot write.
    let repeated = small_event(&tenant, "user.login").to_string().replacen(
        "\"outcome\"",
        "\"attributes\":{\"ip\":\"a\",\"ip\":\"b\"},\"outcome\"",
        1,
    );
    let batch = format!(
        "[{},{bad_id},{},{no_action},{ahead},{},{reserved},{first_keyed},{second_keyed},{repeated}]",
        small_event(&tenant, "user.login"),
        small_event(&unique("other"), "user.login"),
        small_event(&tenant, "user.logout"),
    );

    let answer = send(&api, &producer, &tenant, "application/json", batch, &[]).await;

    assert_eq!(answer.status, 207, "{}", answer.body);
    let reasons: Vec<Option<&str>> = answer.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|result| result["reason"].as_str())
        .collect();
    assert_eq!(
        reasons,
        vec![
            None,
            Some("invalid_event_id"),
            Some("key_mismatch"),
            Some("invalid_json"),
            Some("future_timestamp"),
            None,
            Some("invalid_action"),
            None,
            Some("duplicate"),
            Some("duplicate_attribute"),
        ],
        "{}",
        answer.body
    );
    assert!(
        answer.body["results"][3]["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("action")),
        "{}",
        answer.body
    );
    let mut accepted = accepted_ids(&answer.body);
    accepted.sort();
    assert_eq!(accepted.len(), 3);
    // Exactly the accepted events are sealed: none of them went to the DLQ instead.
    assert_eq!(stored(&api, &tenant, 3).await, accepted);
}

#[tokio::test]
async fn only_a_producer_writes_only_for_its_tenant_and_reads_nothing() {
    let api = Api::empty().await;
    let producer = api.key(&api.alfa, Role::Producer).await;
    let auditor = api.key(&api.alfa, Role::Auditor).await;
    let event = small_event(&api.alfa, "user.login").to_string();

    let other_tenant = send(&api, &producer, &api.bravo, "application/json", event.clone(), &[]).await;
    assert_eq!(other_tenant.status, 403, "{}", other_tenant.body);
    let reader = send(&api, &auditor, &api.alfa, "application/json", event.clone(), &[]).await;
    assert_eq!(reader.status, 403, "{}", reader.body);
    for path in ["/v1/events", "/v1/legal-holds", "/v1/exports", "/v1/retention-policies"] {
        let status = api
            .http
            .get(format!("{}{path}", api.url))
            .bearer_auth(&producer)
            .send()
            .await
            .expect("request")
            .status()
            .as_u16();
        assert_eq!(status, 403, "a producer reads {path}");
    }
    let (status, body) = api
        .query(Some(&producer), json!({"sql": "SELECT count() FROM events"}))
        .await;
    assert_eq!(status, 403, "{body}");

    let no_tenant = api
        .http
        .post(format!("{}/v1/ingest/events", api.url))
        .bearer_auth(&producer)
        .header("content-type", "application/json")
        .body(event.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(no_tenant.status().as_u16(), 400);
    let text = send(&api, &producer, &api.alfa, "text/plain", event.clone(), &[]).await;
    assert_eq!(text.status, 415, "{}", text.body);
    let many = format!("[{}]", vec![event.as_str(); 1_001].join(","));
    let too_many = send(&api, &producer, &api.alfa, "application/json", many, &[]).await;
    assert_eq!(too_many.status, 413, "{}", too_many.body);
    let bad_trace = send(
        &api,
        &producer,
        &api.alfa,
        "application/json",
        event,
        &[("traceparent", "not-a-trace")],
    )
    .await;
    assert_eq!(bad_trace.status, 400, "{}", bad_trace.body);
    // An idempotency key that is not ASCII is refused, not taken as absent (which would let a
    // retry be sealed twice).
    let not_ascii = api
        .http
        .post(format!("{}/v1/ingest/events", api.url))
        .bearer_auth(&producer)
        .header("x-tenant-id", &api.alfa)
        .header("content-type", "application/json")
        .header(
            "x-idempotency-key",
            reqwest::header::HeaderValue::from_bytes("clé-1".as_bytes()).expect("a header value"),
        )
        .body(small_event(&api.alfa, "user.login").to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(not_ascii.status().as_u16(), 400);
    let refusal: Value = not_ascii.json().await.expect("json");
    assert_eq!(refusal["error"]["at"], "x-idempotency-key", "{refusal}");
}

#[tokio::test]
async fn a_platform_producer_writes_for_its_bound_tenants_only_and_reads_none_of_them() {
    let api = Api::empty().await;
    let charlie = unique("charlie");
    let outsider = unique("outsider");
    let bound = vec![api.bravo.clone(), charlie.clone()];
    let key = api
        .keys
        .create_bound(&api.alfa, &bound, Role::Producer, "gateway", None)
        .await
        .expect("a platform producer key")
        .key;
    let expires = super::now() + 300;
    let claims = json!({"sub": "gateway@idp", "tenant": api.alfa, "roles": ["producer"],
                        "tenants": bound, "exp": expires});
    let secret = jsonwebtoken::EncodingKey::from_secret(super::HS256_SECRET);
    let token = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &secret).expect("token");
    for credential in [&key, &token] {
        for tenant in [&api.alfa, &api.bravo, &charlie] {
            let event = small_event(tenant, "user.login").to_string();
            let sent = send(&api, credential, tenant, "application/json", event, &[]).await;
            assert_eq!(sent.status, 200, "{tenant}: {}", sent.body);
        }
        let event = small_event(&outsider, "user.login").to_string();
        let refused = send(&api, credential, &outsider, "application/json", event, &[]).await;
        assert_eq!(refused.status, 403, "{}", refused.body);
        for tenant in [&api.alfa, &api.bravo] {
            let status = api
                .http
                .get(format!("{}/v1/events?tenant={tenant}", api.url))
                .bearer_auth(credential)
                .send()
                .await
                .expect("request")
                .status()
                .as_u16();
            assert_eq!(status, 403, "a platform producer reads {tenant}");
        }
    }
    // Only a producer is bound to more tenants, by a key or by a token.
    let refused = api
        .keys
        .create_bound(&api.alfa, &bound, Role::Auditor, "no", None)
        .await
        .expect_err("an auditor bound to more tenants");
    assert!(refused.to_string().contains("only a producer key"), "{refused}");
    let claims = json!({"sub": "reader@idp", "tenant": api.alfa, "roles": ["auditor"],
                        "tenants": [api.bravo], "exp": expires});
    let auditor = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &secret).expect("token");
    let event = small_event(&api.bravo, "user.login").to_string();
    let sent = send(&api, &auditor, &api.bravo, "application/json", event, &[]).await;
    assert_eq!(sent.status, 403, "{}", sent.body);
    // The claim gives a reader nothing, and takes nothing away either.
    let (status, body) = api
        .query(Some(&auditor), json!({"sql": "SELECT count() FROM events"}))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_flooding_tenant_gets_429_while_another_keeps_its_quota() {
    // Five events at once per tenant, refilled at one per 1,000 s: nothing refills during the test.
    let api = Api::with_ingest(IngestSettings {
        quotas: QuotaSettings {
            default: RateLimit {
                per_second: 0.001,
                burst: 5,
            },
            tenants: std::collections::HashMap::new(),
        },
        ..IngestSettings::default()
    })
    .await;
    let batch = |tenant: &str, n: usize| {
        let events: Vec<Value> = (0..n).map(|_| small_event(tenant, "user.login")).collect();
        Value::Array(events).to_string()
    };
    let hot = api.key(&api.alfa, Role::Producer).await;
    let calm = api.key(&api.bravo, Role::Producer).await;

    let first = send(&api, &hot, &api.alfa, "application/json", batch(&api.alfa, 5), &[]).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let response = api
        .http
        .post(format!("{}/v1/ingest/events", api.url))
        .bearer_auth(&hot)
        .header("x-tenant-id", &api.alfa)
        .header("content-type", "application/json")
        .body(batch(&api.alfa, 1))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!(retry_after >= 1);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");

    let other = send(&api, &calm, &api.bravo, "application/json", batch(&api.bravo, 5), &[]).await;
    assert_eq!(other.status, 200, "another tenant keeps its quota: {}", other.body);
    let too_big = send(&api, &calm, &api.bravo, "application/json", batch(&api.bravo, 6), &[]).await;
    assert_eq!(too_big.status, 413, "{}", too_big.body);
    assert_eq!(too_big.body["error"]["code"], "batch_over_quota", "{}", too_big.body);

    let metrics = api
        .http
        .get(format!("{}/metrics", api.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let throttled = format!(
        "sealtrail_events_throttled_total{{component=\"api\",tenant=\"{}\"}} 1",
        api.alfa
    );
    assert!(metrics.contains(&throttled), "{throttled} in {metrics}");
    assert!(
        metrics.contains("sealtrail_produce_ack_seconds_count{component=\"api\"} 10"),
        "{metrics}"
    );
}

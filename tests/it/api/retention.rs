//! Retention on the real pipeline: expired events are deleted and leave tombstones, a held event
//! survives until its hold is released, each run is sealed as `policy.applied` with the digest of
//! its tombstones, verification and exports pass across the purged ranges, and a tombstone no
//! sealed run vouches for is caught.

use std::time::{Duration, Instant};

use sealtrail_api::auth::Role;
use sealtrail_clickhouse::{VerifyFailure, VerifyReport, VerifyRequest, verify_tenant};
use sealtrail_core::event::{ActorType, AuditEvent};
use sealtrail_emit::AuditEmitter;
use sealtrail_export::exporter::{ExportRequest, write_export};
use sealtrail_retention::{PolicyOutcome, run_once};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::export::verify_export;
use super::{Api, raw_topic, sealed_records};
use crate::harness::{shared, unique};

const EVENTS: u64 = 20;

impl Api {
    async fn change(
        &self,
        credential: &str,
        method: reqwest::Method,
        path: &str,
        purpose: Option<&str>,
        body: Value,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(credential)
            .json(&body);
        if let Some(purpose) = purpose {
            request = request.header("x-purpose", purpose);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn seqs(&self, table: &str, tenant: &str) -> Vec<u64> {
        self.settings
            .client()
            .query(&format!(
                "SELECT DISTINCT seq FROM {table} WHERE tenant_id = {{tenant:String}} ORDER BY seq"
            ))
            .param("tenant", tenant)
            .fetch_all()
            .await
            .expect("seqs")
    }
}

async fn verify(tenant: &str) -> Result<VerifyReport, VerifyFailure> {
    let request = VerifyRequest {
        tenant: tenant.to_owned(),
        from: None,
        to: None,
    };
    verify_tenant(&shared().clickhouse(), &request, &shared().trusted_keys()).await
}

/// Publishes `EVENTS` events of the tenant that occurred three days ago, and waits until they are
/// sealed, projected and covered by a signed checkpoint (the deadline only bounds a broken run).
async fn three_day_old_events(emitter: &AuditEmitter, tenant: &str) {
    let three_days_ago =
        i64::try_from((OffsetDateTime::now_utc() - time::Duration::days(3)).unix_timestamp_nanos() / 1_000_000)
            .expect("time");
    for i in 0..EVENTS {
        let mut event = AuditEvent {
            event_id: ulid::Ulid::new().to_string(),
            tenant_id: tenant.to_owned(),
            occurred_at: three_days_ago + i64::try_from(i).expect("small"),
            action: "user.login".to_owned(),
            ..AuditEvent::default()
        };
        event.actor.id = format!("service-{i}");
        event.actor.kind = ActorType::Service;
        "account".clone_into(&mut event.resource.kind);
        event.resource.id = format!("acct-{i}");
        emitter.emit(&event).await.expect("publish");
    }
    let client = shared().clickhouse().client();
    let started = Instant::now();
    loop {
        let signed: u64 = client
            .query(
                "SELECT max(head.2) FROM checkpoints ARRAY JOIN tenant_heads AS head \
                 WHERE head.1 = {tenant:String}",
            )
            .param("tenant", tenant)
            .fetch_one()
            .await
            .expect("checkpoints");
        if signed >= EVENTS {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "not sealed: {signed}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The run's outcome for the tenant, once its `policy.applied` event is sealed.
async fn applied(report: &sealtrail_retention::RunReport, tenant: &str) -> PolicyOutcome {
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let mine: Vec<_> = report.outcomes.iter().filter(|o| o.tenant_id == tenant).collect();
    assert_eq!(mine.len(), 1, "{report:?}");
    let records = sealed_records(tenant, &mine[0].run_id).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].action, "policy.applied");
    mine[0].clone()
}

#[tokio::test]
async fn a_held_event_survives_the_purge_of_its_neighbours_until_released() {
    let api = Api::on_pipeline().await;
    let tenant = unique("retained");
    let emitter = AuditEmitter::connect(&shared().kafka(), &shared().registry(), &raw_topic())
        .await
        .expect("emitter");
    three_day_old_events(&emitter, &tenant).await;
    let recorder = emitter;
    let compliance = api.key(&tenant, Role::Compliance).await;
    let auditor = api.key(&tenant, Role::Auditor).await;
    let put = reqwest::Method::PUT;

    // A one-day policy for every category of the tenant; only compliance may set it, saying why.
    let policy = json!({"retain_days": 1});
    let path = "/v1/retention-policies/*";
    let (status, _) = api
        .change(&auditor, put.clone(), path, Some("tidy"), policy.clone())
        .await;
    assert_eq!(status, 403);
    let (status, body) = api.change(&compliance, put.clone(), path, None, policy.clone()).await;
    assert_eq!(
        (status, body["error"]["at"].as_str()),
        (400, Some("X-Purpose")),
        "{body}"
    );
    let (status, body) = api
        .change(&compliance, put.clone(), path, Some("records schedule 4"), policy)
        .await;
    assert_eq!(status, 200, "{body}");
    // The middle event is held.
    let hold_request = json!({"case_id": "CASE-1", "scope": {"resource_id": "acct-10"}, "reason": "litigation"});
    let (status, placed) = api
        .change(
            &compliance,
            reqwest::Method::POST,
            "/v1/legal-holds",
            Some("case 1"),
            hold_request,
        )
        .await;
    assert_eq!(status, 201, "{placed}");

    let client = api.settings.client();
    let report = run_once(&client, &[], &recorder, OffsetDateTime::now_utc())
        .await
        .expect("run");
    let outcome = applied(&report, &tenant).await;
    assert_eq!((outcome.deleted, outcome.held), (EVENTS - 1, 1), "{outcome:?}");
    let left = api.seqs("events", &tenant).await;
    assert_eq!(
        left[0], 11,
        "only the held event (seq 11) is left of the old ones: {left:?}"
    );
    assert!(left.iter().all(|seq| *seq == 11 || *seq > EVENTS), "{left:?}");
    assert_eq!(
        api.seqs("event_entries", &tenant).await,
        left,
        "a purged event's stored entry is deleted with it"
    );
    assert_eq!(api.seqs("tombstones", &tenant).await.len() as u64, EVENTS - 1);

    let verified = verify(&tenant)
        .await
        .expect("the chain verifies across the purged ranges");
    assert_eq!(verified.purged, EVENTS - 1, "{verified:?}");
    assert_eq!(
        verified.purged_ranges.len(),
        2,
        "before and after the held event: {verified:?}"
    );
    assert!(verified.entries_roots_checked > 0, "{verified:?}");

    // An export verifies offline: the purged events are witness lines.
    let keys = shared().data_dir.join("keys");
    let signer = sealtrail_runtime::keys::load_signer(&keys.join(sealtrail_runtime::keys::SIGNING_KEY_FILE))
        .expect("the pipeline's signing key");
    let work = tempfile::tempdir().expect("temp dir");
    let request = ExportRequest {
        export_id: "exp_retained".to_owned(),
        tenant: tenant.clone(),
        scope: sealtrail_api::scope::EventScope::default(),
        out_dir: work.path().join("export"),
        max_file_bytes: 1 << 20,
    };
    let manifest = write_export(&api.settings, &signer, &request, |_| {})
        .await
        .expect("export");
    assert_eq!(manifest.omitted_count, EVENTS - 1);
    let (ok, printed) = verify_export(&request.out_dir, &keys.join("trusted"));
    assert!(ok && printed.contains("witness"), "{printed}");

    // Released, the next run deletes it too, and the chain still verifies.
    let hold_id = placed["hold_id"].as_str().expect("hold id");
    let release = format!("/v1/legal-holds/{hold_id}/release");
    let (status, _) = api
        .change(
            &compliance,
            reqwest::Method::POST,
            &release,
            Some("case closed"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let report = run_once(&client, &[], &recorder, OffsetDateTime::now_utc())
        .await
        .expect("run");
    let outcome = applied(&report, &tenant).await;
    assert_eq!((outcome.deleted, outcome.held), (1, 0), "{outcome:?}");
    let verified = verify(&tenant).await.expect("verifies");
    assert_eq!(verified.purged, EVENTS, "{verified:?}");

    // Deleting a recent event and planting a tombstone in its place is caught: no sealed run
    // vouches for it.
    let victim = EVENTS + 1;
    client
        .query(
            "INSERT INTO tombstones (tenant_id, seq, event_id, occurred_at, category, prev_hash, hash, sealed_partition, sealed_offset, policy_id, run_id, purged_at) \
             SELECT tenant_id, seq, event_id, occurred_at, category, prev_hash, hash, sealed_partition, sealed_offset, 'config:*:*', 'ret_forged', now64(3) \
             FROM events WHERE tenant_id = {tenant:String} AND seq = {seq:UInt64}",
        )
        .param("tenant", &tenant)
        .param("seq", victim)
        .execute()
        .await
        .expect("plant a tombstone");
    client
        .query("DELETE FROM events WHERE tenant_id = {tenant:String} AND seq = {seq:UInt64}")
        .param("tenant", &tenant)
        .param("seq", victim)
        .execute()
        .await
        .expect("delete the event");
    match verify(&tenant).await {
        Err(VerifyFailure::Unattested { run_id, .. }) => assert_eq!(run_id, "ret_forged"),
        other => panic!("a forged tombstone must not verify: {other:?}"),
    }
    // Nor is it exported as purged.
    let request = ExportRequest {
        export_id: "exp_forged".to_owned(),
        out_dir: work.path().join("forged"),
        ..request
    };
    let refused = write_export(&api.settings, &signer, &request, |_| {}).await;
    assert!(
        refused.as_ref().is_err_and(|e| e.to_string().contains("ret_forged")),
        "{:?}",
        refused.map(|m| m.event_count)
    );
}

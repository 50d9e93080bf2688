//! Retention against the real ClickHouse and pipeline: expired events are deleted and leave
//! tombstones, a held event survives until its hold is released, verification and exports still
//! pass across the purged ranges, and every run is sealed as `policy.applied`.

use sealtrail_api::audit::AccessRecorder;
use sealtrail_api::auth::Role;
use sealtrail_api::exporter::{ExportRequest, write_export};
use sealtrail_api::retention::run_once;
use sealtrail_clickhouse::{VerifyReport, VerifyRequest, verify_tenant};
use sealtrail_core::checkpoint::{CheckpointSigner, TrustedKey};
use sealtrail_core::digest::to_hex;
use sealtrail_emit::AuditEmitter;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::events::seal_into_clickhouse;
use super::export::verify_export;
use super::{Api, SIGNER_SEED, raw_topic, sealed_records};
use crate::harness::{shared, unique};

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
            .header("x-request-id", unique("r"))
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
                "SELECT seq FROM {table} WHERE tenant_id = {{tenant:String}} ORDER BY seq"
            ))
            .param("tenant", tenant)
            .fetch_all()
            .await
            .expect("seqs")
    }

    async fn verify(&self, tenant: &str) -> VerifyReport {
        let signer = CheckpointSigner::from_seed(&SIGNER_SEED).expect("signer");
        let request = VerifyRequest {
            tenant: tenant.to_owned(),
            from: None,
            to: None,
        };
        verify_tenant(
            &self.settings,
            &request,
            &[TrustedKey::new(signer.public_key().to_vec())],
        )
        .await
        .expect("the chain verifies across the purged ranges")
    }
}

#[tokio::test]
async fn a_held_event_survives_the_purge_of_its_neighbours_until_released() {
    let api = Api::empty().await;
    let sealed = seal_into_clickhouse(&api).await;
    let mut alfa: Vec<_> = sealed.events.iter().filter(|e| e.tenant_id == api.alfa).collect();
    alfa.sort_by_key(|e| e.seq);
    let bravo_before = api.seqs("events", &api.bravo).await;
    let held = alfa[alfa.len() / 2];
    let compliance = api.key(&api.alfa, Role::Compliance).await;
    let auditor = api.key(&api.alfa, Role::Auditor).await;
    let put = reqwest::Method::PUT;

    // A one-day policy for every category of alfa; only compliance may set it, and says why.
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

    let hold_request = json!({"case_id": "CASE-1", "scope": {"resource_id": held.resource_id}, "reason": "litigation"});
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

    let recorder = AccessRecorder::new(
        AuditEmitter::connect(&shared().kafka(), shared().registry_url(), &raw_topic())
            .await
            .expect("emitter"),
    );
    let client = api.settings.client();
    let two_days_later = OffsetDateTime::now_utc() + time::Duration::days(2);
    let outcomes = run_once(&client, &[], &recorder, two_days_later)
        .await
        .expect("retention run");
    let mine: Vec<_> = outcomes.iter().filter(|o| o.tenant_id == api.alfa).collect();
    assert_eq!(mine.len(), 1, "{outcomes:?}");
    assert_eq!(
        (mine[0].deleted, mine[0].held),
        (alfa.len() as u64 - 1, 1),
        "{outcomes:?}"
    );
    assert!(outcomes.iter().all(|o| o.tenant_id != api.bravo), "bravo has no policy");
    assert_eq!(
        api.seqs("events", &api.alfa).await,
        [held.seq],
        "only the held event is left"
    );
    assert_eq!(api.seqs("events", &api.bravo).await, bravo_before);
    assert_eq!(api.seqs("tombstones", &api.alfa).await.len(), alfa.len() - 1);

    let report = api.verify(&api.alfa).await;
    assert_eq!((report.events, report.purged), (1, alfa.len() as u64 - 1), "{report:?}");
    assert_eq!(
        report.purged_ranges.len(),
        2,
        "before and after the held event: {report:?}"
    );
    assert!(report.entries_roots_checked > 0, "{report:?}");

    // An export still verifies offline: the purged events are witness lines.
    let signer = CheckpointSigner::from_seed(&SIGNER_SEED).expect("signer");
    let work = tempfile::tempdir().expect("temp dir");
    let key = work.path().join("signing-key.pub");
    std::fs::write(&key, to_hex(signer.public_key())).expect("key");
    let request = ExportRequest {
        export_id: "exp_retained".to_owned(),
        tenant: api.alfa.clone(),
        scope: sealtrail_api::scope::EventScope::default(),
        out_dir: work.path().join("export"),
        max_file_bytes: 1 << 20,
    };
    let manifest = write_export(&api.settings, &signer, &request, |_| {})
        .await
        .expect("export");
    assert_eq!(
        (manifest.event_count, manifest.omitted_count),
        (1, alfa.len() as u64 - 1)
    );
    let (ok, printed) = verify_export(&request.out_dir, &key);
    assert!(ok && printed.contains("witness"), "{printed}");

    // The run itself is in alfa's sealed trail.
    let records = sealed_records(&api.alfa, &mine[0].run_id).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].action, "policy.applied");
    assert!(
        records[0].attributes.contains(&("held".to_owned(), "1".to_owned())),
        "{:?}",
        records[0].attributes
    );

    // Released, the next run deletes it, and the chain still verifies.
    let hold_id = placed["hold_id"].as_str().expect("hold id");
    let (status, _) = api
        .change(
            &compliance,
            reqwest::Method::POST,
            &format!("/v1/legal-holds/{hold_id}/release"),
            Some("case closed"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let outcomes = run_once(&client, &[], &recorder, two_days_later)
        .await
        .expect("retention run");
    let mine: Vec<_> = outcomes.iter().filter(|o| o.tenant_id == api.alfa).collect();
    assert_eq!((mine[0].deleted, mine[0].held), (1, 0), "{outcomes:?}");
    assert!(api.seqs("events", &api.alfa).await.is_empty());
    let report = api.verify(&api.alfa).await;
    assert_eq!((report.events, report.purged), (0, alfa.len() as u64), "{report:?}");
}

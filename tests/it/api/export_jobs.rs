//! Exports as jobs on Kafka: requested through the API, run by the export processor, followed on
//! the status topic, downloaded as a tar that `sealtrail verify-export` checks offline; a tenant
//! never sees another tenant's exports, and quotas apply.

use std::time::{Duration, Instant};

use sealtrail_api::auth::Role;
use sealtrail_api::rate_limit::RateLimit;
use sealtrail_core::checkpoint::CheckpointSigner;
use sealtrail_core::digest::to_hex;
use sealtrail_export::{ExportQuota, ProcessorConfig, run_processor};
use serde_json::{Value, json};

use super::events::seal_into_clickhouse;
use super::holds::Receiver;
use super::{Api, SIGNER_SEED};
use crate::harness::{run_sealtrail, shared, unique};

impl Api {
    async fn call(&self, method: reqwest::Method, credential: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(credential);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Runs an export processor on this API's queue, in the background.
    fn start_export_processor(&self) {
        let config = ProcessorConfig {
            kafka: shared().kafka(),
            group: unique("export-group"),
            topics: self.exports.topics.clone(),
            artifacts_dir: self.exports.artifacts_dir.clone(),
            clickhouse: self.settings.clone(),
            signer: CheckpointSigner::from_seed(&SIGNER_SEED).expect("signer"),
            // Small files, so the artifact spans several.
            max_file_bytes: 4096,
        };
        tokio::spawn(run_processor(
            config,
            sealtrail_runtime::Metrics::new("export"),
            std::future::pending(),
        ));
    }

    /// The export's state once it is final (the deadline only bounds a broken run).
    async fn finished_export(&self, credential: &str, export_id: &str) -> Value {
        let started = Instant::now();
        loop {
            let (status, body) = self
                .call(
                    reqwest::Method::GET,
                    credential,
                    &format!("/v1/exports/{export_id}"),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{body}");
            if body["state"] == "done" || body["state"] == "failed" {
                return body;
            }
            assert!(started.elapsed() < Duration::from_secs(120), "still {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn a_queued_export_runs_on_kafka_downloads_as_a_tar_and_verifies_offline() {
    let api = Api::empty().await;
    let sealed = seal_into_clickhouse(&api).await;
    api.start_export_processor();
    let compliance = api.key(&api.alfa, Role::Compliance).await;
    let admin = api.key(&api.alfa, Role::TenantAdmin).await;
    let receiver = Receiver::start().await;
    let (status, registered) = api
        .call(
            reqwest::Method::POST,
            &admin,
            "/v1/webhooks",
            Some(json!({"url": receiver.url, "events": ["export.completed"]})),
        )
        .await;
    assert_eq!(status, 201, "{registered}");

    // Logins only: the refunds between them become witness lines.
    let (status, queued) = api
        .call(
            reqwest::Method::POST,
            &compliance,
            "/v1/exports",
            Some(json!({"scope": {"actions": ["user.login"]}})),
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["state"], "queued");
    let export_id = queued["export_id"].as_str().expect("id").to_owned();
    let done = api.finished_export(&compliance, &export_id).await;
    assert_eq!(done["state"], "done", "{done}");
    let alfa: Vec<_> = sealed.events.iter().filter(|e| e.tenant_id == api.alfa).collect();
    let logins = alfa.iter().filter(|e| e.action == "user.login").count() as u64;
    assert_eq!(done["result"]["event_count"], logins, "{done}");
    assert_eq!(done["result"]["omitted_count"], alfa.len() as u64 - logins, "{done}");

    // The download is a tar that verifies offline.
    let response = api
        .http
        .get(format!("{}/v1/exports/{export_id}/artifact", api.url))
        .bearer_auth(&compliance)
        .send()
        .await
        .expect("download");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-tar");
    let tar = response.bytes().await.expect("tar");
    let work = tempfile::tempdir().expect("temp dir");
    let (tar_path, key) = (work.path().join("export.tar"), work.path().join("signing-key.pub"));
    std::fs::write(&tar_path, &tar).expect("write tar");
    let signer = CheckpointSigner::from_seed(&SIGNER_SEED).expect("signer");
    std::fs::write(&key, to_hex(signer.public_key())).expect("key");
    let args = [
        "verify-export",
        &tar_path.display().to_string(),
        "--public-key",
        &key.display().to_string(),
    ];
    let (status, stdout, stderr) = run_sealtrail(&args, &[]);
    assert!(
        status.success() && stdout.contains("VERIFIED") && stdout.contains("witness"),
        "{stdout}{stderr}"
    );
    // One changed byte inside the tar is caught.
    let mut altered = tar.to_vec();
    let at = altered.len() - 2048;
    altered[at] ^= 1;
    std::fs::write(&tar_path, &altered).expect("write tar");
    let (status, stdout, stderr) = run_sealtrail(&args, &[]);
    assert!(!status.success() && stderr.contains("NOT VERIFIED"), "{stdout}{stderr}");

    // The completion reached the tenant's webhook.
    let (_, body) = receiver.first().await;
    let delivered: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(
        (delivered["type"].as_str(), delivered["data"]["export_id"].as_str()),
        (Some("export.completed"), Some(export_id.as_str()))
    );

    // Another tenant sees nothing of it, and cannot export for alfa.
    let bravo = api.key(&api.bravo, Role::Compliance).await;
    for path in [
        format!("/v1/exports/{export_id}"),
        format!("/v1/exports/{export_id}/artifact"),
    ] {
        let (status, body) = api.call(reqwest::Method::GET, &bravo, &path, None).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, listed) = api.call(reqwest::Method::GET, &bravo, "/v1/exports", None).await;
    assert_eq!(
        (status, listed["exports"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{listed}"
    );
    let bravo_admin = api.key(&api.bravo, Role::TenantAdmin).await;
    let foreign = json!({"tenant": api.alfa, "scope": {}});
    let (status, _) = api
        .call(reqwest::Method::POST, &bravo_admin, "/v1/exports", Some(foreign))
        .await;
    assert_eq!(status, 403);
    let (status, listed) = api.call(reqwest::Method::GET, &compliance, "/v1/exports", None).await;
    assert_eq!(
        (status, listed["exports"][0]["export_id"].as_str()),
        (200, Some(export_id.as_str()))
    );
}

#[tokio::test]
async fn export_requests_are_checked_and_held_to_the_tenant_quota() {
    // No processor runs: queued jobs stay queued.
    let api = Api::configured(
        RateLimit {
            per_second: 1000.0,
            burst: 1000,
        },
        ExportQuota {
            max_active: 2,
            max_per_day: 50,
        },
    )
    .await;
    let compliance = api.key(&api.alfa, Role::Compliance).await;
    let auditor = api.key(&api.alfa, Role::Auditor).await;
    let post = |credential: &str, body: Value| {
        let credential = credential.to_owned();
        let api = &api;
        async move {
            api.call(reqwest::Method::POST, &credential, "/v1/exports", Some(body))
                .await
        }
    };
    let (status, _) = post(&auditor, json!({"scope": {}})).await;
    assert_eq!(status, 403, "an auditor cannot export");
    let (status, body) = post(&compliance, json!({"scope": {"filter": "1 = 1; DROP TABLE events"}})).await;
    assert_eq!(
        (status, body["error"]["at"].as_str()),
        (400, Some("scope.filter")),
        "{body}"
    );
    let (status, body) = post(&compliance, json!({"scope": {"from": "last week"}})).await;
    assert_eq!(
        (status, body["error"]["at"].as_str()),
        (400, Some("scope.from")),
        "{body}"
    );
    for _ in 0..2 {
        let (status, body) = post(&compliance, json!({"scope": {"filter": "outcome = 'DENIED'"}})).await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, body) = post(&compliance, json!({"scope": {}})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("quota_exceeded")),
        "{body}"
    );
    // The quota is the tenant's: bravo may still export.
    let bravo = api.key(&api.bravo, Role::Compliance).await;
    let (status, body) = post(&bravo, json!({"scope": {}})).await;
    assert_eq!(status, 202, "{body}");
}

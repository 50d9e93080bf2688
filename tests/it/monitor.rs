//! `sealtrail monitor`, as `up` runs it, finds a row altered, deleted or inserted in ClickHouse
//! within a minute, and raises each once: counted in its metrics, sealed into the tenant's trail as
//! `integrity.incident`, and sent signed to the tenant's webhooks. Honest data raises nothing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sealtrail_api::webhooks::WebhookChange;
use serde_json::Value;

use crate::harness::{TestStack, fresh_data_dir, serve_https_as};
use crate::pipeline::{assert_outcome, prefix, send_workload};

/// The target of docs/slo.md: a tampered row is reported within this long.
const REPORTED_WITHIN: Duration = Duration::from_secs(60);

type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// The monitor's `/metrics`, among the stack's processors'.
async fn monitor_metrics(stack: &TestStack) -> String {
    let urls = stack
        .endpoints
        .extra
        .iter()
        .find(|(key, _)| key == "METRICS_URLS")
        .map(|(_, urls)| urls.clone())
        .expect("endpoints.env lists the processors' metrics");
    let client = stack.http();
    for url in urls.split_whitespace() {
        let Ok(response) = client.get(url).send().await else {
            continue;
        };
        let text = response.text().await.unwrap_or_default();
        if text.contains("sealtrail_up{component=\"monitor\"}") {
            return text;
        }
    }
    panic!("no processor of the stack serves the monitor's metrics: {urls}");
}

fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
        .sum()
}

/// Incidents of `kind` the monitor raised so far.
async fn incidents(stack: &TestStack, kind: &str) -> u64 {
    let metrics = monitor_metrics(stack).await;
    let name = format!("sealtrail_integrity_incidents_total{{kind=\"{kind}\"}}");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name.as_str())?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("the monitor counts {kind} incidents:\n{metrics}"))
}

/// Waits until the monitor has compared every row stored so far with the sealed topic.
async fn wait_until_checked(stack: &TestStack) {
    let client = stack.clickhouse().client();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let newest: Vec<(u32, u64)> = client
            .query("SELECT sealed_partition, max(sealed_offset) FROM events GROUP BY sealed_partition")
            .fetch_all()
            .await
            .expect("newest rows");
        let metrics = monitor_metrics(stack).await;
        let checked = newest.iter().all(|(partition, offset)| {
            let name = format!("sealtrail_projection_checked_offset{{partition=\"{partition}\"}}");
            sample(&metrics, &name) >= *offset as f64
        });
        if checked {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the monitor did not check the stored rows within 2 minutes: {newest:?}\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits for the incident of `kind` about `tenant`, sealed into the tenant's trail; returns how long
/// after `since` it was stored.
async fn wait_for_sealed_incident(stack: &TestStack, tenant: &str, kind: &str, since: Instant) -> Duration {
    let client = stack.clickhouse().client();
    loop {
        let found: u64 = client
            .query(
                "SELECT count() FROM events WHERE tenant_id = ? AND action = 'integrity.incident' \
                 AND reason_code = ? AND actor_id = 'sealtrail-monitor'",
            )
            .bind(tenant)
            .bind(kind)
            .fetch_one()
            .await
            .expect("count");
        if found > 0 {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < REPORTED_WITHIN,
            "no {kind} incident of {tenant} was sealed within {REPORTED_WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn tamper(stack: &TestStack, statement: &str, tenant: &str) -> Instant {
    stack
        .clickhouse()
        .client()
        .query(statement)
        .bind(tenant)
        .with_setting("mutations_sync", "2")
        .execute()
        .await
        .expect("tamper");
    Instant::now()
}

/// A webhook receiver over HTTPS with the stack's certificate, registered for `tenant`'s
/// incidents as the API would register it; the secret it signs with.
async fn register_webhook(stack: &TestStack, tenant: &str) -> (Received, String) {
    let received: Received = Arc::default();
    let kept = Arc::clone(&received);
    let base = serve_https_as(stack, move |_| {
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let kept = Arc::clone(&kept);
                async move {
                    let signature = headers
                        .get("sealtrail-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    kept.lock().expect("lock").push((signature, body.to_vec()));
                    axum::http::StatusCode::OK
                }
            }),
        )
    })
    .await;
    let webhook_id = crate::harness::unique("wh");
    let change = WebhookChange {
        tenant_id: tenant.to_owned(),
        webhook_id: webhook_id.clone(),
        change: "added".to_owned(),
        url: format!("{base}/hook"),
        events: vec!["integrity.incident".to_owned()],
        actor: "test".to_owned(),
        changed_at: time::OffsetDateTime::now_utc(),
    };
    let client = stack.clickhouse().client();
    let mut insert = client.insert::<WebhookChange>("webhooks").await.expect("insert");
    insert.write(&change).await.expect("write");
    insert.end().await.expect("end");
    let key = sealtrail_runtime::keys::load_tokenization_key(
        &stack
            .data_dir
            .join("keys")
            .join(sealtrail_runtime::keys::TOKENIZATION_KEY_FILE),
    )
    .expect("the stack's tokenization key");
    let webhooks = sealtrail_api::webhooks::Webhooks::new(
        client,
        sealtrail_api::webhooks::WebhookSettings {
            key: Some(key),
            ..sealtrail_api::webhooks::WebhookSettings::default()
        },
    );
    let secret = webhooks.secret(tenant, &webhook_id).expect("secret");
    (received, secret)
}

/// The first delivery to the receiver whose signature verifies with `secret`, as JSON.
async fn wait_for_signed_delivery(received: &Received, secret: &str) -> Value {
    let deadline = Instant::now() + REPORTED_WITHIN;
    loop {
        let delivered = received.lock().expect("lock").clone();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let signed = delivered.iter().find_map(|(signature, body)| {
            sealtrail_core::webhook::verify(secret.as_bytes(), signature, body, now, 300).ok()?;
            serde_json::from_slice::<Value>(body).ok()
        });
        if let Some(incident) = signed {
            return incident;
        }
        assert!(
            Instant::now() < deadline,
            "no signed incident reached the tenant's webhook: {delivered:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_altered_deleted_or_inserted_in_clickhouse_is_reported_within_a_minute() {
    let stack = TestStack::try_start_with_env(
        &fresh_data_dir("monitor"),
        &[],
        &[("SEALTRAIL_WEBHOOKS_ALLOW_PRIVATE", "true")],
    )
    .unwrap_or_else(|failure| panic!("{failure}"));
    let sent = send_workload(&stack, 400, 3, 0.0, &prefix("watched")).await;
    assert_outcome(&stack, &sent).await;
    let [altered, deleted, inserted] = [0, 1, 2].map(|i| sent.tenants[i].clone());
    let (received, secret) = register_webhook(&stack, &altered).await;

    wait_until_checked(&stack).await;
    for kind in [
        "row_altered",
        "row_deleted",
        "row_inserted",
        "chain",
        "checkpoint",
        "accounting",
    ] {
        assert_eq!(incidents(&stack, kind).await, 0, "honest data raised a {kind} incident");
    }
    let metrics = monitor_metrics(&stack).await;
    assert!(
        sample(&metrics, "sealtrail_checkpoints_verified_total") >= 1.0,
        "checkpoints are verified as they land:\n{metrics}"
    );

    let since = tamper(
        &stack,
        "ALTER TABLE events UPDATE reason_text = 'nothing to see here' WHERE tenant_id = ? AND seq = 5",
        &altered,
    )
    .await;
    let took = wait_for_sealed_incident(&stack, &altered, "row_altered", since).await;
    eprintln!("an altered row was reported and sealed {took:?} after the change");

    let since = tamper(&stack, "DELETE FROM events WHERE tenant_id = ? AND seq = 7", &deleted).await;
    let took = wait_for_sealed_incident(&stack, &deleted, "row_deleted", since).await;
    eprintln!("a deleted row was reported and sealed {took:?} after the delete");

    let since = tamper(
        &stack,
        "INSERT INTO events SELECT * FROM events WHERE tenant_id = ? AND seq = 3",
        &inserted,
    )
    .await;
    let took = wait_for_sealed_incident(&stack, &inserted, "row_inserted", since).await;
    eprintln!("an inserted row was reported and sealed {took:?} after the insert");

    for kind in ["row_altered", "row_deleted", "row_inserted"] {
        assert_eq!(
            incidents(&stack, kind).await,
            1,
            "each tampering is raised once ({kind})"
        );
    }
    let incident = wait_for_signed_delivery(&received, &secret).await;
    assert_eq!(incident["type"], "integrity.incident");
    assert_eq!(incident["data"]["kind"], "row_altered");
    assert_eq!(incident["data"]["source"], "monitor");
    let detail = incident["data"]["detail"].as_str().expect("detail");
    assert!(detail.contains("seq 5") && detail.contains("reason_text"), "{detail}");
    assert!(!detail.contains("nothing to see here"), "no value reaches a webhook");
    stack.stop();
}

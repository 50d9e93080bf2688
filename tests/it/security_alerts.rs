//! Security alerts on the trail: a tenant administrator sets the tenant's rules through the API,
//! and `sealtrail monitor`, as `up` runs it, raises each rule once from the sealed events (a burst
//! of privileged actions, a burst of refused requests, a request naming another tenant, a first
//! export, a removed retention policy): sealed as `security.alert`, counted, and sent to webhooks.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sealtrail_api::webhooks::WebhookChange;
use sealtrail_core::event::{Actor, ActorType, AuditEvent};
use sealtrail_emit::AuditEmitter;
use serde_json::{Value, json};

use crate::harness::{TestStack, fresh_data_dir, serve_https_as, unique};
use crate::pipeline::RAW;

type Received = Arc<Mutex<Vec<Vec<u8>>>>;

fn key(stack: &TestStack, tenant: &str, role: &str) -> String {
    let (status, stdout, stderr) = stack.sealtrail(
        &[
            "keys", "create", "--tenant", tenant, "--role", role, "--label", "alerts",
        ],
        &[],
    );
    assert!(status.success(), "{stderr}");
    stdout.lines().last().expect("the key").to_owned()
}

async fn metric(stack: &TestStack, name: &str) -> Option<u64> {
    let urls = stack.endpoints.get("METRICS_URLS").expect("metrics URLs").to_owned();
    for url in urls.split_whitespace() {
        let Ok(response) = stack.http().get(url).send().await else {
            continue;
        };
        let text = response.text().await.unwrap_or_default();
        if text.contains("sealtrail_up{component=\"monitor\"}") {
            return text
                .lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok());
        }
    }
    None
}

/// Waits until the monitor serves `name` at `at_least`.
async fn wait_for_metric(stack: &TestStack, name: &str, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while metric(stack, name).await.unwrap_or_default() < at_least {
        assert!(Instant::now() < deadline, "{name} did not reach {at_least} within 90 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn sealed_alerts(stack: &TestStack, tenant: &str) -> Vec<String> {
    stack
        .clickhouse()
        .client()
        .query(
            "SELECT ifNull(reason_code, '') FROM events WHERE tenant_id = ? AND action = 'security.alert' \
             AND actor_id = 'sealtrail-monitor' ORDER BY reason_code",
        )
        .bind(tenant)
        .fetch_all::<String>()
        .await
        .expect("alerts")
}

async fn receive_alerts(stack: &TestStack, tenant: &str) -> Received {
    let received: Received = Arc::default();
    let kept = Arc::clone(&received);
    let base = serve_https_as(stack, move |_| {
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::body::Bytes| {
                let kept = Arc::clone(&kept);
                async move {
                    kept.lock().expect("lock").push(body.to_vec());
                    axum::http::StatusCode::OK
                }
            }),
        )
    })
    .await;
    let change = WebhookChange {
        tenant_id: tenant.to_owned(),
        webhook_id: unique("wh"),
        change: "added".to_owned(),
        url: format!("{base}/hook"),
        events: vec!["security.alert".to_owned()],
        actor: "test".to_owned(),
        changed_at: time::OffsetDateTime::now_utc(),
    };
    let client = stack.clickhouse().client();
    let mut insert = client.insert::<WebhookChange>("webhooks").await.expect("insert");
    insert.write(&change).await.expect("write");
    insert.end().await.expect("end");
    received
}

fn privileged_event(tenant: &str, n: u32) -> AuditEvent {
    let actor = Actor {
        id: "dana@example.com".to_owned(),
        kind: ActorType::User,
        display_name: None,
        authority: Some("admin".to_owned()),
        on_behalf_of: None,
    };
    sealtrail_emit::platform_event(
        tenant,
        time::OffsetDateTime::now_utc(),
        "configuration.changed",
        actor,
        ("feature_flag", &format!("flag-{n}")),
        &format!("corr-{n}"),
        Vec::new(),
    )
}

/// The tenant administrator sets the rules (an auditor may not; nonsense is refused); anyone of
/// the tenant reads them back, with the defaults of what was left out.
async fn set_rules(stack: &TestStack, api: &str, admin: &str, auditor: &str) {
    let http = stack.http();
    let rules = json!({
        "privileged_burst": {"enabled": true, "threshold": 3, "window_secs": 60},
        "refused_burst": {"enabled": true, "threshold": 3, "window_secs": 60},
    });
    let refused = http
        .put(format!("{api}/v1/security/alert-rules"))
        .bearer_auth(auditor)
        .json(&rules)
        .send()
        .await
        .expect("answer");
    assert_eq!(refused.status(), 403, "only a tenant administrator sets the rules");
    let silly = http
        .put(format!("{api}/v1/security/alert-rules"))
        .bearer_auth(admin)
        .json(&json!({"privileged_burst": {"enabled": true, "threshold": 0, "window_secs": 60}}))
        .send()
        .await
        .expect("answer");
    assert_eq!(silly.status(), 400);
    let set = http
        .put(format!("{api}/v1/security/alert-rules"))
        .bearer_auth(admin)
        .json(&rules)
        .send()
        .await
        .expect("answer");
    assert_eq!(set.status(), 200, "{}", set.text().await.unwrap_or_default());
    let shown: Value = http
        .get(format!("{api}/v1/security/alert-rules"))
        .bearer_auth(auditor)
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    assert_eq!(shown["source"], "tenant", "{shown}");
    assert_eq!(shown["rules"]["privileged_burst"]["threshold"], 3, "{shown}");
    assert_eq!(
        shown["rules"]["first_export"], true,
        "fields left out keep their defaults: {shown}"
    );
}

/// Trips every rule once.
async fn trip_every_rule(stack: &TestStack, api: &str, tenant: &str, auditor: &str, compliance: &str) {
    let http = stack.http();
    // Three privileged actions by one actor.
    let emitter = AuditEmitter::connect(&stack.kafka(), &stack.registry(), RAW)
        .await
        .expect("emitter");
    for n in 0..3 {
        emitter.emit(&privileged_event(tenant, n)).await.expect("sent");
    }
    // Three refused requests: two for a role the auditor lacks, one naming another tenant.
    for path in ["/v1/webhooks", "/v1/webhooks", "/v1/events?tenant=someone-else"] {
        let answer = http
            .get(format!("{api}{path}"))
            .bearer_auth(auditor)
            .send()
            .await
            .expect("answer");
        assert_eq!(answer.status(), 403, "{path}");
    }
    // A first export, then a retention policy set and removed.
    let export = http
        .post(format!("{api}/v1/exports"))
        .bearer_auth(compliance)
        .json(&json!({}))
        .send()
        .await
        .expect("answer");
    assert_eq!(export.status(), 202, "{}", export.text().await.unwrap_or_default());
    for method in [reqwest::Method::PUT, reqwest::Method::DELETE] {
        let mut request = http
            .request(method.clone(), format!("{api}/v1/retention-policies/billing"))
            .bearer_auth(compliance)
            .header("X-Purpose", "alerts test");
        if method == reqwest::Method::PUT {
            request = request.json(&json!({"retain_days": 30}));
        }
        let answer = request.send().await.expect("answer");
        assert_eq!(
            answer.status(),
            200,
            "{method}: {}",
            answer.text().await.unwrap_or_default()
        );
    }
}

async fn wait_for_deliveries(received: &Received, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rules: Vec<String> = received
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|body| serde_json::from_slice::<Value>(body).ok())
            .filter(|alert| alert["type"] == "security.alert")
            .filter_map(|alert| alert["data"]["rule"].as_str().map(str::to_owned))
            .collect();
        if rules.len() == expected {
            break;
        }
        assert!(Instant::now() < deadline, "webhook deliveries after 60 s: {rules:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_rule_raises_one_sealed_alert_sent_to_the_tenants_webhooks() {
    let stack = TestStack::try_start_with_env(
        &fresh_data_dir("alerts"),
        &[],
        &[("SEALTRAIL_WEBHOOKS_ALLOW_PRIVATE", "true")],
    )
    .unwrap_or_else(|failure| panic!("{failure}"));
    let tenant = unique("watched").replace('_', "-");
    let api = stack.endpoints.api_url.clone().expect("the API's URL");
    let (admin, auditor, compliance) = (
        key(&stack, &tenant, "tenant_admin"),
        key(&stack, &tenant, "auditor"),
        key(&stack, &tenant, "compliance"),
    );
    set_rules(&stack, &api, &admin, &auditor).await;
    wait_for_metric(&stack, "sealtrail_alert_rule_tenants", 1).await;
    let received = receive_alerts(&stack, &tenant).await;

    trip_every_rule(&stack, &api, &tenant, &auditor, &compliance).await;
    let expected = [
        "cross_tenant",
        "first_export",
        "privileged_burst",
        "refused_burst",
        "retention_policy_removed",
    ];
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut alerts = sealed_alerts(&stack, &tenant).await;
    while alerts != expected {
        assert!(Instant::now() < deadline, "sealed alerts after 90 s: {alerts:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        alerts = sealed_alerts(&stack, &tenant).await;
    }
    for rule in expected {
        let name = format!("sealtrail_security_alerts_total{{rule=\"{rule}\"}}");
        assert_eq!(metric(&stack, &name).await, Some(1), "{rule} counted once");
    }
    wait_for_deliveries(&received, expected.len()).await;
    stack.stop();
}

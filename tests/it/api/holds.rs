//! Legal holds through the API: who may place and release them, their append-only history, and the
//! sealed audit events of every change.

use sealtrail_api::auth::Role;
use serde_json::{Value, json};

use super::{Api, sealed_records};
use crate::harness::unique;

impl Api {
    pub(super) async fn hold_request(
        &self,
        credential: &str,
        path: &str,
        purpose: Option<&str>,
        body: &Value,
        request_id: &str,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(credential)
            .header("X-Request-Id", request_id)
            .json(body);
        if let Some(purpose) = purpose {
            request = request.header("X-Purpose", purpose);
        }
        let response = request.send().await.expect("request");
        (response.status().as_u16(), response.json().await.expect("JSON"))
    }

    async fn holds(&self, credential: &str) -> Vec<Value> {
        let response = self
            .http
            .get(format!("{}/v1/legal-holds", self.url))
            .bearer_auth(credential)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 200);
        let body: Value = response.json().await.expect("JSON");
        body["holds"].as_array().expect("holds").clone()
    }
}

#[tokio::test]
async fn holds_are_placed_and_released_by_compliance_with_a_purpose_and_never_edited() {
    let api = Api::empty().await;
    let compliance = api.key(&api.alfa, Role::Compliance).await;
    let auditor = api.key(&api.alfa, Role::Auditor).await;
    let bravo_compliance = api.key(&api.bravo, Role::Compliance).await;
    let hold = json!({
        "case_id": "CASE-2026-117",
        "scope": {"from": "2026-01-01T00:00:00Z", "actions": ["billing."]},
        "reason": "litigation: refund dispute",
    });

    let (status, body) = api
        .hold_request(&auditor, "/v1/legal-holds", Some("case 117"), &hold, &unique("r"))
        .await;
    assert_eq!(status, 403, "an auditor cannot place a hold: {body}");
    let (status, body) = api
        .hold_request(&compliance, "/v1/legal-holds", None, &hold, &unique("r"))
        .await;
    assert_eq!(
        (status, body["error"]["at"].as_str()),
        (400, Some("X-Purpose")),
        "{body}"
    );
    let mut bad_scope = hold.clone();
    bad_scope["scope"] = json!({"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"});
    let (status, _) = api
        .hold_request(
            &compliance,
            "/v1/legal-holds",
            Some("case 117"),
            &bad_scope,
            &unique("r"),
        )
        .await;
    assert_eq!(status, 400);
    let applied_request = unique("apply");
    let (status, placed) = api
        .hold_request(
            &compliance,
            "/v1/legal-holds",
            Some("court order 117"),
            &hold,
            &applied_request,
        )
        .await;
    assert_eq!(status, 201, "{placed}");
    assert_eq!(placed["state"], "active");
    assert!(placed["events_covered"].is_u64(), "{placed}");
    let hold_id = placed["hold_id"].as_str().expect("id").to_owned();
    let listed = api.holds(&auditor).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["scope"]["actions"], json!(["billing."]));

    // Tenant bravo neither sees nor releases alfa's hold.
    assert!(api.holds(&bravo_compliance).await.is_empty());
    let release_path = format!("/v1/legal-holds/{hold_id}/release");
    let (status, _) = api
        .hold_request(&bravo_compliance, &release_path, Some("x"), &json!({}), &unique("r"))
        .await;
    assert_eq!(status, 404);

    let released_request = unique("release");
    let (status, released) = api
        .hold_request(
            &compliance,
            &release_path,
            Some("case settled"),
            &json!({"reason": "settled"}),
            &released_request,
        )
        .await;
    assert_eq!(status, 200, "{released}");
    assert_eq!(released["state"], "released");
    let (status, _) = api
        .hold_request(&compliance, &release_path, Some("again"), &json!({}), &unique("r"))
        .await;
    assert_eq!(status, 409, "a release happens once");

    let history = &api.holds(&compliance).await[0]["history"];
    let changes: Vec<&str> = history
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|c| c["change"].as_str())
        .collect();
    assert_eq!(changes, ["applied", "released"], "both changes kept: {history}");
    assert_eq!(history[0]["purpose"], "court order 117");

    // Each change is sealed in the tenant's own trail.
    for (request_id, action) in [
        (&applied_request, "legalhold.applied"),
        (&released_request, "legalhold.released"),
    ] {
        let records = sealed_records(&api.alfa, request_id).await;
        assert_eq!(records.len(), 1, "{action}: {records:?}");
        assert_eq!(records[0].action, action);
        assert!(
            records[0]
                .attributes
                .iter()
                .any(|(k, v)| k == "case_id" && v == "CASE-2026-117"),
            "{records:?}"
        );
        assert_eq!(records[0].hash.len(), 64, "sealed");
    }
}

#[tokio::test]
async fn holds_refuse_raw_personal_data_and_say_what_they_cover() {
    let api = Api::start().await;
    let compliance = api.key(&api.alfa, Role::Compliance).await;
    // Events hold personal data only as tokens, and a hold must not store it raw either.
    let personal = json!({"case_id": "C-2", "scope": {"actor": "alice@example.com"}, "reason": "dispute"});
    let (status, body) = api
        .hold_request(&compliance, "/v1/legal-holds", Some("case 2"), &personal, &unique("r"))
        .await;
    assert_eq!(
        (status, body["error"]["at"].as_str()),
        (400, Some("scope.actor")),
        "{body}"
    );
    let logins = json!({"case_id": "C-2", "scope": {"actions": ["user.login"]}, "reason": "dispute"});
    let (status, placed) = api
        .hold_request(&compliance, "/v1/legal-holds", Some("case 2"), &logins, &unique("r"))
        .await;
    assert_eq!((status, placed["events_covered"].as_u64()), (201, Some(5)), "{placed}");
}

/// Deliveries a receiver kept: the signature header and the body.
type Kept = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// A webhook receiver (HTTPS) that fails its first delivery, then keeps what it is sent.
pub(super) struct Receiver {
    pub(super) url: String,
    received: Kept,
}

impl Receiver {
    pub(super) async fn start() -> Self {
        use axum::http::{HeaderMap, StatusCode};
        let received: Kept = std::sync::Arc::default();
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (kept, counted) = (received.clone(), calls.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let (kept, counted) = (kept.clone(), counted.clone());
                async move {
                    if counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    let signature = headers
                        .get("sealtrail-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    kept.lock().expect("lock").push((signature, body.to_vec()));
                    StatusCode::OK
                }
            }),
        );
        // Over HTTPS, with a certificate of the stack's CA, which the API is told to trust.
        let tls_dir = crate::harness::shared().data_dir.join("tls");
        let tls = sealtrail_http::ServerTls::load(&sealtrail_http::ServerTlsFiles {
            cert: tls_dir.join("server.pem"),
            key: tls_dir.join("server.key"),
        })
        .expect("the stack's server certificate");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("https://{}/hook", listener.local_addr().expect("address"));
        tokio::spawn(sealtrail_http::serve::serve(
            listener,
            app,
            Some(tls),
            std::future::pending(),
        ));
        Self { url, received }
    }

    /// The first delivery kept (the sender retries; the deadline only bounds a broken run).
    pub(super) async fn first(&self) -> (String, Vec<u8>) {
        let started = std::time::Instant::now();
        loop {
            if let Some(first) = self.received.lock().expect("lock").first().cloned() {
                return first;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "no delivery arrived"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn hold_changes_reach_signed_webhooks_that_refuse_replays_and_alterations() {
    let api = Api::empty().await;
    let admin = api.key(&api.alfa, Role::TenantAdmin).await;
    let compliance = api.key(&api.alfa, Role::Compliance).await;
    let receiver = Receiver::start().await;
    let (status, body) = api
        .hold_request(
            &admin,
            "/v1/webhooks",
            None,
            &json!({"url": receiver.url, "events": ["nope"]}),
            &unique("r"),
        )
        .await;
    assert_eq!((status, body["error"]["at"].as_str()), (400, Some("events")), "{body}");
    let (status, registered) = api
        .hold_request(
            &admin,
            "/v1/webhooks",
            None,
            &json!({"url": receiver.url, "events": ["legalhold.applied"]}),
            &unique("r"),
        )
        .await;
    assert_eq!(status, 201, "{registered}");
    let secret = registered["secret"].as_str().expect("secret").to_owned();
    let auditor = api.key(&api.alfa, Role::Auditor).await;
    let (status, _) = api
        .hold_request(
            &auditor,
            "/v1/webhooks",
            None,
            &json!({"url": receiver.url, "events": ["legalhold.applied"]}),
            &unique("r"),
        )
        .await;
    assert_eq!(status, 403, "an auditor cannot register webhooks");

    let hold = json!({"case_id": "CASE-9", "scope": {"actions": ["data."]}, "reason": "subpoena"});
    let (status, placed) = api
        .hold_request(&compliance, "/v1/legal-holds", Some("subpoena 9"), &hold, &unique("r"))
        .await;
    assert_eq!(status, 201, "{placed}");

    let (signature, body) = receiver.first().await;
    let now = i64::try_from(super::now()).expect("time");
    sealtrail_core::webhook::verify(secret.as_bytes(), &signature, &body, now, 300)
        .expect("a genuine delivery verifies");
    let delivered: Value = serde_json::from_slice(&body).expect("JSON body");
    assert_eq!(delivered["type"], "legalhold.applied");
    assert_eq!(delivered["data"]["hold_id"], placed["hold_id"]);
    // Replayed later, or altered, the same delivery is refused.
    assert!(matches!(
        sealtrail_core::webhook::verify(secret.as_bytes(), &signature, &body, now + 3600, 300),
        Err(sealtrail_core::webhook::WebhookError::OutsideWindow { .. })
    ));
    let mut altered = body.clone();
    altered[10] ^= 1;
    assert_eq!(
        sealtrail_core::webhook::verify(secret.as_bytes(), &signature, &altered, now, 300),
        Err(sealtrail_core::webhook::WebhookError::Mismatch)
    );
    // The failed first attempt and the retry are both logged. The retry's outcome is written
    // after the receiver has the delivery, so it is waited for (the deadline only bounds a
    // broken run).
    let started = std::time::Instant::now();
    let statuses = loop {
        let statuses: Vec<u16> = api
            .settings
            .client()
            .query("SELECT status FROM webhook_deliveries WHERE tenant_id = {tenant:String} ORDER BY attempt")
            .param("tenant", &api.alfa)
            .fetch_all()
            .await
            .expect("deliveries");
        if statuses.len() >= 2 || started.elapsed() > std::time::Duration::from_secs(60) {
            break statuses;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(statuses, [500, 200]);
}

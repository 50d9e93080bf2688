//! What the API refuses is audited and bounded: refused requests of a known caller are sealed in
//! its trail, reads of exports and holds too; failed credentials are limited per client address;
//! a client that dribbles its headers is disconnected; webhooks cannot target anything inside.

use std::time::{Duration, Instant};

use sealtrail_api::auth::Role;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{AccessRecord, Api, sealed_records};
use crate::harness::{shared, unique};

async fn send(api: &Api, request: reqwest::RequestBuilder) -> (String, u16) {
    let id = unique("req");
    let response = request.header("X-Request-Id", &id).send().await.expect("request");
    let status = response.status().as_u16();
    drop(response.text().await);
    let _ = api;
    (id, status)
}

fn only(records: &[AccessRecord]) -> &AccessRecord {
    assert_eq!(records.len(), 1, "{records:?}");
    &records[0]
}

#[tokio::test]
async fn every_refused_request_of_a_known_caller_and_every_read_of_exports_and_holds_is_sealed() {
    let api = Api::start().await;
    let alfa = api.key(&api.alfa, Role::Compliance).await;
    let bravo = api.key(&api.bravo, Role::Compliance).await;
    let url = |path: &str| format!("{}{path}", api.url);

    // Bravo's export, which alfa must not see.
    let response = api
        .http
        .post(url("/v1/exports"))
        .bearer_auth(&bravo)
        .json(&json!({"scope": {}}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 202);
    let export: Value = response.json().await.expect("JSON");
    let bravo_export = export["export_id"].as_str().expect("an export id").to_owned();

    let cases = [
        (
            api.http
                .post(url("/v1/query"))
                .bearer_auth(&alfa)
                .header("content-type", "application/json")
                .body("{\"sql\": "),
            400,
            "audit.request.refused",
            "bad_request",
        ),
        (
            api.http
                .post(url("/v1/query"))
                .bearer_auth(&alfa)
                .json(&json!({"sql": "SELECT 1", "sneaky": true})),
            400,
            "audit.request.refused",
            "bad_request",
        ),
        (
            api.http.get(url("/v1/events?nonsense=1")).bearer_auth(&alfa),
            400,
            "audit.request.refused",
            "bad_request",
        ),
        (
            api.http
                .get(url(&format!("/v1/exports/{bravo_export}")))
                .bearer_auth(&alfa),
            404,
            "audit.exports.read",
            "not_found",
        ),
        (
            api.http
                .get(url(&format!("/v1/exports/{bravo_export}/artifact")))
                .bearer_auth(&alfa),
            404,
            "audit.request.refused",
            "not_found",
        ),
    ];
    for (request, status, action, code) in cases {
        let (id, answered) = send(&api, request).await;
        assert_eq!(answered, status, "{action} {code}");
        let records = sealed_records(&api.alfa, &id).await;
        let record = only(&records);
        assert_eq!(
            (record.action.as_str(), record.reason_code.as_deref()),
            (action, Some(code))
        );
        assert_ne!(record.outcome, "SUCCESS");
    }
    for (path, action) in [
        ("/v1/exports", "audit.exports.read"),
        ("/v1/legal-holds", "audit.holds.read"),
    ] {
        let (id, answered) = send(&api, api.http.get(url(path)).bearer_auth(&alfa)).await;
        assert_eq!(answered, 200, "{path}");
        let records = sealed_records(&api.alfa, &id).await;
        let record = only(&records);
        assert_eq!((record.action.as_str(), record.outcome.as_str()), (action, "SUCCESS"));
    }
}

#[tokio::test]
async fn failed_credentials_are_limited_per_client_address() {
    let api = Api::start().await;
    let good = api.key(&api.alfa, Role::Auditor).await;
    let select = json!({"sql": "SELECT count() FROM events"});
    let mut statuses = Vec::new();
    for attempt in 0..25 {
        // A different made-up key every time: a per-credential limit alone would never trip.
        let guess = format!("stk_{:016x}_{}", attempt, "ab".repeat(32));
        statuses.push(api.query(Some(&guess), select.clone()).await.0);
    }
    assert!(statuses[..20].iter().all(|&s| s == 401), "{statuses:?}");
    assert!(statuses[20..].iter().all(|&s| s == 429), "{statuses:?}");
    // The address is over its budget, so even a good key from it waits.
    assert_eq!(api.query(Some(&good), select).await.0, 429);
}

#[tokio::test]
async fn a_client_that_dribbles_its_headers_is_disconnected() {
    let api = Api::start().await;
    let address = api.url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    // The server ends the connection (possibly with a 408) instead of waiting for ever.
    assert_closed_after_the_header_timeout(stream).await;
}

#[tokio::test]
async fn a_client_that_connects_and_says_nothing_is_disconnected() {
    let api = Api::start().await;
    let address = api.url.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
    // Before any byte the server cannot tell HTTP/1 from HTTP/2; it still does not wait for ever.
    assert_closed_after_the_header_timeout(stream).await;
}

/// The server closes `stream` by itself, not at once but after about its header timeout.
async fn assert_closed_after_the_header_timeout(mut stream: tokio::net::TcpStream) {
    let started = Instant::now();
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut buffer)).await;
    assert!(read.is_ok(), "still open after {:?}", started.elapsed());
    assert!(
        started.elapsed() >= sealtrail_api::serve::HEADER_READ_TIMEOUT / 2,
        "closed at once: {:?}",
        String::from_utf8_lossy(&buffer)
    );
}

#[tokio::test]
async fn webhooks_cannot_target_clickhouse_or_anything_inside() {
    let api = Api::strict_webhooks().await;
    let admin = api.key(&api.alfa, Role::TenantAdmin).await;
    let clickhouse_port = shared()
        .endpoints
        .clickhouse_url
        .rsplit(':')
        .next()
        .expect("a port")
        .trim_end_matches('/')
        .to_owned();
    for target in [
        format!("http://127.0.0.1:{clickhouse_port}/?query=DROP%20DATABASE%20sealtrail"),
        format!("http://localhost:{clickhouse_port}/"),
        format!("http://[::ffff:127.0.0.1]:{clickhouse_port}/"),
        format!("http://[::1]:{clickhouse_port}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/hook".to_owned(),
        "http://0.0.0.0/hook".to_owned(),
        format!("{}/v1/query", api.url),
    ] {
        let response = api
            .http
            .post(format!("{}/v1/webhooks", api.url))
            .bearer_auth(&admin)
            .json(&json!({"url": target, "events": ["export.completed"]}))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(status, 400, "{target}: {body}");
        assert_eq!(body["error"]["at"], json!("url"), "{body}");
    }
}

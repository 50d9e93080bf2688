//! The web console in a real Chromium, against the shared stack's own API (the `sealtrail api`
//! that `up` runs, over HTTPS): sign-in, the timeline, an event's integrity checked in the
//! browser, legal holds and exports, and event fields that carry HTML and script.

mod browser;
mod compliance;
mod oidc;
mod rendering;
mod screens;
mod timeline;

use std::time::{Duration, Instant};

use sealtrail_api::auth::Role;
use sealtrail_api::auth::api_keys::KeyStore;
use serde_json::{Value, json};

pub use browser::Browser;

use crate::harness::{TestStack, shared, unique};

/// A tenant of its own on the shared stack, with events sealed, stored and covered by a signed
/// checkpoint.
pub struct ConsoleTenant {
    pub stack: &'static TestStack,
    pub tenant: String,
    pub api_url: String,
    keys: KeyStore,
}

impl ConsoleTenant {
    pub fn new(prefix: &str) -> Self {
        let stack = shared();
        Self {
            stack,
            tenant: unique(prefix),
            api_url: stack.endpoints.api_url.clone().expect("up runs the API"),
            keys: KeyStore::new(stack.clickhouse().client()),
        }
    }

    pub fn console_url(&self) -> String {
        format!("{}/console/", self.api_url)
    }

    pub async fn key(&self, role: Role) -> String {
        self.keys
            .create(&self.tenant, role, "console test")
            .await
            .expect("an API key")
            .key
    }

    /// Sends `events` through the ingest edge and returns once every one is stored and a signed
    /// checkpoint covers it (its inclusion proof is served).
    pub async fn seal(&self, events: &[Value]) {
        self.send(events).await;
        let reader = self.key(Role::Auditor).await;
        for event in events {
            let id = event["event_id"].as_str().expect("an event id");
            self.wait_for(&reader, &format!("/v1/integrity/proof?event_id={id}"))
                .await;
        }
    }

    /// Sends `events` through the ingest edge, which answers once Kafka has them.
    pub async fn send(&self, events: &[Value]) {
        let producer = self.key(Role::Producer).await;
        let ingest = self.stack.endpoints.get("INGEST_URL").expect("up runs the ingest edge");
        let answer = self
            .stack
            .http()
            .post(format!("{ingest}/v1/ingest/events"))
            .bearer_auth(&producer)
            .header("x-tenant-id", &self.tenant)
            .json(&events)
            .send()
            .await
            .expect("the ingest edge answers");
        let status = answer.status();
        let body = answer.text().await.unwrap_or_default();
        assert!(status.is_success(), "ingest: {status} {body}");
    }

    /// `path` of the API once it answers 200 (the deadline only bounds a broken pipeline).
    pub async fn wait_for(&self, credential: &str, path: &str) -> Value {
        let started = Instant::now();
        loop {
            let response = self
                .stack
                .http()
                .get(format!("{}{path}", self.api_url))
                .bearer_auth(credential)
                .send()
                .await
                .expect("the API answers");
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                return body;
            }
            assert!(
                started.elapsed() < Duration::from_secs(180),
                "{path} still answers {status} {body} after 180 s"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// An event as a service sends it to the ingest edge.
pub fn event(tenant: &str, action: &str, extra: Value) -> Value {
    let mut event = json!({
        "event_id": ulid::Ulid::new().to_string(),
        "tenant_id": tenant,
        "occurred_at": sealtrail_clickhouse::unix_ms(time::OffsetDateTime::now_utc()),
        "action": action,
        "actor": {"id": "svc-billing", "type": "SERVICE"},
        "resource": {"type": "account", "id": "acct-1"},
        "outcome": {"status": "SUCCESS"},
    });
    if let (Some(event), Value::Object(extra)) = (event.as_object_mut(), extra) {
        event.extend(extra);
    }
    event
}

/// Opens the console's sign-in page, from a clean session.
pub async fn sign_in_page(browser: &Browser, console_url: &str) {
    browser.goto(console_url).await;
    browser.element("#api-key").await;
}

/// Signs in with `key` and waits for the console to say who is signed in.
pub async fn sign_in(browser: &Browser, console_url: &str, key: &str) -> String {
    sign_in_page(browser, console_url).await;
    browser.type_into("#api-key", key).await;
    browser.click("#sign-in").await;
    browser
        .element("[data-testid=whoami]")
        .await
        .text()
        .await
        .expect("who is signed in")
}

//! Signed webhooks: tenants register endpoints for event types; deliveries carry a Stripe-style
//! HMAC signature (docs/webhooks.md), are retried with backoff, and every attempt is logged in
//! `webhook_deliveries`.
//!
//! An endpoint's secret is never stored: it is HMAC(webhook key, tenant 0x00 webhook id), so the
//! API can sign with it and hand it out once, at registration.

use std::time::Duration;

use clickhouse::{Client, Row};
use ring::hmac;
use sealtrail_core::digest::to_hex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::webhook_target::{self, CheckedTarget};

/// The event types an endpoint can subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "legalhold.applied",
    "legalhold.released",
    "export.completed",
    "export.failed",
    "integrity.incident",
    "security.alert",
];

const SECRET_TAG: &[u8] = b"sealtrail/v1/webhook-secret\0";

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Derives every endpoint's secret; without it webhooks cannot be registered.
    pub key: Option<Vec<u8>>,
    pub attempts: u32,
    pub first_backoff: Duration,
    /// Loopback and private addresses are refused as targets unless allowed (local stacks, tests).
    pub allow_private_targets: bool,
    /// What an `https://` receiver's certificate must chain to: the system's roots, and a private
    /// CA when given.
    pub trust: sealtrail_http::TrustSettings,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            key: None,
            attempts: 6,
            first_backoff: Duration::from_secs(1),
            allow_private_targets: false,
            trust: sealtrail_http::TrustSettings::default(),
        }
    }
}

/// One change of an endpoint, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct WebhookChange {
    pub tenant_id: String,
    pub webhook_id: String,
    pub change: String,
    pub url: String,
    pub events: Vec<String>,
    pub actor: String,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    pub changed_at: OffsetDateTime,
}

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct DeliveryAttempt {
    tenant_id: String,
    webhook_id: String,
    delivery_id: String,
    event_type: String,
    attempt: u32,
    status: u16,
    error: String,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    at: OffsetDateTime,
}

/// Registered endpoints and their deliveries.
#[derive(Clone)]
pub struct Webhooks {
    client: Client,
    http: reqwest::Client,
    settings: WebhookSettings,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("attempts", &self.settings.attempts)
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    pub fn new(client: Client, settings: WebhookSettings) -> Self {
        Self {
            client,
            http: http_client(&settings.trust).build().unwrap_or_default(),
            settings,
        }
    }

    /// The endpoint's signing secret.
    pub fn secret(&self, tenant_id: &str, webhook_id: &str) -> Result<String, ApiError> {
        let key = self.settings.key.as_ref().ok_or_else(|| {
            ApiError::unavailable("webhooks need the API's key; start the API with SEALTRAIL_KEY_DIR")
        })?;
        let key = hmac::Key::new(hmac::HMAC_SHA256, key);
        let tag = hmac::sign(
            &key,
            &[SECRET_TAG, tenant_id.as_bytes(), &[0], webhook_id.as_bytes()].concat(),
        );
        Ok(format!("whsec_{}", to_hex(tag.as_ref())))
    }

    /// Refuses what is not an absolute http(s) URL, or (unless allowed) one that resolves inside.
    pub async fn check_target(&self, url: &str) -> Result<CheckedTarget, ApiError> {
        webhook_target::check(url, self.settings.allow_private_targets)
            .await
            .map_err(|refusal| ApiError::bad_request("url", refusal.to_string()))
    }

    pub async fn append(&self, change: &WebhookChange) -> Result<(), clickhouse::error::Error> {
        let mut insert = self.client.insert::<WebhookChange>("webhooks").await?;
        insert.write(change).await?;
        insert.end().await
    }

    /// The tenant's endpoints that are registered and not removed.
    pub async fn active(&self, tenant_id: &str) -> Result<Vec<WebhookChange>, clickhouse::error::Error> {
        let history = self
            .client
            .query("SELECT ?fields FROM webhooks WHERE tenant_id = {tenant:String} ORDER BY webhook_id, changed_at")
            .param("tenant", tenant_id)
            .fetch_all::<WebhookChange>()
            .await?;
        Ok(history
            .chunk_by(|a, b| a.webhook_id == b.webhook_id)
            .filter(|changes| changes.iter().all(|c| c.change != "removed"))
            .map(|changes| changes[0].clone())
            .collect())
    }

    /// Delivers `event_type` with `data` to every endpoint of the tenant that subscribed, in the
    /// background; returns at once.
    pub async fn notify(&self, tenant_id: &str, event_type: &str, data: Value) {
        let endpoints = match self.active(tenant_id).await {
            Ok(endpoints) => endpoints,
            Err(error) => {
                tracing::error!(%error, tenant = %tenant_id, event_type, "cannot read the webhooks to notify");
                return;
            }
        };
        for endpoint in endpoints
            .into_iter()
            .filter(|e| e.events.iter().any(|t| t == event_type))
        {
            let this = self.clone();
            let body = json!({
                "id": format!("evt_{}", ulid::Ulid::new().to_string().to_lowercase()),
                "type": event_type,
                "tenant_id": tenant_id,
                "created_at": OffsetDateTime::now_utc().unix_timestamp(),
                "data": data,
            });
            tokio::spawn(async move { this.deliver(&endpoint, &body).await });
        }
    }

    async fn deliver(&self, endpoint: &WebhookChange, body: &Value) {
        let Ok(secret) = self.secret(&endpoint.tenant_id, &endpoint.webhook_id) else {
            return;
        };
        let bytes = body.to_string().into_bytes();
        let delivery_id = body["id"].as_str().unwrap_or_default().to_owned();
        let event_type = body["type"].as_str().unwrap_or_default().to_owned();
        let mut backoff = self.settings.first_backoff;
        for attempt in 1..=self.settings.attempts {
            let timestamp = OffsetDateTime::now_utc().unix_timestamp();
            let signature = sealtrail_core::webhook::sign(secret.as_bytes(), timestamp, &bytes);
            // Checked again at every attempt, and the connection goes to the address checked: a
            // name that now resolves inside (DNS rebinding) is refused, not followed.
            let result = match webhook_target::check(&endpoint.url, self.settings.allow_private_targets).await {
                Ok(target) => self
                    .pinned_client(&target)
                    .post(target.url)
                    .header("content-type", "application/json")
                    .header("sealtrail-signature", signature)
                    .header("sealtrail-delivery", &delivery_id)
                    .body(bytes.clone())
                    .send()
                    .await
                    .map_err(|error| error.to_string()),
                Err(refusal) => Err(refusal.to_string()),
            };
            let (status, error) = match &result {
                Ok(response) if response.status().is_success() => (response.status().as_u16(), String::new()),
                Ok(response) => (response.status().as_u16(), format!("answered {}", response.status())),
                Err(error) => (0, error.clone()),
            };
            tracing::info!(webhook = %endpoint.webhook_id, delivery = %delivery_id, attempt, status, %error, "webhook delivery");
            let logged = DeliveryAttempt {
                tenant_id: endpoint.tenant_id.clone(),
                webhook_id: endpoint.webhook_id.clone(),
                delivery_id: delivery_id.clone(),
                event_type: event_type.clone(),
                attempt,
                status,
                error: error.clone(),
                at: OffsetDateTime::now_utc(),
            };
            if let Err(log_error) = self.log(&logged).await {
                tracing::error!(%log_error, "a webhook delivery attempt could not be logged");
            }
            if error.is_empty() {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(300));
        }
        tracing::error!(webhook = %endpoint.webhook_id, delivery = %delivery_id, "webhook delivery abandoned after every attempt");
    }

    /// The HTTP client for one delivery: connecting only to the checked addresses of its host.
    fn pinned_client(&self, target: &CheckedTarget) -> reqwest::Client {
        let Some((host, addresses)) = &target.pinned else {
            return self.http.clone();
        };
        http_client(&self.settings.trust)
            .resolve_to_addrs(host, addresses)
            .build()
            .unwrap_or_else(|_| self.http.clone())
    }

    async fn log(&self, attempt: &DeliveryAttempt) -> Result<(), clickhouse::error::Error> {
        let mut insert = self.client.insert::<DeliveryAttempt>("webhook_deliveries").await?;
        insert.write(attempt).await?;
        insert.end().await
    }
}

/// Deliveries verify the receiver's certificate, time out, and never follow a redirect (which
/// could point inside).
fn http_client(trust: &sealtrail_http::TrustSettings) -> reqwest::ClientBuilder {
    trust
        .http_client()
        .unwrap_or_else(|error| {
            // The API checks the CA at start; a file removed since leaves only the system's roots.
            tracing::error!(%error, "cannot read the CA webhook receivers are trusted with");
            sealtrail_http::TrustSettings::default()
                .http_client()
                .unwrap_or_else(|_| reqwest::Client::builder())
        })
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn targets_inside_are_refused_unless_allowed() {
        let client = Client::default();
        let strict = Webhooks::new(client.clone(), WebhookSettings::default());
        for url in [
            "https://127.0.0.1:9000/hook",
            "https://localhost/hook",
            "https://10.1.2.3/hook",
            "https://[::1]/hook",
            "https://[::ffff:127.0.0.1]/hook",
            "https://169.254.169.254/latest/meta-data/",
        ] {
            let refused = strict.check_target(url).await.expect_err(url).to_string();
            assert!(refused.contains("internal addresses"), "{url}: {refused}");
        }
        for url in ["http://93.184.215.14/hook", "ftp://example.com/hook", "not a url"] {
            assert!(strict.check_target(url).await.is_err(), "{url}");
        }
        let plain = strict
            .check_target("http://93.184.215.14/hook")
            .await
            .expect_err("plain");
        assert!(plain.to_string().contains("https:// only"), "{plain}");
        let local = Webhooks::new(
            client,
            WebhookSettings {
                allow_private_targets: true,
                ..WebhookSettings::default()
            },
        );
        assert!(local.check_target("http://127.0.0.1:9000/hook").await.is_ok());
    }

    #[test]
    fn secrets_are_per_endpoint_and_need_the_key() {
        let settings = WebhookSettings {
            key: Some(vec![1; 32]),
            ..WebhookSettings::default()
        };
        let webhooks = Webhooks::new(Client::default(), settings);
        let a = webhooks.secret("acme", "wh_1").expect("secret");
        assert!(a.starts_with("whsec_") && a.len() == 6 + 64);
        assert_ne!(a, webhooks.secret("acme", "wh_2").expect("secret"));
        assert_ne!(a, webhooks.secret("globex", "wh_1").expect("secret"));
        let keyless = Webhooks::new(Client::default(), WebhookSettings::default());
        assert!(keyless.secret("acme", "wh_1").is_err());
    }
}

//! Fetching tokens from the provider's token endpoint, one at a time, shared by every client of
//! the process.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sealtrail_http::TrustSettings;

use super::credentials::ClientCredentials;
use super::token::{IssuedToken, TokenResponseError, error_summary, parse_token_response};

/// The longest a token request may take; librdkafka's own OIDC support waits as long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read: a token response is a few kilobytes.
const MAX_RESPONSE: usize = 1 << 20;
/// How long a failed request is remembered: the clients of a process asking meanwhile get its
/// error (or the previous token, while it lives) instead of each waiting on the provider again.
const FAILURE_REMEMBERED: Duration = Duration::from_secs(5);

/// Why no token could be had; none repeats the client secret or a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    #[error(
        "the OIDC token endpoint {endpoint} refused the client credentials of `{client_id}` (HTTP {status}{summary}); check sasl.oauthbearer.client.id, sasl.oauthbearer.client.secret and sasl.oauthbearer.scope in the client properties file"
    )]
    Refused {
        endpoint: String,
        client_id: String,
        status: u16,
        summary: String,
    },
    #[error(
        "cannot get a token from the OIDC token endpoint {endpoint}: {reason}; check sasl.oauthbearer.token.endpoint.url and https.ca.location (or ssl.ca.location)"
    )]
    Unreachable { endpoint: String, reason: String },
    #[error("the OIDC token endpoint {endpoint} answered with no usable token: {source}")]
    Unusable {
        endpoint: String,
        source: TokenResponseError,
    },
}

/// Tokens for one set of client credentials, cached while fresh.
#[derive(Debug)]
pub struct TokenSource {
    credentials: ClientCredentials,
    state: Mutex<Cached>,
}

#[derive(Debug, Default)]
struct Cached {
    token: Option<IssuedToken>,
    failure: Option<(Instant, TokenError)>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
}

impl TokenSource {
    pub fn new(credentials: ClientCredentials) -> Self {
        Self {
            credentials,
            state: Mutex::default(),
        }
    }

    pub fn credentials(&self) -> &ClientCredentials {
        &self.credentials
    }

    /// A token with more than half its life ahead, fetched when the cached one is older. The lock
    /// is held while fetching, so clients starting together make one request. When the provider
    /// fails, the previous token is used for as long as it lives, and the failure is remembered
    /// for a few seconds so that the other clients do not each wait on the provider again.
    pub fn token(&self) -> Result<IssuedToken, TokenError> {
        let mut cached = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = now_ms();
        if let Some(token) = cached.token.as_ref().filter(|token| token.is_fresh_at(now)) {
            return Ok(token.clone());
        }
        let unexpired = cached.token.clone().filter(|token| token.expires_at_ms > now);
        if let Some((when, error)) = &cached.failure
            && when.elapsed() < FAILURE_REMEMBERED
        {
            return unexpired.ok_or_else(|| error.clone());
        }
        let token = match self.fetch() {
            Ok(token) => token,
            Err(error) => {
                tracing::warn!(%error, "no new OAUTHBEARER token");
                cached.failure = Some((Instant::now(), error.clone()));
                return unexpired.ok_or(error);
            }
        };
        tracing::debug!(
            endpoint = %self.credentials.token_endpoint,
            principal = %token.principal,
            lifetime_ms = token.expires_at_ms - token.issued_at_ms,
            "fetched an OAUTHBEARER token"
        );
        *cached = Cached {
            token: Some(token.clone()),
            failure: None,
        };
        Ok(token)
    }

    /// One client-credentials request. librdkafka asks for tokens from its poll loops, which may
    /// run on an async worker, so the request runs on a thread of its own with its own runtime.
    fn fetch(&self) -> Result<IssuedToken, TokenError> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|error| self.unreachable(&error))?;
                    runtime.block_on(self.request())
                })
                .join()
                .unwrap_or_else(|_| {
                    Err(TokenError::Unreachable {
                        endpoint: self.credentials.token_endpoint.clone(),
                        reason: "the token request panicked".to_owned(),
                    })
                })
        })
    }

    fn unreachable(&self, error: &(dyn std::error::Error + 'static)) -> TokenError {
        TokenError::Unreachable {
            endpoint: self.credentials.token_endpoint.clone(),
            reason: sealtrail_http::error_chain(error),
        }
    }

    async fn request(&self) -> Result<IssuedToken, TokenError> {
        let credentials = &self.credentials;
        let trust = TrustSettings {
            ca_file: credentials.ca_file.clone(),
        };
        let client = trust
            .http_client()
            .map_err(|error| self.unreachable(&error))?
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| self.unreachable(&error))?;
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if let Some(scope) = &credentials.scope {
            form.append_pair("scope", scope);
        }
        // The id and secret go into Basic auth as given, as librdkafka and Kafka's Java client
        // send them (RFC 6749 would form-encode them first; providers take both for plain ids
        // and secrets, and a secret holding `~` or `+` only as given).
        let mut response = client
            .post(&credentials.token_endpoint)
            .basic_auth(&credentials.client_id, Some(credentials.client_secret()))
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(form.finish())
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|error| self.unreachable(&error))? {
            if body.len() + chunk.len() > MAX_RESPONSE {
                return Err(TokenError::Unreachable {
                    endpoint: credentials.token_endpoint.clone(),
                    reason: format!("the answer is larger than {MAX_RESPONSE} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(TokenError::Refused {
                endpoint: credentials.token_endpoint.clone(),
                client_id: credentials.client_id.clone(),
                status: status.as_u16(),
                summary: error_summary(&body)
                    .map(|summary| format!(", {summary}"))
                    .unwrap_or_default(),
            });
        }
        parse_token_response(&body, &credentials.client_id, now_ms()).map_err(|source| TokenError::Unusable {
            endpoint: credentials.token_endpoint.clone(),
            source,
        })
    }
}

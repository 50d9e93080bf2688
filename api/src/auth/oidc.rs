//! OpenID Connect: bearer tokens signed by an identity provider's published keys. The keys come
//! from the provider's JWKS (found through its discovery document, or configured), are kept in
//! memory, and are fetched again every `REFRESH_EVERY` and whenever a token names a key id not
//! seen yet (at most once per `MISS_REFETCH_AFTER`), so the provider can rotate its keys with no
//! change here. Tokens must come from the configured issuer, for the configured audience, and be
//! within their `nbf`..`exp` window give or take `LEEWAY_SECS`. Only asymmetric algorithms are
//! accepted from a JWKS: a token cannot choose a shared-secret algorithm and be checked with a
//! public key as the secret.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sealtrail_http::TrustSettings;
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

const REFRESH_EVERY: Duration = Duration::from_secs(600);
/// At most one fetch of the keys in this time, whatever tokens arrive.
const REFETCH_AFTER: Duration = Duration::from_secs(30);
/// A discovery document or key set larger than this is refused.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// Clock skew tolerated between the provider and this server.
pub const LEEWAY_SECS: u64 = 60;
const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Which provider to trust, for which audience.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The `iss` tokens must carry; also where discovery looks
    /// (`{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// The `aud` tokens must carry (this API's client id or URL at the provider).
    pub audience: String,
    /// The JWKS URL, when the provider publishes no discovery document.
    pub jwks_url: Option<String>,
    /// What the provider's HTTPS certificate must chain to.
    pub trust: TrustSettings,
}

/// Why OIDC cannot be set up at start.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("cannot reach the identity provider at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the identity provider's {what} at {url} is not valid: {reason}")]
    Invalid {
        what: &'static str,
        url: String,
        reason: String,
    },
    #[error("OIDC issuer {issuer} must be an https:// URL (plain http only on loopback)")]
    NotHttps { issuer: String },
}

struct KeySet {
    fetched: Instant,
    keys: HashMap<String, (DecodingKey, Algorithm)>,
}

/// Verifies tokens against the provider's current keys.
pub struct OidcVerifier {
    settings: OidcSettings,
    jwks_url: String,
    http: reqwest::Client,
    /// The `iss` tokens must carry: the provider's own spelling, from its discovery document.
    issuer: String,
    keys: RwLock<KeySet>,
    browser: Option<BrowserSignIn>,
    /// When the keys were last asked for; held while a fetch runs, so there is one at a time.
    last_fetch: Mutex<Instant>,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("issuer", &self.settings.issuer)
            .field("jwks_url", &self.jwks_url)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
    /// Where a browser signs in (authorization code with PKCE); the console offers it when both
    /// are there.
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
}

/// Where a browser signs in at the provider, for the console.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BrowserSignIn {
    pub issuer: String,
    /// The client id the console signs in as: the API's audience.
    pub client_id: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub scope: &'static str,
}

/// Whether `url` is https, or plain http to this machine (a provider in a test or a local
/// stack); the keys decide every tenant and role, so they never travel in cleartext elsewhere.
fn is_safe_url(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    match parsed.scheme() {
        "https" => true,
        "http" => {
            matches!(
                parsed.host(),
                Some(url::Host::Domain("localhost") | url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
            ) || parsed.host() == Some(url::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
        }
        _ => false,
    }
}

impl OidcVerifier {
    /// Finds the provider's keys (discovery, then the JWKS) and fails at start when it cannot.
    pub async fn connect(settings: OidcSettings) -> Result<Self, OidcError> {
        if !is_safe_url(&settings.issuer) {
            return Err(OidcError::NotHttps {
                issuer: settings.issuer.clone(),
            });
        }
        let http = settings
            .trust
            .http_client()
            .and_then(|builder| {
                builder
                    .timeout(Duration::from_secs(10))
                    // A redirect could lead to a plain-http or internal address.
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| sealtrail_http::TlsError::Client(e.to_string()))
            })
            .map_err(|error| OidcError::Unreachable {
                url: settings.issuer.clone(),
                reason: error.to_string(),
            })?;
        let (issuer, jwks_url, endpoints) = match &settings.jwks_url {
            Some(url) => (settings.issuer.clone(), url.clone(), None),
            None => discover(&http, &settings.issuer).await?,
        };
        let browser = endpoints
            .filter(|(authorize, token)| is_safe_url(authorize) && is_safe_url(token))
            .map(|(authorization_endpoint, token_endpoint)| BrowserSignIn {
                issuer: issuer.clone(),
                client_id: settings.audience.clone(),
                authorization_endpoint,
                token_endpoint,
                scope: "openid",
            });
        if !is_safe_url(&jwks_url) {
            return Err(OidcError::NotHttps { issuer: jwks_url });
        }
        let keys = fetch_keys(&http, &jwks_url).await?;
        Ok(Self {
            settings,
            jwks_url,
            http,
            issuer,
            keys: RwLock::new(keys),
            browser,
            // The first unknown key may be fetched at once (the provider may rotate right away).
            last_fetch: Mutex::new(Instant::now().checked_sub(REFETCH_AFTER).unwrap_or_else(Instant::now)),
        })
    }

    /// How a browser signs in at the provider, when its discovery document says.
    pub fn browser_sign_in(&self) -> Option<&BrowserSignIn> {
        self.browser.as_ref()
    }

    /// Whether this verifier may take a token signed with `algorithm`.
    pub fn accepts(algorithm: Algorithm) -> bool {
        ASYMMETRIC.contains(&algorithm)
    }

    /// The token's claims, once its signature, issuer, audience and time window check out.
    pub async fn claims(&self, token: &str, header: &jsonwebtoken::Header) -> Result<serde_json::Value, String> {
        if !Self::accepts(header.alg) {
            return Err(format!(
                "{:?} tokens are not accepted from the identity provider",
                header.alg
            ));
        }
        let kid = header
            .kid
            .clone()
            .ok_or_else(|| "the token names no key (`kid`)".to_owned())?;
        let (key, algorithm) = self.key(&kid).await?;
        if algorithm != header.alg {
            return Err(format!(
                "the token says {:?} but key {kid} is for {algorithm:?}",
                header.alg
            ));
        }
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|error| super::jwt::describe(&error))
    }

    /// The key `kid`, fetching the key set again when it is old or lacks it: one fetch at a time
    /// (concurrent callers wait for it and use its keys), at most one per `REFETCH_AFTER` (a
    /// stream of made-up key ids, or a provider that is down, must not become a stream of
    /// requests), and a known key keeps working while the provider cannot be reached.
    async fn key(&self, kid: &str) -> Result<(DecodingKey, Algorithm), String> {
        let (cached, stale) = {
            let keys = self.keys.read().await;
            (keys.keys.get(kid).cloned(), keys.fetched.elapsed() >= REFRESH_EVERY)
        };
        if let Some(found) = &cached
            && !stale
        {
            return Ok(found.clone());
        }
        {
            let mut last_fetch = self.last_fetch.lock().await;
            if last_fetch.elapsed() >= REFETCH_AFTER {
                *last_fetch = Instant::now();
                match fetch_keys(&self.http, &self.jwks_url).await {
                    Ok(fresh) => *self.keys.write().await = fresh,
                    Err(error) => {
                        tracing::warn!(%error, "cannot refresh the identity provider's keys; using the ones held");
                    }
                }
            }
        }
        self.keys
            .read()
            .await
            .keys
            .get(kid)
            .cloned()
            .or(cached)
            .ok_or_else(|| format!("the identity provider has no key `{kid}`"))
    }
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    what: &'static str,
) -> Result<T, OidcError> {
    let response = http
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|error| OidcError::Unreachable {
            url: url.to_owned(),
            reason: error.to_string(),
        })?;
    let invalid = |reason: String| OidcError::Invalid {
        what,
        url: url.to_owned(),
        reason,
    };
    if response
        .content_length()
        .is_some_and(|length| length > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(invalid(format!("larger than {MAX_DOCUMENT_BYTES} bytes")));
    }
    let body = response.bytes().await.map_err(|error| invalid(error.to_string()))?;
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(invalid(format!("larger than {MAX_DOCUMENT_BYTES} bytes")));
    }
    serde_json::from_slice(&body).map_err(|error| invalid(error.to_string()))
}

/// The provider's own spelling of its issuer, its JWKS URL and its browser endpoints.
async fn discover(
    http: &reqwest::Client,
    issuer: &str,
) -> Result<(String, String, Option<(String, String)>), OidcError> {
    let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let discovery: Discovery = get_json(http, &url, "discovery document").await?;
    if discovery.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(OidcError::Invalid {
            what: "discovery document",
            url,
            reason: format!("it names the issuer {}, not {issuer}", discovery.issuer),
        });
    }
    let browser = discovery.authorization_endpoint.zip(discovery.token_endpoint);
    Ok((discovery.issuer, discovery.jwks_uri, browser))
}

async fn fetch_keys(http: &reqwest::Client, url: &str) -> Result<KeySet, OidcError> {
    let set: JwkSet = get_json(http, url, "JWKS").await?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = &jwk.common.key_id else {
            continue;
        };
        // A key without `alg` is taken for the usual algorithm of its type; keys of unknown or
        // symmetric algorithms are skipped.
        let algorithm = match jwk.common.key_algorithm {
            Some(algorithm) => Algorithm::try_from(algorithm).ok(),
            None => match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
                _ => None,
            },
        };
        let Some(algorithm) = algorithm.filter(|algorithm| ASYMMETRIC.contains(algorithm)) else {
            continue;
        };
        if let Ok(key) = DecodingKey::from_jwk(jwk) {
            keys.insert(kid.clone(), (key, algorithm));
        }
    }
    if keys.is_empty() {
        return Err(OidcError::Invalid {
            what: "JWKS",
            url: url.to_owned(),
            reason: "it holds no signing key with a `kid` and an asymmetric `alg`".to_owned(),
        });
    }
    Ok(KeySet {
        fetched: Instant::now(),
        keys,
    })
}

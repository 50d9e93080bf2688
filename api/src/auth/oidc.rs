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
const MISS_REFETCH_AFTER: Duration = Duration::from_secs(30);
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
    keys: RwLock<KeySet>,
    /// When the keys were last fetched because a token named an unknown one.
    last_miss_fetch: Mutex<Option<Instant>>,
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
}

fn is_loopback_http(url: &str) -> bool {
    ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|prefix| url.starts_with(prefix))
}

impl OidcVerifier {
    /// Finds the provider's keys (discovery, then the JWKS) and fails at start when it cannot.
    pub async fn connect(settings: OidcSettings) -> Result<Self, OidcError> {
        if !settings.issuer.starts_with("https://") && !is_loopback_http(&settings.issuer) {
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
                    .build()
                    .map_err(|e| sealtrail_http::TlsError::Client(e.to_string()))
            })
            .map_err(|error| OidcError::Unreachable {
                url: settings.issuer.clone(),
                reason: error.to_string(),
            })?;
        let jwks_url = match &settings.jwks_url {
            Some(url) => url.clone(),
            None => discover(&http, &settings.issuer).await?,
        };
        let keys = fetch_keys(&http, &jwks_url).await?;
        Ok(Self {
            settings,
            jwks_url,
            http,
            keys: RwLock::new(keys),
            last_miss_fetch: Mutex::new(None),
        })
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
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|error| super::jwt::describe(&error))
    }

    /// The key `kid`, fetching the key set again when it is old or lacks it.
    async fn key(&self, kid: &str) -> Result<(DecodingKey, Algorithm), String> {
        {
            let keys = self.keys.read().await;
            if keys.fetched.elapsed() < REFRESH_EVERY
                && let Some(found) = keys.keys.get(kid)
            {
                return Ok(found.clone());
            }
        }
        let stale = self.keys.read().await.fetched.elapsed() >= REFRESH_EVERY;
        if !stale {
            // An unknown key: the provider may have rotated. Ask again, but not on every token
            // (a stream of made-up key ids must not become a stream of requests to the provider).
            let mut last = self.last_miss_fetch.lock().await;
            if last.is_some_and(|at| at.elapsed() < MISS_REFETCH_AFTER) {
                return Err(format!("the identity provider has no key `{kid}`"));
            }
            *last = Some(Instant::now());
        }
        match fetch_keys(&self.http, &self.jwks_url).await {
            Ok(fresh) => *self.keys.write().await = fresh,
            Err(error) => tracing::warn!(%error, "cannot refresh the identity provider's keys; using the ones held"),
        }
        self.keys
            .read()
            .await
            .keys
            .get(kid)
            .cloned()
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
    response.json::<T>().await.map_err(|error| OidcError::Invalid {
        what,
        url: url.to_owned(),
        reason: error.to_string(),
    })
}

async fn discover(http: &reqwest::Client, issuer: &str) -> Result<String, OidcError> {
    let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let discovery: Discovery = get_json(http, &url, "discovery document").await?;
    if discovery.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(OidcError::Invalid {
            what: "discovery document",
            url,
            reason: format!("it names the issuer {}, not {issuer}", discovery.issuer),
        });
    }
    Ok(discovery.jwks_uri)
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

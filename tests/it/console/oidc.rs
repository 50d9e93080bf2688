//! Signing in to the console at an OpenID Connect provider: authorization code with PKCE. The
//! provider here checks what a real one does (client, redirect URI, the S256 challenge against
//! the verifier, a code used once, the nonce carried into the token) and signs an ID token the API
//! then verifies with its JWKS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Form, Query};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use sealtrail_api::auth::jwt::{ClaimNames, JwtVerifier};
use sealtrail_api::auth::oidc::{OidcSettings, OidcVerifier};
use serde_json::{Value, json};
use sha2::Digest as _;

use super::{Browser, sign_in_page};
use crate::api::Api;
use crate::api::oidc::ProviderKey;
use crate::harness::{serve_https_as_the_stack, shared};

const CLIENT_ID: &str = "sealtrail-console";

/// What an authorization request left for the token request: the challenge and where to return.
#[derive(Clone)]
struct Grant {
    challenge: String,
    redirect_uri: String,
    nonce: String,
}

#[derive(Clone)]
struct Provider {
    issuer: String,
    key: Arc<ProviderKey>,
    tenant: String,
    grants: Arc<Mutex<HashMap<String, Grant>>>,
}

impl Provider {
    /// Signs the user in at once (no login page) and sends the browser back with a code.
    fn authorize(&self, query: &HashMap<String, String>) -> Response {
        let param = |name: &str| query.get(name).cloned().unwrap_or_default();
        if param("client_id") != CLIENT_ID
            || param("response_type") != "code"
            || param("code_challenge_method") != "S256"
            || param("code_challenge").len() != 43
            || param("nonce").is_empty()
        {
            return (
                StatusCode::BAD_REQUEST,
                format!("a malformed authorization request: {query:?}"),
            )
                .into_response();
        }
        let code = ulid::Ulid::new().to_string();
        let grant = Grant {
            challenge: param("code_challenge"),
            redirect_uri: param("redirect_uri"),
            nonce: param("nonce"),
        };
        self.grants.lock().expect("lock").insert(code.clone(), grant.clone());
        let state = param("state");
        Redirect::to(&format!("{}?code={code}&state={state}", grant.redirect_uri)).into_response()
    }

    /// Exchanges a code, once, for an ID token when the verifier matches its challenge.
    fn token(&self, form: &HashMap<String, String>) -> Response {
        let param = |name: &str| form.get(name).cloned().unwrap_or_default();
        let grant = self.grants.lock().expect("lock").remove(&param("code"));
        let digest = sha2::Sha256::digest(param("code_verifier").as_bytes());
        let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
        let answer = match grant {
            Some(grant)
                if grant.challenge == computed
                    && grant.redirect_uri == param("redirect_uri")
                    && param("grant_type") == "authorization_code"
                    && param("client_id") == CLIENT_ID =>
            {
                let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs())
                    .expect("seconds");
                let id_token = self.key.sign(&json!({
                    "iss": self.issuer, "aud": CLIENT_ID, "sub": "carol@example.com",
                    "exp": now + 300, "nbf": now - 5, "iat": now,
                    "tenant": self.tenant, "roles": ["auditor"], "nonce": grant.nonce,
                }));
                (
                    StatusCode::OK,
                    axum::Json(json!({"id_token": id_token, "token_type": "Bearer", "expires_in": 300})),
                )
            }
            _ => (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"}))),
        };
        let mut response = answer.into_response();
        // The console calls the token endpoint from its own origin.
        response
            .headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        response
    }
}

async fn provider(key: Arc<ProviderKey>, tenant: String) -> (String, Arc<Mutex<HashMap<String, Grant>>>) {
    let grants = Arc::new(Mutex::new(HashMap::new()));
    let kept = grants.clone();
    let url = serve_https_as_the_stack(move |issuer| {
        let provider = Provider {
            issuer: issuer.to_owned(),
            key: key.clone(),
            tenant,
            grants,
        };
        let discovery = json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/keys"),
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
        });
        let keys = JwkSet { keys: vec![key.jwk()] };
        let (authorizer, exchanger) = (provider.clone(), provider);
        axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || async move { axum::Json(discovery) }),
            )
            .route("/keys", axum::routing::get(move || async move { axum::Json(keys) }))
            .route(
                "/authorize",
                axum::routing::get(move |Query(query): Query<HashMap<String, String>>| async move {
                    authorizer.authorize(&query)
                }),
            )
            .route(
                "/token",
                axum::routing::post(
                    move |Form(form): Form<HashMap<String, String>>| async move { exchanger.token(&form) },
                ),
            )
    })
    .await;
    (url, kept)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signs_in_at_the_oidc_provider_with_pkce_and_the_console_shows_who_they_are() {
    let key = Arc::new(ProviderKey::new("console-k1"));
    let tenant = crate::harness::unique("console-oidc");
    let (issuer, grants) = provider(key, tenant.clone()).await;
    let oidc = OidcVerifier::connect(OidcSettings {
        issuer: issuer.clone(),
        audience: CLIENT_ID.to_owned(),
        jwks_url: None,
        trust: shared().endpoints.trust(),
    })
    .await
    .expect("the provider is found");
    let jwt = JwtVerifier::new(None, None)
        .expect("no static keys")
        .with_oidc(oidc)
        .with_claims(ClaimNames::default());
    let api = Api::with_jwt(jwt).await;

    let config: Value = api
        .http
        .get(format!("{}/v1/console/config", api.url))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    assert_eq!(config["oidc"]["client_id"], json!(CLIENT_ID));
    assert_eq!(config["oidc"]["token_endpoint"], json!(format!("{issuer}/token")));
    let page = api
        .http
        .get(format!("{}/console/", api.url))
        .send()
        .await
        .expect("the console");
    let policy = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    assert!(policy.contains(&format!("connect-src 'self' {issuer};")), "{policy}");

    let browser = Browser::start().await;
    sign_in_page(&browser, &format!("{}/console/", api.url)).await;
    browser.click("#sign-in-oidc").await;
    let whoami = browser
        .element("[data-testid=whoami]")
        .await
        .text()
        .await
        .expect("who is signed in");
    assert!(
        whoami.contains(&tenant) && whoami.contains("auditor"),
        "signed in through the provider: {whoami}"
    );
    assert!(grants.lock().expect("lock").is_empty(), "the code was exchanged, once");
    let url = browser.client.current_url().await.expect("the URL");
    assert!(
        url.query().is_none(),
        "the code does not stay in the address bar: {url}"
    );
    let stored = browser
        .run("return [document.cookie, window.localStorage.length, Object.keys(window.sessionStorage).length > 0]")
        .await;
    assert_eq!(
        stored,
        json!(["", 0, true]),
        "the token is kept in session storage only"
    );
    browser.close().await;
}

//! Bearer tokens from an OpenID Connect provider: a provider served here over HTTPS (discovery
//! and a JWKS that can change), the verifier finding its keys, following a key rotation, and
//! refusing tokens of another issuer or audience, outside their time window, naming an unknown
//! key, or choosing a shared-secret algorithm.

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use sealtrail_api::auth::Role;
use sealtrail_api::auth::jwt::{ClaimNames, JwtVerifier};
use sealtrail_api::auth::oidc::{OidcSettings, OidcVerifier};
use serde_json::{Value, json};

use crate::harness::{serve_https_as_the_stack, shared, unique};

/// A signing key of the provider: ES256, made for the test.
pub(crate) struct ProviderKey {
    kid: String,
    encoding: EncodingKey,
}

impl ProviderKey {
    pub(crate) fn new(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate().expect("an ECDSA P-256 key");
        Self {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).expect("a PEM key"),
        }
    }

    pub(crate) fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, Algorithm::ES256).expect("a JWK");
        jwk.common.key_id = Some(self.kid.clone());
        jwk
    }

    pub(crate) fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        encode(&header, claims, &self.encoding).expect("a token")
    }
}

/// An identity provider over HTTPS (the stack's certificate), publishing `keys`.
async fn provider(keys: Arc<RwLock<JwkSet>>) -> String {
    serve_https_as_the_stack(|issuer| {
        let discovery = json!({ "issuer": issuer, "jwks_uri": format!("{issuer}/keys") });
        axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || {
                    let discovery = discovery.clone();
                    async move { axum::Json(discovery) }
                }),
            )
            .route(
                "/keys",
                axum::routing::get(move || {
                    let set = keys.read().expect("lock").clone();
                    async move { axum::Json(set) }
                }),
            )
    })
    .await
}

fn now() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()).expect("seconds")
}

fn claims(issuer: &str, audience: &str, tenant: &str) -> Value {
    json!({
        "iss": issuer, "aud": audience, "sub": "alice@example.com",
        "exp": now() + 300, "nbf": now() - 5, "iat": now(),
        "tenant": tenant, "roles": ["auditor"],
    })
}

async fn verifier(issuer: &str, audience: &str, names: ClaimNames) -> JwtVerifier {
    let oidc = OidcVerifier::connect(OidcSettings {
        issuer: issuer.to_owned(),
        audience: audience.to_owned(),
        jwks_url: None,
        trust: shared().endpoints.trust(),
    })
    .await
    .expect("the provider is found");
    JwtVerifier::new(None, None)
        .expect("no static keys")
        .with_oidc(oidc)
        .with_claims(names)
}

#[tokio::test]
async fn tokens_of_the_configured_issuer_and_audience_are_accepted_within_their_window() {
    let first = ProviderKey::new("k1");
    let keys = Arc::new(RwLock::new(JwkSet {
        keys: vec![first.jwk()],
    }));
    let issuer = provider(keys.clone()).await;
    let audience = "sealtrail-api";
    let tenant = unique("oidc");
    let jwt = verifier(&issuer, audience, ClaimNames::default()).await;

    let caller = jwt
        .verify(&first.sign(&claims(&issuer, audience, &tenant)))
        .await
        .expect("accepted");
    assert_eq!(caller.tenant, tenant);
    assert_eq!(caller.roles, vec![Role::Auditor]);

    let refused = |changes: Value| {
        let mut token_claims = claims(&issuer, audience, &tenant);
        for (key, value) in changes.as_object().expect("object") {
            token_claims[key] = value.clone();
        }
        first.sign(&token_claims)
    };
    for (changes, reason) in [
        (json!({"iss": "https://evil.example.com"}), "another issuer"),
        (json!({"aud": "another-api"}), "another audience"),
        (json!({"exp": now() - 120}), "expired"),
        (json!({"nbf": now() + 600}), "not valid yet"),
        (json!({"roles": ["janitor"]}), "no sealtrail role"),
        (json!({"tenant": "../other"}), "not a valid tenant id"),
    ] {
        let error = jwt.verify(&refused(changes.clone())).await.expect_err("refused");
        assert!(error.contains(reason), "{changes}: {error}");
    }
    // Within the leeway for clocks that disagree a little.
    jwt.verify(&refused(json!({"exp": now() - 20})))
        .await
        .expect("a token expired 20 s ago is within the leeway");

    // A token signed with a shared secret and naming a key id is not checked against the JWKS.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".to_owned());
    let forged = encode(
        &header,
        &claims(&issuer, audience, &tenant),
        &EncodingKey::from_secret(b"guess"),
    )
    .expect("token");
    let error = jwt.verify(&forged).await.expect_err("refused");
    assert!(error.contains("HS256"), "{error}");

    // Nor an unsigned one (`alg: none`), nor one whose key id is a path or a stranger's.
    let encode_part = |value: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    let claims_part = encode_part(&claims(&issuer, audience, &tenant));
    for header in [
        json!({"alg": "none", "kid": "k1"}),
        json!({"alg": "ES256", "kid": "../../k1"}),
        json!({"alg": "ES256", "kid": "k1", "jku": "https://evil.example.com/keys"}),
    ] {
        let unsigned = format!("{}.{claims_part}.", encode_part(&header));
        let error = jwt.verify(&unsigned).await.expect_err("refused");
        assert!(!error.is_empty(), "{header}");
    }
}

#[tokio::test]
async fn a_rotated_key_is_fetched_when_first_seen_and_unknown_keys_are_refused() {
    let first = ProviderKey::new("k1");
    let keys = Arc::new(RwLock::new(JwkSet {
        keys: vec![first.jwk()],
    }));
    let issuer = provider(keys.clone()).await;
    let jwt = verifier(&issuer, "api", ClaimNames::default()).await;
    let tenant = unique("rotation");
    jwt.verify(&first.sign(&claims(&issuer, "api", &tenant)))
        .await
        .expect("the first key");

    // The provider publishes a new key and signs with it: the verifier fetches the keys again.
    let second = ProviderKey::new("k2");
    keys.write().expect("lock").keys.push(second.jwk());
    let caller = jwt
        .verify(&second.sign(&claims(&issuer, "api", &tenant)))
        .await
        .expect("the rotated key is found");
    assert_eq!(caller.tenant, tenant);

    let stranger = ProviderKey::new("k9");
    let error = jwt
        .verify(&stranger.sign(&claims(&issuer, "api", &tenant)))
        .await
        .expect_err("an unpublished key is refused");
    assert!(error.contains("no key `k9`"), "{error}");
}

#[tokio::test]
async fn tenant_and_roles_come_from_configured_nested_claims() {
    let key = ProviderKey::new("k1");
    let issuer = provider(Arc::new(RwLock::new(JwkSet { keys: vec![key.jwk()] }))).await;
    let names = ClaimNames {
        tenant: "org.id".to_owned(),
        roles: "realm_access.roles".to_owned(),
        ..ClaimNames::default()
    };
    let jwt = verifier(&issuer, "api", names).await;
    let tenant = unique("nested");
    let token = key.sign(&json!({
        "iss": issuer, "aud": "api", "sub": "svc", "exp": now() + 60,
        "org": {"id": tenant}, "realm_access": {"roles": ["offline_access", "compliance"]},
    }));
    let caller = jwt.verify(&token).await.expect("accepted");
    assert_eq!(
        (caller.tenant.as_str(), caller.roles.as_slice()),
        (tenant.as_str(), &[Role::Compliance][..])
    );
}

#[tokio::test]
async fn a_provider_that_names_another_issuer_or_is_not_https_is_refused_at_start() {
    let issuer = provider(Arc::new(RwLock::new(JwkSet {
        keys: vec![ProviderKey::new("k1").jwk()],
    })))
    .await;
    let claimed = issuer.replace("127.0.0.1", "localhost");
    let error = OidcVerifier::connect(OidcSettings {
        issuer: claimed,
        audience: "api".to_owned(),
        jwks_url: None,
        trust: shared().endpoints.trust(),
    })
    .await
    .expect_err("refused");
    assert!(error.to_string().contains("names the issuer"), "{error}");
    let error = OidcVerifier::connect(OidcSettings {
        issuer: "http://idp.example.com".to_owned(),
        audience: "api".to_owned(),
        jwks_url: None,
        trust: shared().endpoints.trust(),
    })
    .await
    .expect_err("refused");
    assert!(error.to_string().contains("https://"), "{error}");
}

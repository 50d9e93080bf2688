//! SASL/OAUTHBEARER with OIDC client credentials, against the secured broker and a token endpoint
//! served here over HTTPS. Tansu 0.6 validates PLAIN and SCRAM only, so no broker here accepts a
//! token: what is checked is sealtrail's half, end to end. A client configured in Confluent's
//! names fetches a token with the client-credentials grant (RFC 6749 section 4.4, the id and
//! secret in Basic auth, the scope in the form), then authenticates to the broker with it, whose
//! refusal is named at start; a provider that refuses the credentials, or whose certificate is
//! not trusted, is named too, and no message repeats the secret or the token.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use sealtrail_kafka::{ClientProperties, KafkaContext, KafkaSettings, wait_for_broker};
use sealtrail_local::{LocalCa, write_private};

use crate::harness::{TestStack, serve_https_as_the_stack, shared, unique};

const CLIENT_SECRET: &str = "client-secret-7f3a9c";

/// What the token endpoint received: the Authorization header and the form, per request.
type Requests = Arc<Mutex<Vec<(String, String)>>>;

/// A token endpoint over HTTPS (the stack's certificate) answering every request with `status`
/// and `body`.
async fn token_endpoint(status: StatusCode, body: String) -> (String, Requests) {
    let requests: Requests = Arc::default();
    let seen = requests.clone();
    let app = axum::Router::new().route(
        "/oauth2/token",
        axum::routing::post(move |headers: HeaderMap, form: String| {
            let authorization = headers
                .get("authorization")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            seen.lock().expect("lock").push((authorization, form));
            let body = body.clone();
            async move { (status, [("content-type", "application/json")], body) }
        }),
    );
    let url = format!("{}/oauth2/token", serve_https_as_the_stack(|_| app).await);
    (url, requests)
}

/// A token in the shape providers issue: a JWT naming its subject, valid for five minutes.
fn issued_token() -> String {
    let encode = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
    format!(
        "{}.{}.{}",
        encode(r#"{"alg":"RS256","kid":"k1"}"#),
        encode(r#"{"sub":"svc-sealtrail-seal","aud":"kafka"}"#),
        encode("signature-bytes")
    )
}

/// The operator's client properties with SCRAM swapped for OAUTHBEARER at `endpoint`.
fn oauth_properties(stack: &TestStack, dir: &Path, endpoint: &str, extra: &[(&str, &str)]) -> PathBuf {
    let original = std::fs::read_to_string(stack.endpoints.get("KAFKA_CONFIG_FILE").expect("KAFKA_CONFIG_FILE"))
        .expect("the operator's properties");
    let mut lines: Vec<String> = original
        .lines()
        .filter(|line| !line.starts_with("sasl."))
        .map(str::to_owned)
        .collect();
    lines.extend(
        [
            "sasl.mechanism=OAUTHBEARER",
            "sasl.oauthbearer.method=oidc",
            "sasl.oauthbearer.client.id=sealtrail-seal",
            "sasl.oauthbearer.scope=kafka.produce kafka.consume",
        ]
        .map(str::to_owned),
    );
    lines.push(format!("sasl.oauthbearer.client.secret={CLIENT_SECRET}"));
    lines.push(format!("sasl.oauthbearer.token.endpoint.url={endpoint}"));
    lines.extend(extra.iter().map(|(key, value)| format!("{key}={value}")));
    let text = lines.join("\n") + "\n";
    let path = dir.join(format!("{}.properties", unique("oauth")));
    write_private(&path, text.as_bytes()).expect("written");
    path
}

fn settings(stack: &TestStack, file: &Path) -> KafkaSettings {
    let mut settings = KafkaSettings::new(&stack.endpoints.kafka_bootstrap);
    settings.extra = ClientProperties::read(file).expect("valid properties").kafka;
    settings
}

async fn refusal(settings: &KafkaSettings) -> String {
    tokio::time::timeout(
        Duration::from_secs(60),
        wait_for_broker(settings, Duration::from_secs(15)),
    )
    .await
    .expect("an answer, not a hang")
    .expect_err("refused")
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_fetches_a_client_credentials_token_and_authenticates_with_it() {
    let stack = shared();
    let dir = tempfile::tempdir().expect("dir");
    let token = issued_token();
    let (endpoint, requests) = token_endpoint(
        StatusCode::OK,
        format!(r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":300}}"#),
    )
    .await;
    let settings = settings(stack, &oauth_properties(stack, dir.path(), &endpoint, &[]));

    let refused = refusal(&settings).await;

    let requests = requests.lock().expect("lock").clone();
    assert!(!requests.is_empty(), "the token endpoint was never asked");
    let expected_basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("sealtrail-seal:{CLIENT_SECRET}"))
    );
    for (authorization, form) in &requests {
        assert_eq!(authorization, &expected_basic);
        assert_eq!(form, "grant_type=client_credentials&scope=kafka.produce+kafka.consume");
    }
    // The client went on to the broker and sent the token in its SASL authenticate request
    // (librdkafka's state AUTH_REQ), which Tansu, validating PLAIN and SCRAM only, refuses; the
    // message points at the token settings rather than a username and password.
    assert!(
        refused.contains("refused the connection")
            && refused.contains("in state AUTH_REQ")
            && refused.contains("sasl.oauthbearer.* settings")
            && !refused.contains("sasl.password"),
        "{refused}"
    );
    assert!(
        !refused.contains(CLIENT_SECRET) && !refused.contains(&token),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_refusing_the_client_credentials_is_named_without_the_secret() {
    let stack = shared();
    let dir = tempfile::tempdir().expect("dir");
    let (endpoint, requests) = token_endpoint(
        StatusCode::UNAUTHORIZED,
        r#"{"error":"invalid_client","error_description":"client authentication failed"}"#.to_owned(),
    )
    .await;
    let settings = settings(stack, &oauth_properties(stack, dir.path(), &endpoint, &[]));

    let refused = refusal(&settings).await;

    assert_eq!(
        requests.lock().expect("lock").len(),
        1,
        "one request, then the start fails"
    );
    assert!(
        refused.contains(&endpoint)
            && refused.contains("refused the client credentials of `sealtrail-seal`")
            && refused.contains("HTTP 401, invalid_client: client authentication failed")
            && refused.contains("sasl.oauthbearer.client.secret"),
        "{refused}"
    );
    assert!(!refused.contains(CLIENT_SECRET), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_with_an_untrusted_certificate_is_refused() {
    let stack = shared();
    let dir = tempfile::tempdir().expect("dir");
    let (endpoint, requests) = token_endpoint(StatusCode::OK, String::new()).await;
    let other = LocalCa::ensure(&dir.path().join("other-ca")).expect("another CA");
    let untrusted = other.ca_file.display().to_string();
    let file = oauth_properties(stack, dir.path(), &endpoint, &[("https.ca.location", &untrusted)]);

    let refused = refusal(&settings(stack, &file)).await;

    assert!(requests.lock().expect("lock").is_empty(), "no request left the client");
    assert!(
        refused.contains("cannot get a token from the OIDC token endpoint") && refused.contains("certificate"),
        "{refused}"
    );
    assert!(!refused.contains(CLIENT_SECRET), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polled_client_asks_for_a_new_token_before_the_old_one_expires() {
    let stack = shared();
    let dir = tempfile::tempdir().expect("dir");
    // A token living two seconds: librdkafka asks for the next one at 80% of its life, from the
    // client's poll loop, through the context every sealtrail client is made with.
    let (endpoint, requests) = token_endpoint(
        StatusCode::OK,
        format!(r#"{{"access_token":"{}","expires_in":2}}"#, issued_token()),
    )
    .await;
    let settings = settings(stack, &oauth_properties(stack, dir.path(), &endpoint, &[]));
    let consumer: BaseConsumer<KafkaContext> = settings
        .create(&settings.consumer(&unique("oauth-refresh")))
        .expect("a consumer with its first token");
    assert_eq!(
        requests.lock().expect("lock").len(),
        1,
        "the first token, fetched at creation"
    );
    consumer.subscribe(&[&unique("oauth-topic")]).expect("subscribed");
    let refreshed = tokio::task::spawn_blocking(move || {
        // Not a timing assertion: the loop ends as soon as a refresh is seen, and a minute is
        // many token lifetimes.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            drop(consumer.poll(Duration::from_millis(200)));
            if requests.lock().expect("lock").len() >= 2 {
                return true;
            }
        }
        false
    })
    .await
    .expect("polling");
    assert!(refreshed, "no token refresh was asked for");
}

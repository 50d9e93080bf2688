//! Every hop of the secured local stack (`sealtrail up` without `--insecure`) refuses what it
//! must, each saying why, and lets the right credential in: Kafka (TLS and SCRAM, through the
//! stack's TLS front: Tansu 0.6 serves no TLS itself), ClickHouse (HTTPS and per-component users),
//! the schema registry (HTTPS and basic auth with read and write rights) and the API (HTTPS with
//! HSTS). And no secret reaches a log, endpoints.env or a command line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use sealtrail_clickhouse::ClickHouseSettings;
use sealtrail_clickhouse::access::{ADMIN_USER, Component};
use sealtrail_http::TrustSettings;
use sealtrail_kafka::{ClientProperties, KafkaSettings, PartitionReader, TopicSpec, ensure_topics, wait_for_broker};
use sealtrail_local::{LocalCa, write_private};

use crate::harness::{TestStack, shared, unique};

/// A CA the stack's certificates do not come from.
fn other_ca(dir: &Path) -> LocalCa {
    LocalCa::ensure(&dir.join("other-ca")).expect("another CA")
}

/// The operator's client properties with `key` set to `value`, in a private file of `dir`.
fn altered_properties(stack: &TestStack, dir: &Path, key: &str, value: &str) -> PathBuf {
    let original = std::fs::read_to_string(stack.endpoints.get("KAFKA_CONFIG_FILE").expect("KAFKA_CONFIG_FILE"))
        .expect("the operator's properties");
    let text: String = original
        .lines()
        .map(|line| {
            if line.starts_with(&format!("{key}=")) {
                format!("{key}={value}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    let path = dir.join(format!("{}.properties", unique("client")));
    write_private(&path, text.as_bytes()).expect("written");
    path
}

fn kafka_with(stack: &TestStack, properties: Option<&Path>) -> KafkaSettings {
    let mut settings = KafkaSettings::new(&stack.endpoints.kafka_bootstrap);
    if let Some(file) = properties {
        settings.extra = ClientProperties::read(file).expect("valid properties").kafka;
    }
    settings
}

async fn kafka_refusal(settings: &KafkaSettings) -> String {
    wait_for_broker(settings, Duration::from_secs(15))
        .await
        .expect_err("refused")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_takes_the_right_scram_credential_over_tls_and_refuses_the_rest_with_a_reason() {
    let stack = shared();
    let dir = tempfile::tempdir().expect("dir");
    let good = stack.kafka();
    let topic = unique("secured");
    ensure_topics(&good, &[TopicSpec::new(&topic, 1)])
        .await
        .expect("topics over TLS");
    let producer: FutureProducer = good.producer().create().expect("producer");
    let delivered = producer
        .send(
            FutureRecord::to(&topic).key("acme").payload("over TLS"),
            Duration::from_secs(30),
        )
        .await
        .expect("acknowledged over TLS");
    let reader = PartitionReader::new(&good, Duration::from_secs(30)).expect("reader");
    let read = reader
        .read(&topic, delivered.partition, delivered.offset, delivered.offset + 1)
        .expect("read back over TLS");
    assert_eq!(read[0].value.as_deref(), Some(b"over TLS".as_slice()));

    // librdkafka does not say why a plaintext client is refused (the TLS front hangs up on its
    // first bytes), so the message is the generic one, naming the address.
    let plaintext = kafka_refusal(&kafka_with(stack, None)).await;
    assert!(plaintext.contains(&stack.endpoints.kafka_bootstrap), "{plaintext}");

    let wrong = altered_properties(stack, dir.path(), "sasl.password", "guess-4f1d");
    let wrong_password = kafka_refusal(&kafka_with(stack, Some(&wrong))).await;
    assert!(
        wrong_password.contains("refused") && wrong_password.contains("SASL"),
        "{wrong_password}"
    );
    assert!(!wrong_password.contains("guess-4f1d"), "not echoed: {wrong_password}");

    let stranger = altered_properties(stack, dir.path(), "sasl.username", "sealtrail-nobody");
    let unknown_user = kafka_refusal(&kafka_with(stack, Some(&stranger))).await;
    assert!(unknown_user.contains("SASL"), "{unknown_user}");

    let untrusted_ca = other_ca(dir.path()).ca_file.display().to_string();
    let untrusted = altered_properties(stack, dir.path(), "ssl.ca.location", &untrusted_ca);
    let untrusted = kafka_refusal(&kafka_with(stack, Some(&untrusted))).await;
    assert!(
        untrusted.contains("refused") && untrusted.to_lowercase().contains("ssl"),
        "{untrusted}"
    );
    let debug = format!("{good:?}");
    let password = ClientProperties::read(Path::new(stack.endpoints.get("KAFKA_CONFIG_FILE").expect("file")))
        .expect("properties")
        .kafka
        .into_iter()
        .find(|(key, _)| key == "sasl.password")
        .expect("a password")
        .1;
    assert!(!debug.contains(&password), "settings never show the password: {debug}");
}

fn password_of(stack: &TestStack, user: &str) -> String {
    std::fs::read_to_string(
        stack
            .data_dir
            .join("clickhouse-access")
            .join(format!("{user}.password")),
    )
    .expect("a password file")
    .trim()
    .to_owned()
}

async fn clickhouse_error(settings: &ClickHouseSettings) -> String {
    let error = settings
        .server_client()
        .query("SELECT count() FROM sealtrail.events")
        .fetch_one::<u64>()
        .await
        .expect_err("refused");
    sealtrail_http::error_chain(&error)
}

#[tokio::test]
async fn clickhouse_takes_each_components_own_login_over_https_and_refuses_the_rest() {
    let stack = shared();
    let dir = tempfile::tempdir().expect("dir");
    let admin = stack.clickhouse();
    assert!(admin.url.starts_with("https://"), "{}", admin.url);
    assert_eq!(admin.user.as_deref(), Some(ADMIN_USER));
    admin
        .server_client()
        .query("SELECT count() FROM sealtrail.events")
        .fetch_one::<u64>()
        .await
        .expect("the administrator reads over HTTPS");

    let mut plaintext = admin.clone();
    plaintext.url = admin.url.replacen("https://", "http://", 1);
    let refused = clickhouse_error(&plaintext).await;
    assert!(!refused.is_empty(), "plain HTTP to the HTTPS port is refused");

    let mut untrusted = admin.clone();
    untrusted.trust = TrustSettings::with_ca(other_ca(dir.path()).ca_file);
    let refused = clickhouse_error(&untrusted).await.to_lowercase();
    assert!(
        refused.contains("certificate") || refused.contains("unknownissuer"),
        "{refused}"
    );

    let mut wrong = admin.clone();
    wrong.password = Some("guess-91ac".to_owned());
    let refused = clickhouse_error(&wrong).await;
    assert!(refused.contains("AUTHENTICATION_FAILED"), "{refused}");
    assert!(!refused.contains("guess-91ac"), "not echoed: {refused}");

    // The sink's password does not open the API's user, and the sink's own user may not read
    // the API's tables.
    let mut borrowed = admin.clone();
    borrowed.user = Some(Component::Api.user().to_owned());
    borrowed.password = Some(password_of(stack, Component::Sink.user()));
    assert!(clickhouse_error(&borrowed).await.contains("AUTHENTICATION_FAILED"));
    let mut sink = admin.clone();
    sink.user = Some(Component::Sink.user().to_owned());
    sink.password = Some(password_of(stack, Component::Sink.user()));
    let denied = sink
        .server_client()
        .query("SELECT count() FROM sealtrail.api_keys")
        .fetch_one::<u64>()
        .await
        .expect_err("the sink may not read API keys")
        .to_string();
    assert!(
        denied.contains("ACCESS_DENIED") || denied.contains("Not enough privileges"),
        "{denied}"
    );
}

/// The registry's properties file of a stack identity (`seal`, `sink`...).
fn registry_login(stack: &TestStack, identity: &str) -> (String, String) {
    let password = std::fs::read_to_string(
        stack
            .data_dir
            .join("secrets")
            .join(format!("{identity}.registry.password")),
    )
    .expect("a registry password");
    (identity.to_owned(), password.trim().to_owned())
}

#[tokio::test]
async fn the_registry_serves_https_to_its_users_and_lets_only_writers_write() {
    let stack = shared();
    let dir = tempfile::tempdir().expect("dir");
    let url = stack.registry_url().to_owned();
    assert!(url.starts_with("https://"), "{url}");
    let http = stack.http();
    let schema =
        serde_json::json!({"schema": r#"{"type":"record","name":"Probe","fields":[{"name":"a","type":"string"}]}"#});
    let subject = format!("{}-value", unique("secured"));

    let anonymous = http.get(format!("{url}/subjects")).send().await.expect("answers");
    assert_eq!(anonymous.status().as_u16(), 401);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    let wrong = http
        .get(format!("{url}/subjects"))
        .basic_auth("operator", Some("guess"))
        .send()
        .await
        .expect("answers");
    assert_eq!(wrong.status().as_u16(), 401);

    let (reader, reader_password) = registry_login(stack, "sink");
    let read = http
        .get(format!("{url}/subjects"))
        .basic_auth(&reader, Some(&reader_password))
        .send()
        .await
        .expect("answers");
    assert_eq!(read.status().as_u16(), 200, "a reader reads");
    let refused = http
        .post(format!("{url}/subjects/{subject}/versions"))
        .basic_auth(&reader, Some(&reader_password))
        .json(&schema)
        .send()
        .await
        .expect("answers");
    assert_eq!(refused.status().as_u16(), 403, "a reader may not register");
    let body: serde_json::Value = refused.json().await.expect("JSON");
    assert_eq!(body["error_code"], 40301);

    let registered = stack
        .registry_request(reqwest::Method::POST, &format!("/subjects/{subject}/versions"))
        .json(&schema)
        .send()
        .await
        .expect("answers");
    assert_eq!(registered.status().as_u16(), 200, "the operator registers");

    let plain = reqwest::Client::new()
        .get(url.replacen("https://", "http://", 1) + "/subjects")
        .send()
        .await;
    assert!(
        plain.is_err() || !plain.expect("response").status().is_success(),
        "plain HTTP is refused"
    );
    assert_untrusted_certificate_refused(dir.path(), &format!("{url}/subjects")).await;
}

#[tokio::test]
async fn the_api_serves_https_with_hsts_and_refuses_plaintext_and_untrusted_certificates() {
    let stack = shared();
    let dir = tempfile::tempdir().expect("dir");
    let api = stack.endpoints.api_url.clone().expect("up writes API_URL");
    assert!(api.starts_with("https://"), "{api}");
    let response = stack
        .http()
        .get(format!("{api}/healthz"))
        .send()
        .await
        .expect("answers over TLS");
    assert!(response.status().is_success());
    let hsts = response
        .headers()
        .get("strict-transport-security")
        .expect("HSTS over TLS")
        .to_str()
        .expect("ASCII");
    assert!(hsts.starts_with("max-age="), "{hsts}");

    let plain = reqwest::Client::new()
        .get(api.replacen("https://", "http://", 1) + "/healthz")
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP gets no answer: {plain:?}");
    assert_untrusted_certificate_refused(dir.path(), &format!("{api}/healthz")).await;
}

/// A client trusting another CA than the stack's gets no answer from `url`, and is told why.
async fn assert_untrusted_certificate_refused(dir: &Path, url: &str) {
    let untrusted = TrustSettings::with_ca(other_ca(dir).ca_file)
        .http_client()
        .expect("client")
        .build()
        .expect("client")
        .get(url)
        .send()
        .await
        .expect_err("an untrusted certificate is refused");
    assert!(
        format!("{untrusted:?}").to_lowercase().contains("certificate"),
        "{untrusted:?}"
    );
}

/// Every secret the stack made: passwords, SCRAM and registry credentials, the TLS keys.
pub(crate) fn secrets_of(stack: &TestStack) -> Vec<String> {
    let mut secrets = Vec::new();
    for dir in ["secrets", "clickhouse-access"] {
        for entry in std::fs::read_dir(stack.data_dir.join(dir)).expect("dir").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".password") {
                secrets.push(std::fs::read_to_string(entry.path()).expect("secret").trim().to_owned());
            }
        }
    }
    for key in ["tls/server.key", "tls/ca.key", "keys/tokenization.key"] {
        if let Ok(text) = std::fs::read_to_string(stack.data_dir.join(key)) {
            // A line from the middle of the key: enough to recognise it anywhere.
            let lines: Vec<&str> = text.lines().filter(|line| !line.starts_with("-----")).collect();
            secrets.push(lines[lines.len() / 2].trim().to_owned());
        }
    }
    secrets.retain(|secret| secret.len() >= 16);
    secrets
}

#[test]
fn no_secret_reaches_a_log_endpoints_env_or_a_command_line() {
    let stack = shared();
    let secrets = secrets_of(stack);
    assert!(secrets.len() >= 20, "every identity has secrets: {}", secrets.len());
    let mut scanned = vec![
        stack.data_dir.join("endpoints.env"),
        stack.data_dir.join("up.stderr.log"),
    ];
    for entry in std::fs::read_dir(stack.data_dir.join("logs")).expect("logs").flatten() {
        scanned.push(entry.path());
    }
    let mut texts: Vec<(String, String)> = scanned
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path).unwrap_or_default();
            (path.display().to_string(), String::from_utf8_lossy(&bytes).into_owned())
        })
        .collect();
    // What `ps` shows of every process of the stack.
    for entry in std::fs::read_dir(stack.data_dir.join("run"))
        .expect("run dir")
        .flatten()
    {
        let pid = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let Some(pid) = pid.split_whitespace().next() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            texts.push((
                format!("the command line of pid {pid}"),
                String::from_utf8_lossy(&cmdline).replace('\0', " "),
            ));
        }
    }
    assert!(
        texts.len() >= 8,
        "logs, endpoints.env and command lines: {}",
        texts.len()
    );
    for (what, text) in &texts {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{what} holds a secret");
        }
    }
    let endpoints = std::fs::read_to_string(stack.data_dir.join("endpoints.env")).expect("endpoints.env");
    for variable in [
        "SEALTRAIL_CA_FILE=",
        "KAFKA_CONFIG_FILE=",
        "CLICKHOUSE_USER=",
        "CLICKHOUSE_PASSWORD_FILE=",
    ] {
        assert!(
            endpoints.contains(variable),
            "endpoints.env names {variable}: {endpoints}"
        );
    }
}

/// `--insecure` keeps the plaintext stack for quick experiments: plain URLs, no credentials, and
/// nothing in endpoints.env that a secured stack would name.
#[tokio::test]
async fn an_insecure_stack_is_plaintext_and_needs_no_credentials() {
    let data_dir = crate::harness::fresh_data_dir("insecure");
    let stack =
        TestStack::try_start(&data_dir, &["--insecure", "--no-pipeline"]).unwrap_or_else(|failure| panic!("{failure}"));
    assert!(
        stack.endpoints.clickhouse_url.starts_with("http://"),
        "{:?}",
        stack.endpoints
    );
    assert!(stack.registry_url().starts_with("http://"));
    assert!(stack.endpoints.get("KAFKA_CONFIG_FILE").is_none());
    assert!(stack.endpoints.get("SEALTRAIL_CA_FILE").is_none());
    wait_for_broker(
        &KafkaSettings::new(&stack.endpoints.kafka_bootstrap),
        Duration::from_secs(30),
    )
    .await
    .expect("a plaintext client is let in");
    let subjects = reqwest::Client::new()
        .get(format!("{}/subjects", stack.registry_url()))
        .send()
        .await
        .expect("the registry answers");
    assert_eq!(subjects.status().as_u16(), 200, "an open registry");
    // ClickHouse keeps its users and passwords even here.
    stack
        .clickhouse()
        .server_client()
        .query("SELECT 1")
        .fetch_one::<u8>()
        .await
        .expect("the administrator logs in");
    assert!(stack.stop().success());
}

/// An outsider who reaches ClickHouse's HTTPS port with no credentials lands on the engine's own
/// `default` user, which can read no table and reach no file, URL, remote server or script, even
/// one planted in the engine's scripts folder.
#[tokio::test]
async fn clickhouse_gives_a_caller_without_credentials_nothing_to_read_or_run() {
    let stack = shared();
    let mut anonymous = stack.clickhouse();
    anonymous.user = None;
    anonymous.password = None;
    let scripts = stack.data_dir.join("clickhouse/user_scripts");
    std::fs::create_dir_all(&scripts).expect("scripts folder");
    let script = scripts.join(format!("{}.sh", unique("probe")));
    std::fs::write(&script, "#!/bin/sh\necho ran\n").expect("script");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("mode");
    }
    let script_name = script.file_name().expect("name").to_string_lossy().into_owned();
    for query in [
        "SELECT count() FROM sealtrail.events".to_owned(),
        "SELECT count() FROM sealtrail.api_keys".to_owned(),
        "SELECT name FROM system.users".to_owned(),
        "SELECT count() FROM system.processes".to_owned(),
        "SELECT * FROM file('/etc/passwd', 'LineAsString')".to_owned(),
        "SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')".to_owned(),
        "SELECT count() FROM remote('127.0.0.1', sealtrail.events)".to_owned(),
        format!("SELECT * FROM executable('{script_name}', 'LineAsString', 'x String')"),
        "CREATE TEMPORARY TABLE t (a UInt8)".to_owned(),
        "CREATE DATABASE intruder".to_owned(),
        "CREATE USER intruder IDENTIFIED BY 'x'".to_owned(),
    ] {
        let refused = anonymous
            .server_client()
            .query(&query)
            .execute()
            .await
            .expect_err(&query)
            .to_string();
        assert!(
            refused.contains("ACCESS_DENIED") || refused.contains("Not enough privileges"),
            "{query}: {refused}"
        );
    }
    std::fs::remove_file(&script).ok();
}

/// A registry reader that tries to write by other spellings of a write (an encoded slash, doubled
/// slashes, other methods, a lower-case auth scheme) changes nothing.
#[tokio::test]
async fn a_registry_reader_cannot_write_by_any_spelling() {
    let stack = shared();
    let url = stack.registry_url().to_owned();
    let http = stack.http();
    let (reader, password) = registry_login(stack, "sink");
    let subject = format!("{}-value", unique("sneaky"));
    let schema =
        serde_json::json!({"schema": r#"{"type":"record","name":"Sneaky","fields":[{"name":"a","type":"string"}]}"#});
    let attempts = [
        (reqwest::Method::POST, format!("{url}/subjects/{subject}/versions")),
        (reqwest::Method::POST, format!("{url}/subjects/{subject}%2Fversions")),
        (reqwest::Method::POST, format!("{url}//subjects/{subject}/versions")),
        (reqwest::Method::POST, format!("{url}/subjects/{subject}/versions/")),
        (reqwest::Method::PUT, format!("{url}/subjects/{subject}/versions")),
        (reqwest::Method::PUT, format!("{url}/config/{subject}")),
        (reqwest::Method::DELETE, format!("{url}/subjects/{subject}")),
        (reqwest::Method::PATCH, format!("{url}/config")),
    ];
    for (method, target) in attempts {
        let response = http
            .request(method.clone(), &target)
            .basic_auth(&reader, Some(&password))
            .json(&schema)
            .send()
            .await
            .expect("answers");
        // A lookup of the encoded subject may answer 404; nothing may succeed at writing.
        let status = response.status().as_u16();
        assert!((403..=405).contains(&status), "{method} {target}: {status}");
    }
    for header in [
        format!("basic {}", "c2luazp3cm9uZw=="),
        "Basic !!!not-base64!!!".to_owned(),
        format!("Basic {}", "A".repeat(8192)),
        "Bearer anything".to_owned(),
    ] {
        let response = http
            .post(format!("{url}/subjects/{subject}/versions"))
            .header("authorization", header)
            .json(&schema)
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status().as_u16(), 401);
    }
    let listed: Vec<String> = stack
        .registry_request(reqwest::Method::GET, "/subjects")
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    assert!(!listed.iter().any(|name| name.starts_with(&subject)), "{listed:?}");
}

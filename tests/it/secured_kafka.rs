//! Kafka over TLS with SCRAM, the way a managed Kafka is reached: a client properties file names
//! the protocol, the CA and the credentials. The broker is the real one (Tansu, requiring SCRAM);
//! Tansu 0.6 serves no TLS itself, so the local stack's TLS front (`sealtrail_local::TlsFront`)
//! terminates it. The right CA and credentials produce and read back; plaintext, a wrong password
//! and a CA the certificate does not come from are refused at start, each saying why.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use sealtrail_kafka::{ClientProperties, KafkaSettings, PartitionReader, TopicSpec, ensure_topics, wait_for_broker};
use sealtrail_local::{CacheDir, LocalCa, TlsFront, ensure_tansu, server_config, write_private};

use crate::harness::{free_port, unique};

const USER: &str = "sealtrail-seal";
/// Made up for the test; the scan below checks it reaches no output.
const PASSWORD: &str = "correct-horse-7c2f";

/// A broker that requires TLS and SCRAM-SHA-512, with one user.
struct SecuredBroker {
    broker: Child,
    /// The TLS front clients connect to (the broker advertises it).
    port: u16,
    _front: TlsFront,
    dir: tempfile::TempDir,
    ca: LocalCa,
}

impl Drop for SecuredBroker {
    fn drop(&mut self) {
        self.broker.kill().ok();
        self.broker.wait().ok();
    }
}

fn spawn_broker(tansu: &Path, dir: &Path, port: u16, advertised: u16, authentication: bool) -> Child {
    let url = format!("tcp://127.0.0.1:{port}");
    let advertised = format!("tcp://127.0.0.1:{advertised}");
    let mut command = Command::new(tansu);
    command
        .arg("broker")
        .args(["--listener-url", &url, "--advertised-listener-url", &advertised])
        .args(["--storage-engine", "sqlite://tansu.db", "--cluster-id", "secured"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("tansu.log")).expect("log file"),
        ));
    if authentication {
        command.arg("--authentication");
    }
    command.spawn().expect("tansu starts")
}

impl SecuredBroker {
    async fn start() -> Self {
        let tansu = ensure_tansu(&CacheDir::from_env(), false)
            .await
            .expect("tansu is installed (`sealtrail setup`)")
            .path;
        let dir = tempfile::tempdir().expect("dir");
        let ca = LocalCa::ensure(&dir.path().join("tls")).expect("a local CA");
        let port = free_port();
        // SCRAM users are created through the broker, before it requires authentication.
        let mut open = spawn_broker(&tansu, dir.path(), port, port, false);
        wait_for_broker(
            &KafkaSettings::new(format!("127.0.0.1:{port}")),
            Duration::from_secs(30),
        )
        .await
        .expect("the broker starts");
        let created = Command::new(&tansu)
            .args(["user", "create", "--broker", &format!("tcp://127.0.0.1:{port}")])
            .args(["--mechanism", "scram512", USER, PASSWORD])
            .output()
            .expect("tansu user create runs");
        assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
        open.kill().ok();
        open.wait().ok();
        let tls_port = free_port();
        let front = TlsFront::start(
            ([127, 0, 0, 1], tls_port).into(),
            ([127, 0, 0, 1], port).into(),
            server_config(&ca.cert_file, &ca.key_file).expect("a TLS configuration"),
        )
        .await
        .expect("the TLS front listens");
        let broker = spawn_broker(&tansu, dir.path(), port, tls_port, true);
        Self {
            broker,
            port: tls_port,
            _front: front,
            dir,
            ca,
        }
    }

    /// A client properties file (mode 0600) with these settings.
    fn properties(&self, lines: &[String]) -> PathBuf {
        let path = self.dir.path().join(format!("{}.properties", unique("client")));
        write_private(&path, (lines.join("\n") + "\n").as_bytes()).expect("written");
        path
    }

    fn settings(&self, file: &Path) -> KafkaSettings {
        let mut settings = KafkaSettings::new(format!("127.0.0.1:{}", self.port));
        settings.extra = ClientProperties::read(file).expect("a valid properties file").kafka;
        settings
    }

    fn scram(password: &str, ca: &Path) -> Vec<String> {
        vec![
            "security.protocol=SASL_SSL".to_owned(),
            format!("ssl.ca.location={}", ca.display()),
            "sasl.mechanism=SCRAM-SHA-512".to_owned(),
            format!("sasl.username={USER}"),
            format!("sasl.password={password}"),
        ]
    }
}

async fn refusal(settings: &KafkaSettings) -> String {
    wait_for_broker(settings, Duration::from_secs(15))
        .await
        .expect_err("refused")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_ssl_with_scram_works_and_every_wrong_credential_is_refused_with_a_reason() {
    let broker = SecuredBroker::start().await;
    let good = broker.settings(&broker.properties(&SecuredBroker::scram(PASSWORD, &broker.ca.ca_file)));
    wait_for_broker(&good, Duration::from_secs(30))
        .await
        .expect("the right CA and credentials are let in");

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

    let plaintext = refusal(&KafkaSettings::new(format!("127.0.0.1:{}", broker.port))).await;
    // Refused; librdkafka does not say why (the TLS front hangs up on the first plaintext bytes),
    // so the message is the generic one.
    assert!(plaintext.contains(&broker.port.to_string()), "{plaintext}");

    let wrong_password =
        refusal(&broker.settings(&broker.properties(&SecuredBroker::scram("guess", &broker.ca.ca_file)))).await;
    assert!(
        wrong_password.contains("refused") && wrong_password.contains("SASL"),
        "{wrong_password}"
    );
    assert!(
        !wrong_password.contains("guess"),
        "the password is not echoed: {wrong_password}"
    );

    let other_ca = LocalCa::ensure(&broker.dir.path().join("other-ca")).expect("another CA");
    let untrusted =
        refusal(&broker.settings(&broker.properties(&SecuredBroker::scram(PASSWORD, &other_ca.ca_file)))).await;
    assert!(
        untrusted.contains("refused") && untrusted.to_lowercase().contains("ssl"),
        "{untrusted}"
    );

    let debug = format!("{good:?}");
    assert!(!debug.contains(PASSWORD), "settings never show the password: {debug}");
}

//! A client the project did not write can use the broker `sealtrail up` prints.

use std::path::PathBuf;
use std::process::Command;

use sealtrail_local::{CacheDir, ensure_python_interop};

use crate::harness::{shared, unique};

/// The cache's virtualenv with the pinned packages of tests/interop/requirements.txt (which
/// `sealtrail setup` installs; made here under the install lock if a run skipped it).
pub fn python_with_confluent_kafka() -> PathBuf {
    ensure_python_interop(&CacheDir::from_env(), true)
        .unwrap_or_else(|error| panic!("{error}"))
        .path
}

#[test]
fn pythons_confluent_kafka_creates_produces_and_consumes() {
    let stack = shared();
    let python = python_with_confluent_kafka();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/confluent_kafka_roundtrip.py"
    );
    let output = Command::new(python)
        .arg(script)
        .arg(&stack.endpoints.kafka_bootstrap)
        .arg(unique("python"))
        .arg("50")
        .arg(
            stack
                .endpoints
                .get("KAFKA_CONFIG_FILE")
                .expect("the stack's client properties"),
        )
        .output()
        .expect("run the Python client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.trim(), "ok 50");
}

/// A service written in Python, configured like any Confluent client with `SASL_SSL`, SCRAM and the
/// stack's CA, produces audit records to the secured broker; the pipeline seals them, they are
/// queryable in ClickHouse, and their chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_producer_over_sasl_ssl_feeds_the_sealed_pipeline() {
    use std::fmt::Write as _;
    use std::io::Write as _;

    use sealtrail_emit::AuditEmitter;
    use sealtrail_emit::generator::{Generated, Generator, Workload};

    const EVENTS: u64 = 300;
    let stack = shared();
    let raw = stack
        .endpoints
        .get("RAW_TOPIC")
        .expect("the pipeline's raw topic")
        .to_owned();
    let emitter = AuditEmitter::connect(&stack.kafka(), &stack.registry(), &raw)
        .await
        .expect("the contract registers");
    let prefix = format!("{}-", unique("py"));
    let mut generator = Generator::new(Workload {
        tenants: 3,
        bad_ratio: 0.0,
        seed: 7,
        now_ms: i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_millis(),
        )
        .expect("ms"),
        tenant_prefix: prefix.clone(),
    });
    let mut lines = String::new();
    for _ in 0..EVENTS {
        let Generated::Good(event) = generator.next_record() else {
            panic!("a workload without malformed records");
        };
        let _ = write!(lines, "{}\t", event.tenant_id);
        for byte in emitter.encode(&event) {
            let _ = write!(lines, "{byte:02x}");
        }
        lines.push('\n');
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/produce_framed.py");
    let mut child = Command::new(python_with_confluent_kafka())
        .arg(script)
        .arg(&stack.endpoints.kafka_bootstrap)
        .arg(&raw)
        .arg(
            stack
                .endpoints
                .get("KAFKA_CONFIG_FILE")
                .expect("the stack's client properties"),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the Python producer");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(lines.as_bytes())
        .expect("records to the producer");
    let output = child.wait_with_output().expect("the producer ends");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.trim(), format!("ok {EVENTS}"));

    let client = stack.clickhouse().client();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let stored: u64 = client
            .query("SELECT count() FROM events WHERE startsWith(tenant_id, ?)")
            .bind(&prefix)
            .fetch_one()
            .await
            .expect("count");
        if stored == EVENTS {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{stored} of {EVENTS} sealed and stored"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    for tenant in generator.tenant_ids() {
        let (status, stdout, stderr) = stack.sealtrail(&["verify", "--tenant", tenant], &[]);
        assert!(
            status.success() && stdout.contains("verified"),
            "{tenant}: {stdout}{stderr}"
        );
    }
}

/// docs/integrity.md is enough to write a verifier: a Python one, written from the document,
/// reproduces every value of its worked example and checks the signature.
#[test]
fn an_independent_python_verifier_reproduces_the_worked_example() {
    let python = python_with_confluent_kafka();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/independent_verifier.py");
    let output = Command::new(python)
        .arg(script)
        .output()
        .expect("run the Python verifier");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let document = include_str!("../../docs/integrity.md");
    let mut lines = stdout.lines().collect::<Vec<_>>();
    assert_eq!(lines.pop(), Some("signature verifies"));
    assert_eq!(lines.len(), 11);
    for value in lines {
        assert!(document.contains(value), "the document shows {value}");
    }
}

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

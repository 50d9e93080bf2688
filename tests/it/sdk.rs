//! The Python SDK (sdk/python), installed with pip from the repository, against the stack's own
//! ingest edge (`sealtrail ingest`, started by `up` at `INGEST_URL`) over HTTPS: its events are
//! sealed once each and verify, the edge's refusals reach the caller with their reasons, the
//! connection is HTTP/2, and events left queued when the program exits are delivered by its exit
//! hook. The edge serves no reads.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use crate::harness::{TestStack, serve_https_as_the_stack, shared, stored_event_ids, unique};
use crate::interop::python_with_confluent_kafka;
use crate::pipeline::verify_once_signed;

/// Copies `from` into `to`, files and folders.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create");
    for entry in std::fs::read_dir(from).expect("read") {
        let entry = entry.expect("entry");
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).expect("copy");
        }
    }
}

/// Installs the SDK with pip into `dir`, as a user would from the repository (from a copy: a
/// build writes into its source folder, and tests run at once).
fn install_sdk(dir: &Path) -> PathBuf {
    let source = dir.join("sdk");
    copy_tree(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/sdk/python")), &source);
    let target = dir.join("site");
    let output = Command::new(python_with_confluent_kafka())
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
        ])
        .args(["--no-build-isolation", "--no-index", "--target"])
        .arg(&target)
        .arg(&source)
        .output()
        .expect("run pip");
    assert!(
        output.status.success(),
        "pip install sdk/python: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    target
}

fn producer_key(stack: &TestStack, tenant: &str) -> String {
    let (status, stdout, stderr) = stack.sealtrail(
        &[
            "keys", "create", "--tenant", tenant, "--role", "producer", "--label", "sdk",
        ],
        &[],
    );
    assert!(status.success(), "{stderr}");
    stdout.lines().last().expect("the key").to_owned()
}

fn run_sdk(stack: &TestStack, site: &Path, tenant: &str, mode: &str, count: usize) -> Value {
    let edge = stack.endpoints.get("INGEST_URL").expect("up writes INGEST_URL");
    run_sdk_at(stack, edge, site, tenant, mode, count)
}

fn run_sdk_at(stack: &TestStack, url: &str, site: &Path, tenant: &str, mode: &str, count: usize) -> Value {
    let output = Command::new(python_with_confluent_kafka())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/sdk_send.py"))
        .args([mode, &count.to_string()])
        .env("PYTHONPATH", site)
        .env("SEALTRAIL_URL", url)
        .env("SEALTRAIL_KEY", producer_key(stack, tenant))
        .env("SEALTRAIL_TENANT", tenant)
        .env("SEALTRAIL_CA", stack.endpoints.get("SEALTRAIL_CA_FILE").expect("CA"))
        .output()
        .expect("run the SDK");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script's JSON")
}

async fn stored(stack: &TestStack, tenant: &str, expected: usize) -> Vec<String> {
    stored_event_ids(&stack.clickhouse(), tenant, expected).await
}

fn ids(answer: &Value) -> Vec<String> {
    let mut ids: Vec<String> = answer["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|id| id.as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_batches_over_http2_and_its_events_are_sealed_once() {
    let stack = shared();
    let dir = tempfile::tempdir().expect("dir");
    let site = install_sdk(dir.path());
    let tenant = unique("sdk");

    let answer = run_sdk(stack, &site, &tenant, "send", 30);

    assert_eq!(answer["accepted"], 30, "{answer}");
    assert_eq!(answer["http_version"], "HTTP/2", "{answer}");
    let bad = answer["bad"].as_str().expect("id");
    let reserved = answer["reserved"].as_str().expect("id");
    assert_eq!(answer["rejected"][bad], "invalid_action", "{answer}");
    assert_eq!(answer["rejected"][reserved], "invalid_action", "{answer}");
    assert_eq!(stored(stack, &tenant, 30).await, ids(&answer));
    let report = verify_once_signed(stack, &tenant).await;
    assert_eq!(report.events, 30, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_queued_when_the_program_exits_are_delivered() {
    let stack = shared();
    let dir = tempfile::tempdir().expect("dir");
    let site = install_sdk(dir.path());
    let tenant = unique("sdk-exit");

    let answer = run_sdk(stack, &site, &tenant, "exit", 25);

    assert_eq!(stored(stack, &tenant, 25).await, ids(&answer));
}

#[tokio::test]
async fn the_ingest_edge_serves_writes_health_and_metrics_but_no_reads() {
    let stack = shared();
    let edge = stack.endpoints.get("INGEST_URL").expect("up writes INGEST_URL");
    assert_ne!(Some(edge), stack.endpoints.api_url.as_deref(), "a process of its own");
    let http = stack.http();
    let status = |path: &'static str| {
        let http = http.clone();
        let url = format!("{edge}{path}");
        async move { http.get(url).send().await.expect("request").status().as_u16() }
    };
    assert_eq!(status("/healthz").await, 200);
    assert_eq!(status("/readyz").await, 200);
    assert_eq!(status("/metrics").await, 200);
    for read in ["/v1/events", "/v1/query", "/v1/exports", "/v1/legal-holds"] {
        assert_eq!(status(read).await, 404, "{read} on the ingest edge");
    }
    let unauthenticated = http
        .post(format!("{edge}/v1/ingest/events"))
        .body("[]")
        .send()
        .await
        .expect("request")
        .status()
        .as_u16();
    assert_eq!(unauthenticated, 401);
}

/// A front of the edge that answers its first request 503 with `Retry-After: 1`, as an edge at
/// its in-flight limit does, and forwards every later one to the real edge; the requests it saw.
async fn edge_busy_once(stack: &TestStack) -> (String, Arc<AtomicUsize>) {
    let edge = stack
        .endpoints
        .get("INGEST_URL")
        .expect("up writes INGEST_URL")
        .to_owned();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let http = stack.http();
    let forward = move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
        let (counter, http, edge) = (counter.clone(), http.clone(), edge.clone());
        async move {
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                let busy = r#"{"error":{"code":"unavailable","message":"busy"}}"#;
                return (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    [("retry-after", "1")],
                    busy.to_owned(),
                );
            }
            let mut request = http.post(format!("{edge}/v1/ingest/events")).body(body);
            for name in ["authorization", "x-tenant-id", "content-type"] {
                if let Some(value) = headers.get(name) {
                    request = request.header(name, value);
                }
            }
            let answer = request.send().await.expect("the edge answers");
            let status = axum::http::StatusCode::from_u16(answer.status().as_u16()).expect("a status");
            (status, [("retry-after", "0")], answer.text().await.expect("a body"))
        }
    };
    let url =
        serve_https_as_the_stack(|_| axum::Router::new().route("/v1/ingest/events", axum::routing::post(forward)))
            .await;
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_edge_is_retried_after_its_retry_after_and_nothing_is_lost() {
    let stack = shared();
    let dir = tempfile::tempdir().expect("dir");
    let site = install_sdk(dir.path());
    let tenant = unique("sdk-retry");
    let (front, seen) = edge_busy_once(stack).await;

    let (site, tenant_for_sdk) = (site.clone(), tenant.clone());
    let answer = tokio::task::spawn_blocking(move || run_sdk_at(shared(), &front, &site, &tenant_for_sdk, "retry", 12))
        .await
        .expect("the SDK ran");

    assert_eq!(answer["accepted"], 12, "{answer}");
    assert!(
        answer["retries"].as_u64().is_some_and(|retries| retries >= 1),
        "{answer}"
    );
    assert!(seen.load(Ordering::SeqCst) >= 2, "the refused batch was sent again");
    assert_eq!(stored(stack, &tenant, 12).await, ids(&answer));
}

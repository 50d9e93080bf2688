//! The `OpenAPI` document clients are generated from: valid for a standard validator
//! (`openapi-spec-validator`, from `PyPI`), with one descriptive `operationId` per operation and
//! a tag on each, so generators make one method per route.

use std::collections::HashMap;
use std::process::Command;

use serde_json::Value;

use super::Api;
use crate::interop::python_with_confluent_kafka;

async fn document(api: &Api) -> Value {
    api.http
        .get(format!("{}/openapi.json", api.url))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON")
}

fn operations(document: &Value) -> Vec<(String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                found.push((format!("{} {path}", method.to_uppercase()), operation));
            }
        }
    }
    found
}

#[tokio::test]
async fn a_standard_validator_accepts_the_document() {
    let api = Api::empty().await;
    let document = document(&api).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, document.to_string()).expect("written");
    let output = Command::new(python_with_confluent_kafka())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/validate_openapi.py"
        ))
        .arg(&file)
        .output()
        .expect("run the validator");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(printed.contains("0 errors"), "{printed}");
}

#[tokio::test]
async fn every_operation_has_its_own_descriptive_id_and_a_tag() {
    let api = Api::empty().await;
    let document = document(&api).await;
    let mut ids: HashMap<String, Vec<String>> = HashMap::new();
    for (route, operation) in operations(&document) {
        let id = operation["operationId"].as_str().unwrap_or_default().to_owned();
        assert!(id.contains('_'), "{route}: `{id}` does not say what it does");
        assert!(
            operation["tags"].as_array().is_some_and(|tags| !tags.is_empty()),
            "{route} has no tag"
        );
        ids.entry(id).or_default().push(route);
    }
    let clashes: Vec<_> = ids.iter().filter(|(_, routes)| routes.len() > 1).collect();
    assert!(clashes.is_empty(), "operationIds used more than once: {clashes:?}");
    assert!(ids.len() >= 20, "{ids:?}");
}

/// A client generated from the document by a standard generator (openapi-python-client, from
/// `PyPI`) sends events and reads through its generated methods, and parses the answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_generated_by_a_standard_generator_calls_the_api() {
    let api = Api::empty().await;
    let document = document(&api).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, document.to_string()).expect("written");
    let producer = api.key(&api.alfa, sealtrail_api::auth::Role::Producer).await;
    let auditor = api.key(&api.alfa, sealtrail_api::auth::Role::Auditor).await;
    let event_id = ulid::Ulid::new().to_string();
    let event = serde_json::json!({
        "event_id": event_id, "tenant_id": api.alfa,
        "occurred_at": time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .expect("time"),
        "action": "user.login", "actor": {"id": "user-1", "type": "USER"},
        "resource": {"type": "account", "id": "acct-1"}, "outcome": {"status": "SUCCESS"},
        "attributes": {"ip": "203.0.113.7"}
    });
    let mut client = Command::new(python_with_confluent_kafka());
    client
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/generated_client.py"
        ))
        .arg(&file)
        .arg(dir.path())
        .env("SEALTRAIL_URL", &api.url)
        .env("SEALTRAIL_TENANT", &api.alfa)
        .env("SEALTRAIL_PRODUCER_KEY", &producer)
        .env("SEALTRAIL_AUDITOR_KEY", &auditor)
        .env("SEALTRAIL_EVENT", event.to_string());
    // The API answers on this process's runtime: wait for the client off it.
    let output = tokio::task::spawn_blocking(move || client.output())
        .await
        .expect("joined")
        .expect("run the generated client");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answered: Value = serde_json::from_str(printed.trim()).expect("JSON");
    assert_eq!(answered["ingest_status"], 200, "{answered}");
    assert_eq!(answered["accepted"], 1, "{answered}");
    assert_eq!(answered["results"][0]["event_id"], event_id.as_str());
    assert_eq!(answered["results"][0]["status"], "accepted");
    assert_eq!(answered["elsewhere_status"], 403, "{answered}");
    assert_eq!(answered["elsewhere_code"], "forbidden", "{answered}");
    assert_eq!(answered["list_status"], 200, "{answered}");
    assert!(answered["listed"]["events"].is_array(), "{answered}");
}

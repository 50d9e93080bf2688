//! The schema registry through its REST API and through `schema_registry_converter`, the client
//! the project uses (which works the same against Confluent's registry).

use std::time::Duration;

use apache_avro::types::Value;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema};
use sealtrail_kafka::{TopicSpec, ensure_topics};
use sealtrail_registry::{RegistryService, RegistrySettings};
use serde_json::{Value as Json, json};

use crate::harness::{TestStack, shared, unique};

const V1: &str = r#"{"type":"record","name":"AuditProbe","namespace":"sealtrail.test","fields":[
    {"name":"tenant_id","type":"string"},{"name":"action","type":"string"}]}"#;
const V2_OPTIONAL_FIELD: &str = r#"{"type":"record","name":"AuditProbe","namespace":"sealtrail.test","fields":[
    {"name":"tenant_id","type":"string"},{"name":"action","type":"string"},
    {"name":"reason","type":["null","string"],"default":null}]}"#;
const V3_REQUIRED_FIELD: &str = r#"{"type":"record","name":"AuditProbe","namespace":"sealtrail.test","fields":[
    {"name":"tenant_id","type":"string"},{"name":"action","type":"string"},
    {"name":"actor_email","type":"string"}]}"#;

struct Registry {
    http: reqwest::Client,
    url: String,
    credentials: Option<sealtrail_runtime::BasicCredentials>,
}

impl Registry {
    /// The stack's registry, with the operator's credentials.
    fn new(stack: &TestStack) -> Self {
        Self {
            http: stack.http(),
            url: stack.registry_url().to_owned(),
            credentials: stack.registry().credentials,
        }
    }

    /// An open registry this test serves itself.
    fn plain(url: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: url.to_owned(),
            credentials: None,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Json>) -> (u16, Json) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("Accept", "application/vnd.schemaregistry.v1+json");
        if let Some(credentials) = &self.credentials {
            request = request.basic_auth(&credentials.user, Some(&credentials.password));
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("registry answers");
        let status = response.status().as_u16();
        let content_type = response.headers()["content-type"].to_str().expect("ascii").to_owned();
        assert_eq!(content_type, "application/vnd.schemaregistry.v1+json", "{path}");
        let json = response.json().await.expect("JSON body");
        (status, json)
    }

    async fn get(&self, path: &str) -> (u16, Json) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Json) -> (u16, Json) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Json) -> (u16, Json) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (u16, Json) {
        self.call(reqwest::Method::DELETE, path, None).await
    }
}

#[tokio::test]
async fn subjects_versions_ids_and_lookups_follow_confluents_api() {
    let registry = Registry::new(shared());
    let subject = format!("{}-value", unique("probe"));

    let (status, body) = registry.get("/config").await;
    assert_eq!(
        (status, &body["compatibilityLevel"]),
        (200, &json!("BACKWARD_TRANSITIVE"))
    );

    let (status, body) = registry
        .post(&format!("/subjects/{subject}/versions"), json!({ "schema": V1 }))
        .await;
    assert_eq!(status, 200, "{body}");
    let id1 = body["id"].as_u64().expect("id");
    // The same schema, differently formatted, is the same schema.
    let reformatted = serde_json::to_string_pretty(&serde_json::from_str::<Json>(V1).expect("json")).expect("pretty");
    let (_, again) = registry
        .post(
            &format!("/subjects/{subject}/versions"),
            json!({ "schema": reformatted }),
        )
        .await;
    assert_eq!(again["id"].as_u64(), Some(id1));

    let (status, body) = registry
        .post(
            &format!("/subjects/{subject}/versions"),
            json!({ "schema": V2_OPTIONAL_FIELD, "schemaType": "AVRO" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id2 = body["id"].as_u64().expect("id");
    assert_ne!(id1, id2);

    let (_, versions) = registry.get(&format!("/subjects/{subject}/versions")).await;
    assert_eq!(versions, json!([1, 2]));
    let (_, latest) = registry.get(&format!("/subjects/{subject}/versions/latest")).await;
    assert_eq!(
        (latest["version"].as_u64(), latest["id"].as_u64()),
        (Some(2), Some(id2))
    );
    assert_eq!(latest["subject"], json!(subject));
    let (_, by_id) = registry.get(&format!("/schemas/ids/{id1}")).await;
    let stored: Json = serde_json::from_str(by_id["schema"].as_str().expect("schema text")).expect("json");
    assert_eq!(stored, serde_json::from_str::<Json>(V1).expect("json"));
    let (_, usages) = registry.get(&format!("/schemas/ids/{id2}/versions")).await;
    assert_eq!(usages, json!([{ "subject": subject, "version": 2 }]));

    let (status, found) = registry
        .post(&format!("/subjects/{subject}"), json!({ "schema": V1 }))
        .await;
    assert_eq!((status, found["version"].as_u64()), (200, Some(1)));
    let (_, subjects) = registry.get("/subjects").await;
    assert!(subjects.as_array().expect("list").contains(&json!(subject)));

    // Confluent's error codes for what does not exist.
    assert_eq!(
        registry.get("/subjects/nope-value/versions").await.1["error_code"],
        json!(40401)
    );
    assert_eq!(
        registry.get(&format!("/subjects/{subject}/versions/9")).await.1["error_code"],
        json!(40402)
    );
    assert_eq!(registry.get("/schemas/ids/999999").await.1["error_code"], json!(40403));
    assert_eq!(
        registry.get(&format!("/subjects/{subject}/versions/zero")).await.1["error_code"],
        json!(42202)
    );
    let (status, body) = registry
        .post(
            &format!("/subjects/{subject}/versions"),
            json!({ "schema": "{\"type\":\"recrd\"}" }),
        )
        .await;
    assert_eq!((status, &body["error_code"]), (422, &json!(42201)));
}

#[tokio::test]
async fn an_incompatible_schema_is_refused_with_409_naming_the_field() {
    let registry = Registry::new(shared());
    let subject = format!("{}-value", unique("compat"));
    registry
        .post(&format!("/subjects/{subject}/versions"), json!({ "schema": V1 }))
        .await;

    let (status, verdict) = registry
        .post(
            &format!("/compatibility/subjects/{subject}/versions/latest?verbose=true"),
            json!({ "schema": V3_REQUIRED_FIELD }),
        )
        .await;
    assert_eq!((status, &verdict["is_compatible"]), (200, &json!(false)));
    assert!(verdict["messages"].to_string().contains("actor_email"), "{verdict}");
    let (_, verdict) = registry
        .post(
            &format!("/compatibility/subjects/{subject}/versions"),
            json!({ "schema": V2_OPTIONAL_FIELD }),
        )
        .await;
    assert_eq!(verdict, json!({ "is_compatible": true }));

    let (status, body) = registry
        .post(
            &format!("/subjects/{subject}/versions"),
            json!({ "schema": V3_REQUIRED_FIELD }),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["error_code"], json!(409));
    assert!(
        body["message"].as_str().expect("message").contains("'actor_email'"),
        "{body}"
    );

    // With the subject relaxed to NONE the same schema is accepted.
    let (status, body) = registry
        .put(&format!("/config/{subject}"), json!({ "compatibility": "NONE" }))
        .await;
    assert_eq!((status, body), (200, json!({ "compatibility": "NONE" })));
    assert_eq!(
        registry.get(&format!("/config/{subject}")).await.1,
        json!({ "compatibilityLevel": "NONE" })
    );
    let (status, _) = registry
        .post(
            &format!("/subjects/{subject}/versions"),
            json!({ "schema": V3_REQUIRED_FIELD }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = registry
        .put(&format!("/config/{subject}"), json!({ "compatibility": "SIDEWAYS" }))
        .await;
    assert_eq!((status, &body["error_code"]), (422, &json!(42203)));
    assert_eq!(
        registry.delete(&format!("/config/{subject}")).await.1,
        json!({ "compatibilityLevel": "NONE" })
    );
    assert_eq!(
        registry.get(&format!("/config/{subject}")).await.1["error_code"],
        json!(40408)
    );
}

#[tokio::test]
async fn soft_and_permanent_deletes_follow_confluents_rules() {
    let registry = Registry::new(shared());
    let subject = format!("{}-value", unique("deletes"));
    let (_, body) = registry
        .post(&format!("/subjects/{subject}/versions"), json!({ "schema": V1 }))
        .await;
    let id = body["id"].as_u64().expect("id");

    assert_eq!(
        registry.delete(&format!("/subjects/{subject}?permanent=true")).await.1["error_code"],
        json!(40405)
    );
    assert_eq!(
        registry.delete(&format!("/subjects/{subject}")).await,
        (200, json!([1]))
    );
    assert_eq!(
        registry.delete(&format!("/subjects/{subject}")).await.1["error_code"],
        json!(40404)
    );
    assert_eq!(
        registry.get(&format!("/subjects/{subject}/versions")).await.1["error_code"],
        json!(40401)
    );
    assert_eq!(
        registry
            .get(&format!("/subjects/{subject}/versions?deleted=true"))
            .await
            .1,
        json!([1])
    );
    // Records already written with the schema stay decodable.
    assert_eq!(registry.get(&format!("/schemas/ids/{id}")).await.0, 200);
    assert_eq!(
        registry.delete(&format!("/subjects/{subject}?permanent=true")).await,
        (200, json!([1]))
    );
    assert_eq!(
        registry
            .get(&format!("/subjects/{subject}/versions?deleted=true"))
            .await
            .1["error_code"],
        json!(40401)
    );
}

#[tokio::test]
async fn a_confluent_wire_format_record_round_trips_through_kafka() {
    let stack = shared();
    let topic = unique("wire");
    ensure_topics(&stack.kafka(), &[TopicSpec::new(&topic, 2)])
        .await
        .expect("topic");
    let settings = stack.registry().sr_settings().expect("registry settings");
    let encoder = AvroEncoder::new(settings.clone());
    let decoder = AvroDecoder::new(settings);
    let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(
        topic.clone(),
        false,
        SuppliedSchema::new(
            Some("sealtrail.test.AuditProbe".to_owned()),
            SchemaType::Avro,
            V1.to_owned(),
        ),
    );
    let fields = vec![
        ("tenant_id", Value::String("acme".into())),
        ("action", Value::String("user.login".into())),
    ];
    let bytes = encoder.encode(fields.clone(), strategy).await.expect("encode");
    assert_eq!(bytes[0], 0, "Confluent magic byte");
    let id = u32::from_be_bytes(bytes[1..5].try_into().expect("4 bytes"));
    let (_, registered) = Registry::new(stack)
        .get(&format!("/subjects/{topic}-value/versions/latest"))
        .await;
    assert_eq!(
        registered["id"].as_u64(),
        Some(u64::from(id)),
        "TopicNameStrategy subject"
    );

    let producer: FutureProducer = stack.kafka().producer().create().expect("producer");
    producer
        .send(
            FutureRecord::to(&topic).key("acme").payload(&bytes),
            Duration::from_secs(30),
        )
        .await
        .expect("acknowledged");
    let consumer: BaseConsumer = stack
        .kafka()
        .consumer(&unique("wire-group"))
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let payload = loop {
        if let Some(message) = consumer.poll(Duration::from_secs(1)) {
            break message.expect("consumed").payload().expect("payload").to_vec();
        }
    };
    let round_tripped = decoder.decode(Some(&payload)).await.expect("decode");
    let expected = Value::Record(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
    assert_eq!(round_tripped.value, expected);
}

#[tokio::test]
async fn a_registry_restarted_on_its_topic_rebuilds_the_same_state() {
    let stack = shared();
    let mut settings = RegistrySettings::new(stack.kafka());
    settings.topic = unique("_schemas_restart");
    let subject = "restart-value";
    let first = RegistryService::start(&settings).await.expect("first registry");
    let first_url = serve(first).await;
    let registry = Registry::plain(&first_url);
    registry
        .post(&format!("/subjects/{subject}/versions"), json!({ "schema": V1 }))
        .await;
    registry
        .post(
            &format!("/subjects/{subject}/versions"),
            json!({ "schema": V2_OPTIONAL_FIELD }),
        )
        .await;
    registry
        .put("/config", json!({ "compatibility": "FULL_TRANSITIVE" }))
        .await;
    registry.delete(&format!("/subjects/{subject}/versions/1")).await;

    let second = RegistryService::start(&settings).await.expect("second registry");
    let rebuilt = Registry::plain(&serve(second).await);
    for path in [
        format!("/subjects/{subject}/versions"),
        format!("/subjects/{subject}/versions?deleted=true"),
        format!("/subjects/{subject}/versions/latest"),
        "/schemas/ids/1".to_owned(),
        "/config".to_owned(),
    ] {
        assert_eq!(rebuilt.get(&path).await, registry.get(&path).await, "{path}");
    }
    assert_eq!(
        rebuilt.get("/config").await.1,
        json!({ "compatibilityLevel": "FULL_TRANSITIVE" })
    );
}

async fn serve(registry: std::sync::Arc<RegistryService>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, registry.router()).await });
    url
}

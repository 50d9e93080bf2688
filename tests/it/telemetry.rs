//! End-to-end tracing on a stack of its own: a record produced with a W3C `traceparent` header is
//! followed by the seal and sink processors, which export their spans over OTLP/HTTP (JSON) to a
//! small receiver run by the test. The spans share the producer's trace id and chain
//! producer -> seal -> sink; no raw personal data reaches them; JSON log lines carry the trace id.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sealtrail_core::event::{ActorType, AuditEvent};
use sealtrail_emit::AuditEmitter;
use serde_json::Value;

use crate::harness::{Processor, TestStack, fresh_data_dir};
use crate::pipeline::{RAW, now_ms};

/// Every span the receiver got, with its service, and every request body as received.
#[derive(Default)]
struct Received {
    spans: Vec<Span>,
    bodies: Vec<String>,
}

#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace_id: String,
    id: String,
    parent_id: String,
}

fn spans_of(request: &Value) -> Vec<Span> {
    let mut spans = Vec::new();
    for resource in request["resourceSpans"].as_array().into_iter().flatten() {
        let service = resource["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|attribute| attribute["key"] == "service.name")
            .and_then(|attribute| attribute["value"]["stringValue"].as_str())
            .unwrap_or_default()
            .to_owned();
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                let text = |key: &str| span[key].as_str().unwrap_or_default().to_owned();
                spans.push(Span {
                    service: service.clone(),
                    name: text("name"),
                    trace_id: text("traceId"),
                    id: text("spanId"),
                    parent_id: text("parentSpanId"),
                });
            }
        }
    }
    spans
}

/// An OTLP/HTTP receiver for JSON-encoded traces on a free loopback port.
async fn otlp_receiver() -> (String, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let store = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: String| {
            let store = Arc::clone(&store);
            async move {
                let request: Value = serde_json::from_str(&body).expect("OTLP/JSON");
                let mut received = store.lock().expect("lock");
                received.spans.extend(spans_of(&request));
                received.bodies.push(body);
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), received)
}

const PERSON: &str = "dana.whitfield@example.com";

fn event(occurred_at: i64) -> AuditEvent {
    let mut event = AuditEvent {
        event_id: ulid::Ulid::new().to_string(),
        tenant_id: "traced".to_owned(),
        occurred_at,
        action: "user.login".to_owned(),
        ..AuditEvent::default()
    };
    PERSON.clone_into(&mut event.actor.id);
    event.actor.kind = ActorType::User;
    "account".clone_into(&mut event.resource.kind);
    "acct-1".clone_into(&mut event.resource.id);
    event
}

async fn produce_traced(stack: &TestStack, emitter: &AuditEmitter, event: &AuditEvent, traceparent: &str) {
    let producer: FutureProducer = stack.kafka().producer().create().expect("producer");
    let payload = emitter.encode(event);
    let record = FutureRecord::to(RAW)
        .key(event.tenant_id.as_bytes())
        .payload(&payload[..])
        .headers(OwnedHeaders::new().insert(Header {
            key: "traceparent",
            value: Some(traceparent),
        }));
    producer.send(record, Duration::from_secs(30)).await.expect("produced");
}

#[tokio::test]
async fn one_trace_follows_an_event_from_its_producer_through_seal_and_sink() {
    let data_dir = fresh_data_dir("telemetry");
    let stack = TestStack::try_start(&data_dir, &["--no-pipeline"]).unwrap_or_else(|failure| panic!("{failure}"));
    stack.init_keys_and_topics();
    let (endpoint, received) = otlp_receiver().await;
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("SEALTRAIL_LOG_FORMAT", "json"),
    ];
    let seal = Processor::start(&stack, "seal", "traced-seal", &env);
    let sink = Processor::start(&stack, "sink", "traced-sink", &env);
    let emitter = AuditEmitter::connect(&stack.kafka(), &stack.registry(), RAW)
        .await
        .expect("emitter");

    let (sealed_trace, producer_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    produce_traced(
        &stack,
        &emitter,
        &event(now_ms()),
        &format!("00-{sealed_trace}-{producer_span}-01"),
    )
    .await;
    // A record from a day ahead is rejected; its span and log line carry its trace too.
    let rejected_trace = "0af7651916cd43dd8448eb211c80319c";
    produce_traced(
        &stack,
        &emitter,
        &event(now_ms() + 86_400_000),
        &format!("00-{rejected_trace}-b7ad6b7169203331-01"),
    )
    .await;

    let started = Instant::now();
    let (seal_span, sink_span) = loop {
        let spans = received.lock().expect("lock").spans.clone();
        let find = |name: &str| {
            spans
                .iter()
                .find(|span| span.name == name && span.trace_id == sealed_trace)
                .cloned()
        };
        let rejected = spans
            .iter()
            .any(|span| span.name == "seal.record" && span.trace_id == rejected_trace);
        if let (Some(seal_span), Some(sink_span), true) = (find("seal.record"), find("sink.record"), rejected) {
            break (seal_span, sink_span);
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "spans never arrived; got {spans:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(seal_span.service, "sealtrail-seal");
    assert_eq!(sink_span.service, "sealtrail-sink");
    assert_eq!(seal_span.parent_id, producer_span, "seal continues the producer's span");
    assert_eq!(sink_span.parent_id, seal_span.id, "sink continues the seal span");
    let bodies = received.lock().expect("lock").bodies.join("\n");
    assert!(!bodies.contains(PERSON), "raw personal data reached the traces");
    // Nor did any password or key of the stack (the processors run secured, with its files).
    let secrets = crate::secured_stack::secrets_of(&stack);
    assert!(!secrets.is_empty());
    for secret in &secrets {
        assert!(
            !bodies.contains(secret.as_str()),
            "a secret of the stack reached the traces"
        );
    }
    assert!(
        bodies.contains("\"future_timestamp\""),
        "the rejection reason is on the span"
    );
    assert!(sink.metric("sealtrail_events_out_total{component=\"sink\"}").await >= 1);

    seal.stop();
    sink.stop();
    let seal_log = std::fs::read_to_string(data_dir.join("seal.log")).expect("seal log");
    let rejection = seal_log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["message"] == "record rejected to the DLQ")
        .unwrap_or_else(|| panic!("no JSON rejection line in:\n{seal_log}"));
    assert_eq!(rejection["span"]["trace_id"], rejected_trace, "{rejection}");
    assert!(!seal_log.contains(PERSON));
    stack.stop();
}

//! The ingest edge over gRPC (`schemas/ingest.proto`) on the shared pipeline: a unary batch and a
//! client stream are sealed, verify, and are written byte for byte as a Kafka producer writes them;
//! bad events are answered with their reasons; only a producer credential of the tenant writes;
//! health and reflection answer.

use sealtrail_api::auth::Role;
use sealtrail_api::ingest::grpc::pb::ingest_client::IngestClient;
use sealtrail_api::ingest::grpc::{message, pb};
use sealtrail_emit::AuditEmitter;
use sealtrail_kafka::PartitionReader;
use tonic::transport::Channel;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use super::{Api, raw_topic};
use crate::harness::{shared, stored_event_ids, unique};
use crate::pipeline::verify_once_signed;

fn now_ms() -> i64 {
    sealtrail_clickhouse::unix_ms(time::OffsetDateTime::now_utc())
}

async fn client(api: &Api) -> IngestClient<Channel> {
    let channel = Channel::from_shared(api.url.clone())
        .expect("url")
        .connect()
        .await
        .expect("an HTTP/2 connection to the API");
    IngestClient::new(channel)
}

/// A call with a credential, a tenant and more metadata.
fn call<T>(message: T, key: &str, tenant: &str, extra: &[(&'static str, &str)]) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let metadata = request.metadata_mut();
    if !key.is_empty() {
        metadata.insert("authorization", format!("Bearer {key}").parse().expect("ascii"));
    }
    if !tenant.is_empty() {
        metadata.insert("x-tenant-id", tenant.parse().expect("ascii"));
    }
    for (name, value) in extra {
        metadata.insert(*name, value.parse().expect("ascii"));
    }
    request
}

fn small(tenant: &str, action: &str) -> pb::AuditEvent {
    pb::AuditEvent {
        event_id: ulid::Ulid::new().to_string(),
        tenant_id: tenant.to_owned(),
        occurred_at_ms: now_ms() - 1_000,
        action: action.to_owned(),
        actor: Some(pb::Actor {
            id: "user-1".to_owned(),
            r#type: pb::ActorType::User.into(),
            ..pb::Actor::default()
        }),
        resource: Some(pb::Resource {
            r#type: "account".to_owned(),
            id: "acct-1".to_owned(),
            path: None,
        }),
        outcome: Some(pb::Outcome {
            status: pb::OutcomeStatus::Success.into(),
            ..pb::Outcome::default()
        }),
        ..pb::AuditEvent::default()
    }
}

fn raw_record(result: &pb::EventResult) -> sealtrail_kafka::PartitionRecord {
    let (partition, offset) = (result.partition.expect("partition"), result.offset.expect("offset"));
    let reader = PartitionReader::new(&shared().kafka(), std::time::Duration::from_secs(60)).expect("reader");
    let mut records = reader
        .read(&raw_topic(), partition, offset, offset + 1)
        .expect("read the raw record");
    records.remove(0)
}

fn accepted(answer: &pb::IngestAnswer) -> Vec<String> {
    answer
        .results
        .iter()
        .filter(|r| r.status() == pb::event_result::Status::Accepted)
        .map(|r| r.event_id.clone().expect("id"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_over_grpc_are_sealed_verified_and_written_as_a_kafka_producer_writes_them() {
    let api = Api::on_pipeline().await;
    let tenant = unique("grpc");
    let producer = api.key(&tenant, Role::Producer).await;
    let mut ingest = client(&api).await;
    let (event, _) = super::ingest::full_event(&tenant, now_ms() - 60_000);

    let unary = ingest
        .send_events(call(
            pb::EventBatch {
                events: vec![message(&event)],
            },
            &producer,
            &tenant,
            &[],
        ))
        .await
        .expect("unary call")
        .into_inner();
    assert_eq!((unary.accepted, unary.rejected), (1, 0), "{unary:?}");
    let emitter = AuditEmitter::connect(&shared().kafka(), &shared().registry(), &raw_topic())
        .await
        .expect("emitter");
    let record = raw_record(&unary.results[0]);
    assert_eq!(record.value.as_deref(), Some(emitter.encode(&event).as_slice()));
    assert_eq!(record.key.as_deref(), Some(tenant.as_bytes()));

    // A stream of two batches, each with a bad event: indexes run across the stream.
    let mut no_actor = small(&tenant, "user.login");
    no_actor.actor = None;
    let first = pb::EventBatch {
        events: vec![small(&tenant, "user.login"), no_actor, small(&tenant, "user.logout")],
    };
    let second = pb::EventBatch {
        events: vec![small(&tenant, "Not An Action"), small(&tenant, "data.exported")],
    };
    let batches = futures::stream::iter([first, second]);
    let streamed = ingest
        .stream_events(call(batches, &producer, &tenant, &[("x-idempotency-key", "stream-7")]))
        .await
        .expect("streaming call")
        .into_inner();
    assert_eq!((streamed.accepted, streamed.rejected), (3, 2), "{streamed:?}");
    let reasons: Vec<(u32, Option<&str>)> = streamed
        .results
        .iter()
        .map(|r| (r.index, r.reason.as_deref()))
        .collect();
    assert_eq!(
        reasons,
        [
            (0, None),
            (1, Some("missing_field")),
            (2, None),
            (3, Some("invalid_action")),
            (4, None)
        ]
    );
    let last = raw_record(&streamed.results[4]);
    let key = format!("stream-7/{}", streamed.results[4].event_id.as_deref().expect("id"));
    assert_eq!(last.header("idempotency-key"), Some(key.as_bytes()));

    let mut sent: Vec<String> = accepted(&unary).into_iter().chain(accepted(&streamed)).collect();
    sent.sort();
    assert_eq!(
        stored_event_ids(&api.settings, &tenant, 4).await,
        sent,
        "sealed once each"
    );
    let report = verify_once_signed(shared(), &tenant).await;
    assert_eq!(report.events, 4, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_refuses_what_rest_refuses_and_serves_health_and_reflection() {
    let api = Api::on_pipeline().await;
    let tenant = unique("grpc-refused");
    let producer = api.key(&tenant, Role::Producer).await;
    let auditor = api.key(&tenant, Role::Auditor).await;
    let mut ingest = client(&api).await;
    let batch = || pb::EventBatch {
        events: vec![small(&tenant, "user.login")],
    };
    let other = unique("grpc-other");
    let cases = [
        ("", tenant.as_str(), tonic::Code::Unauthenticated),
        ("sk_live_nope_nope", tenant.as_str(), tonic::Code::Unauthenticated),
        (auditor.as_str(), tenant.as_str(), tonic::Code::PermissionDenied),
        (producer.as_str(), other.as_str(), tonic::Code::PermissionDenied),
        (producer.as_str(), "", tonic::Code::InvalidArgument),
    ];
    for (key, named, code) in cases {
        let refused = ingest
            .send_events(call(batch(), key, named, &[]))
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), code, "key {key:?} tenant {named:?}: {refused:?}");
    }
    let too_many = pb::EventBatch {
        events: (0..1001).map(|_| small(&tenant, "user.login")).collect(),
    };
    let refused = ingest
        .send_events(call(too_many, &producer, &tenant, &[]))
        .await
        .expect_err("too many");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().starts_with("too_many_events"), "{refused:?}");

    let channel = Channel::from_shared(api.url.clone())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: sealtrail_api::ingest::grpc::SERVICE.to_owned(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        serving.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    let mut reflection = ServerReflectionClient::new(channel);
    let ask = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(futures::stream::iter([ask]))
        .await
        .expect("reflection")
        .into_inner();
    let listed = answers.message().await.expect("answer").expect("one");
    let Some(MessageResponse::ListServicesResponse(services)) = listed.message_response else {
        panic!("not a list of services: {listed:?}");
    };
    let names: Vec<&str> = services.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"sealtrail.ingest.v1.Ingest"), "{names:?}");
}

/// A stream authenticates again before each batch: a key revoked while it is open stops it there,
/// and the answer still says what was accepted before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_during_a_stream_stops_it_and_the_answer_keeps_what_was_accepted() {
    let api = Api::on_pipeline().await;
    let tenant = unique("grpc-revoked");
    let producer = api.key(&tenant, Role::Producer).await;
    let key_id = producer.split('_').nth(1).expect("key id").to_owned();
    let mut ingest = client(&api).await;
    let (batches, receiver) = futures::channel::mpsc::unbounded::<pb::EventBatch>();
    let first = small(&tenant, "user.login");
    let first_id = first.event_id.clone();
    batches
        .unbounded_send(pb::EventBatch { events: vec![first] })
        .expect("queued");
    let request = call(receiver, &producer, &tenant, &[]);
    let answered = tokio::spawn(async move { ingest.stream_events(request).await.map(tonic::Response::into_inner) });
    // Once the first event is stored, the edge has published it and waits for the next batch.
    assert_eq!(
        stored_event_ids(&api.settings, &tenant, 1).await,
        std::slice::from_ref(&first_id)
    );
    api.keys.revoke(&key_id).await.expect("revoke");
    batches
        .unbounded_send(pb::EventBatch {
            events: vec![small(&tenant, "user.logout")],
        })
        .expect("queued");
    drop(batches);
    let answer = answered.await.expect("joined").expect("an answer, not an error");
    assert_eq!((answer.accepted, answer.rejected), (1, 1), "{answer:?}");
    assert_eq!(answer.results[0].event_id.as_deref(), Some(first_id.as_str()));
    assert_eq!(answer.results[1].reason.as_deref(), Some("unauthorized"), "{answer:?}");
}

/// A unary call to `path` with a codec of our own, so paths nobody generated can be tried.
async fn raw_call(
    api: &Api,
    path: &'static str,
    key: &str,
    tenant: &str,
    batch: pb::EventBatch,
) -> Result<pb::IngestAnswer, tonic::Status> {
    let channel = Channel::from_shared(api.url.clone())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|error| tonic::Status::unknown(error.to_string()))?;
    let codec = tonic_prost::ProstCodec::<pb::EventBatch, pb::IngestAnswer>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    grpc.unary(call(batch, key, tenant, &[]), path, codec)
        .await
        .map(tonic::Response::into_inner)
}

/// An attacker's tries: paths nobody wrote, around the authenticated service and through the open
/// ones; another tenant's events under one's own tenant; values no generator makes. Nothing is
/// accepted that should not be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_grpc_calls_write_nothing_they_should_not() {
    let api = Api::empty().await;
    let (mine, theirs) = (api.alfa.clone(), api.bravo.clone());
    let producer = api.key(&mine, Role::Producer).await;
    let batch = || pb::EventBatch {
        events: vec![small(&mine, "user.login")],
    };
    for path in [
        "/sealtrail.ingest.v1.Ingest/SendEvents",
        "/sealtrail.ingest.v1.Ingest/Unknown",
        "/sealtrail.ingest.v1.Ingest//SendEvents",
        "/sealtrail.ingest.v1.Ingest/%53endEvents",
        "/grpc.health.v1.Health/../sealtrail.ingest.v1.Ingest/SendEvents",
        "/grpc.reflection.v1.ServerReflection/../../sealtrail.ingest.v1.Ingest/SendEvents",
        "//sealtrail.ingest.v1.Ingest/SendEvents",
    ] {
        let refused = raw_call(&api, path, "", &mine, batch())
            .await
            .expect_err("no credential writes nothing");
        assert_ne!(refused.code(), tonic::Code::Ok, "{path}");
    }

    // Another tenant's events, or a tenant smuggled in metadata, under one's own credential.
    let foreign = small(&theirs, "user.login");
    let answer = raw_call(
        &api,
        "/sealtrail.ingest.v1.Ingest/SendEvents",
        &producer,
        &mine,
        pb::EventBatch { events: vec![foreign] },
    )
    .await
    .expect("answered per event");
    assert_eq!((answer.accepted, answer.rejected), (0, 1), "{answer:?}");
    for smuggled in [format!("{mine},{theirs}"), format!("{theirs} "), format!(" {mine}x")] {
        let mut request = call(batch(), &producer, "", &[]);
        request
            .metadata_mut()
            .insert("x-tenant-id", smuggled.parse().expect("ascii"));
        let refused = client(&api)
            .await
            .send_events(request)
            .await
            .expect_err("only the credential's own tenant");
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{smuggled:?}");
    }

    // Values no generator makes: an actor type out of the enum, 20,000 attributes of one name,
    // an event id of 100 KB. Each is rejected with its reason, never accepted.
    let mut odd_type = small(&mine, "user.login");
    if let Some(actor) = odd_type.actor.as_mut() {
        actor.r#type = 99;
    }
    let mut repeated = small(&mine, "user.login");
    repeated.attributes = (0..20_000)
        .map(|_| pb::Attribute {
            name: "a".to_owned(),
            value: String::new(),
        })
        .collect();
    let mut long_id = small(&mine, "user.login");
    long_id.event_id = "X".repeat(100_000);
    let answer = client(&api)
        .await
        .send_events(call(
            pb::EventBatch {
                events: vec![odd_type, repeated, long_id],
            },
            &producer,
            &mine,
            &[],
        ))
        .await
        .expect("answered per event")
        .into_inner();
    assert_eq!((answer.accepted, answer.rejected), (0, 3), "{answer:?}");
    assert!(
        answer
            .results
            .iter()
            .all(|result| result.event_id.as_ref().is_none_or(|id| id.len() <= 131)
                && result.detail.as_ref().is_some_and(|detail| detail.len() <= 515)),
        "echoes are bounded"
    );
}

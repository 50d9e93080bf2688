//! Events per second through the ingest edge (`sealtrail bench-ingest`): REST batches of 100
//! and gRPC streams through the real edge (authentication, quotas, the seal's validation,
//! encoding, Kafka's acknowledgement before the answer), next to the same kind of events produced
//! to Kafka directly with the same producer, in the same run, with acknowledgement latency
//! percentiles.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use sealtrail_api::audit::AccessRecorder;
use sealtrail_api::auth::Role;
use sealtrail_api::auth::api_keys::KeyStore;
use sealtrail_api::auth::jwt::JwtVerifier;
use sealtrail_api::ingest::IngestSettings;
use sealtrail_api::ingest::quota::QuotaSettings;
use sealtrail_api::rate_limit::RateLimit;
use sealtrail_api::server::{ApiConfig, ServedRoutes, router};
use sealtrail_clickhouse::{ClickHouseSettings, apply_migrations, wait_for_clickhouse};
use sealtrail_core::event::{Actor, ActorType, AuditEvent, Outcome, Resource};
use sealtrail_emit::{AuditEmitter, acknowledged};
use sealtrail_kafka::KafkaSettings;
use sealtrail_runtime::RegistryConnection;
use serde_json::{Value, json};

use crate::api::{Latencies, serve_in_process};

mod grpc;

/// What to measure, and where.
#[derive(Debug, Clone)]
pub struct IngestBench {
    pub clickhouse: ClickHouseSettings,
    pub kafka: KafkaSettings,
    pub kafka_connect_timeout: Duration,
    pub registry: RegistryConnection,
    /// Events sent each way.
    pub events: usize,
    /// Events per REST request.
    pub batch: usize,
    /// REST requests in flight at once.
    pub concurrency: usize,
    /// Tenants the events are spread over (one producer key each).
    pub tenants: usize,
}

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct IngestReport {
    pub rest_per_second: f64,
    /// Per request: from sending the batch to the answer (every event acknowledged).
    pub rest_latency: Latencies,
    /// `concurrency` gRPC streams at once, each carrying its share of the events in batches.
    pub grpc_stream_per_second: f64,
    /// Per batch: from sending it to its acknowledgement (measured with unary calls, one batch
    /// each, `concurrency` at once).
    pub grpc_unary_per_second: f64,
    pub grpc_latency: Latencies,
    pub direct_per_second: f64,
    /// Per event: from queueing it to its acknowledgement.
    pub direct_latency: Latencies,
}

pub(crate) fn event(tenant: &str, index: usize, now_ms: i64) -> AuditEvent {
    AuditEvent {
        event_id: ulid::Ulid::new().to_string(),
        tenant_id: tenant.to_owned(),
        occurred_at: now_ms,
        action: "billing.refund.posted".to_owned(),
        actor: Actor {
            id: format!("svc-billing-{}", index % 50),
            kind: ActorType::Service,
            ..Actor::default()
        },
        resource: Resource {
            kind: "invoice".to_owned(),
            id: format!("inv-{index}"),
            path: None,
        },
        outcome: Outcome::default(),
        correlation_id: Some(format!("corr-{}", index / 10)),
        attributes: vec![
            ("amount".to_owned(), format!("{}.50", index % 1000)),
            ("currency".to_owned(), "EUR".to_owned()),
        ],
        ..AuditEvent::default()
    }
}

fn event_json(event: &AuditEvent) -> Value {
    json!({
        "event_id": event.event_id, "tenant_id": event.tenant_id, "occurred_at": event.occurred_at,
        "action": event.action, "actor": {"id": event.actor.id, "type": "SERVICE"},
        "resource": {"type": event.resource.kind, "id": event.resource.id},
        "outcome": {"status": "SUCCESS"}, "correlation_id": event.correlation_id,
        "attributes": {"amount": event.attributes[0].1, "currency": "EUR"}
    })
}

pub(crate) fn bar(what: &str, len: usize) -> anyhow::Result<ProgressBar> {
    Ok(
        ProgressBar::new(len as u64).with_style(ProgressStyle::with_template(&format!(
            "  {what} {{bar:30}} {{pos}}/{{len}} events"
        ))?),
    )
}

/// Serves the ingest edge in process, then sends `events` through it and `events` to Kafka.
pub async fn measure(args: IngestBench) -> anyhow::Result<IngestReport> {
    anyhow::ensure!(
        args.events > 0 && (1..=1000).contains(&args.batch) && args.concurrency > 0 && args.tenants > 0,
        "--events, --concurrency and --tenants must be positive, --batch between 1 and 1000"
    );
    let mut clickhouse = args.clickhouse.clone();
    wait_for_clickhouse(&clickhouse, Duration::from_secs(30)).await?;
    ClickHouseSettings::BENCH_DATABASE.clone_into(&mut clickhouse.database);
    apply_migrations(&clickhouse).await?;
    sealtrail_kafka::wait_for_broker(&args.kafka, args.kafka_connect_timeout).await?;
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let topic = format!("bench-ingest-{run}");
    sealtrail_kafka::ensure_topics(&args.kafka, &[sealtrail_kafka::TopicSpec::new(&topic, 4)]).await?;
    let url = serve_edge(&args, &clickhouse, &topic).await?;
    let keys = KeyStore::new(clickhouse.client());
    let mut credentials = Vec::new();
    for tenant in 0..args.tenants {
        let tenant = format!("bench-ingest-{tenant}");
        let key = keys.create(&tenant, Role::Producer, "bench-ingest").await?.key;
        credentials.push((tenant, key));
    }
    let now_ms = sealtrail_clickhouse::unix_ms(time::OffsetDateTime::now_utc());
    let (rest_per_second, rest_latency) = rest(&args, &url, &credentials, now_ms).await?;
    let grpc_stream_per_second = grpc::streams(&args, &url, &credentials, now_ms).await?;
    let (grpc_unary_per_second, grpc_latency) = grpc::unary(&args, &url, &credentials, now_ms).await?;
    let emitter = AuditEmitter::connect(&args.kafka, &args.registry, &topic).await?;
    let (direct_per_second, direct_latency) = direct(&args, &emitter, &credentials, now_ms).await?;
    Ok(IngestReport {
        rest_per_second,
        rest_latency,
        grpc_stream_per_second,
        grpc_unary_per_second,
        grpc_latency,
        direct_per_second,
        direct_latency,
    })
}

async fn serve_edge(args: &IngestBench, clickhouse: &ClickHouseSettings, topic: &str) -> anyhow::Result<String> {
    let emitter = AuditEmitter::connect(&args.kafka, &args.registry, topic).await?;
    let unlimited = RateLimit {
        per_second: 1e9,
        burst: u32::MAX,
    };
    let app = router(ApiConfig {
        metrics: sealtrail_runtime::Metrics::new("ingest"),
        routes: ServedRoutes::Ingest,
        ingest: IngestSettings {
            quotas: QuotaSettings {
                default: unlimited,
                ..QuotaSettings::default()
            },
            ..IngestSettings::default()
        },
        client_identities: sealtrail_api::auth::client_certs::ClientIdentities::default(),
        clickhouse: clickhouse.clone(),
        jwt: JwtVerifier::new(None, None)?,
        tokenizer: None,
        recorder: AccessRecorder::new(emitter),
        rate_limit: unlimited,
        webhooks: sealtrail_api::webhooks::WebhookSettings::default(),
        trusted_keys: Vec::new(),
        exports: None,
    })
    .await?;
    serve_in_process(app).await
}

/// Batches of `args.batch` events, `args.concurrency` requests at once, tenants in turn.
async fn rest(
    args: &IngestBench,
    url: &str,
    credentials: &[(String, String)],
    now_ms: i64,
) -> anyhow::Result<(f64, Latencies)> {
    let http = reqwest::Client::new();
    let requests: Vec<(usize, String)> = (0..args.events.div_ceil(args.batch))
        .map(|request| {
            let (tenant, _) = &credentials[request % credentials.len()];
            let size = args.batch.min(args.events - request * args.batch);
            let events: Vec<Value> = (0..size)
                .map(|i| event_json(&event(tenant, request * args.batch + i, now_ms)))
                .collect();
            (request % credentials.len(), Value::Array(events).to_string())
        })
        .collect();
    let progress = bar("REST batches through the edge", args.events)?;
    let started = Instant::now();
    let samples: Vec<anyhow::Result<f64>> = futures::stream::iter(requests)
        .map(|(credential, body)| {
            let (tenant, key) = &credentials[credential];
            let request = http
                .post(format!("{url}/v1/ingest/events"))
                .bearer_auth(key)
                .header("x-tenant-id", tenant)
                .header("content-type", "application/json")
                .body(body);
            let progress = progress.clone();
            async move {
                let sent = Instant::now();
                let answer: Value = request.send().await?.error_for_status()?.json().await?;
                let accepted = answer["accepted"].as_u64().unwrap_or_default();
                anyhow::ensure!(answer["rejected"] == 0, "the edge rejected events: {answer}");
                progress.inc(accepted);
                Ok(sent.elapsed().as_secs_f64() * 1000.0)
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    let samples = samples.into_iter().collect::<anyhow::Result<Vec<f64>>>()?;
    #[expect(clippy::cast_precision_loss, reason = "event counts are far below 2^52")]
    Ok((args.events as f64 / elapsed, Latencies::of(samples)))
}

/// The same number of events, queued to Kafka as fast as the producer takes them.
async fn direct(
    args: &IngestBench,
    emitter: &AuditEmitter,
    credentials: &[(String, String)],
    now_ms: i64,
) -> anyhow::Result<(f64, Latencies)> {
    let events: Vec<AuditEvent> = (0..args.events)
        .map(|index| event(&credentials[(index / args.batch) % credentials.len()].0, index, now_ms))
        .collect();
    let progress = bar("the same events produced directly", args.events)?;
    let started = Instant::now();
    let mut pending = futures::stream::FuturesUnordered::new();
    for event in &events {
        let queued = Instant::now();
        let delivery = emitter.enqueue(event)?;
        pending.push(async move {
            acknowledged(delivery)
                .await
                .map(|_| queued.elapsed().as_secs_f64() * 1000.0)
        });
    }
    let mut samples = Vec::with_capacity(args.events);
    while let Some(acknowledged) = pending.next().await {
        samples.push(acknowledged?);
        progress.inc(1);
    }
    let elapsed = started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    #[expect(clippy::cast_precision_loss, reason = "event counts are far below 2^52")]
    Ok((args.events as f64 / elapsed, Latencies::of(samples)))
}

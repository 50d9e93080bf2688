//! `sealtrail up --demo`: a realistic workload through the live pipeline, then proof that every
//! tenant's chain verifies from ClickHouse.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use indicatif::{ProgressBar, ProgressStyle};
use sealtrail_api::auth::Role;
use sealtrail_api::auth::api_keys::KeyStore;
use sealtrail_clickhouse::{ClickHouseSettings, VerifyRequest, verify_tenant};
use sealtrail_emit::generator::{Generated, Generator, Payload, Workload};
use sealtrail_emit::{AuditEmitter, acknowledged};
use sealtrail_kafka::KafkaSettings;
use sealtrail_local::{DataDir, Endpoints};

const DEMO_TENANTS: usize = 20;
/// How long the demo waits for the pipeline to store everything before reporting what it has.
const STORE_WITHIN: Duration = Duration::from_secs(300);

pub async fn run(endpoints: &Endpoints, data_dir: &DataDir, events: u64) -> anyhow::Result<()> {
    let now_ms = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    // A prefix per run keeps this demo's tenants apart from earlier runs on the same data.
    let run = u64::try_from(now_ms / 1000 % 100_000).unwrap_or_default();
    let prefix = format!("demo{run}-");
    eprintln!(
        "demo: sending {events} audit records for {DEMO_TENANTS} tenants (prefix {prefix}), 1% malformed on purpose"
    );
    let kafka = KafkaSettings::new(&endpoints.kafka_bootstrap);
    let emitter = AuditEmitter::connect(&kafka, &endpoints.schema_registry_url, "audit-events").await?;
    let mut generator = Generator::new(Workload {
        tenants: DEMO_TENANTS,
        bad_ratio: 0.01,
        seed: run,
        now_ms,
        tenant_prefix: prefix.clone(),
    });
    let bar = ProgressBar::new(events).with_style(ProgressStyle::with_template(
        "  {bar:40} {pos}/{len} acknowledged ({per_sec})",
    )?);
    let mut in_flight = FuturesUnordered::new();
    let mut good = 0_u64;
    for _ in 0..events {
        let delivery = match generator.next_record() {
            Generated::Good(event) => {
                good += 1;
                emitter.enqueue(&event)?
            }
            Generated::Bad { key, payload, .. } => {
                let bytes = match payload {
                    Payload::Bytes(bytes) => bytes,
                    Payload::Event(event) => emitter.encode(&event),
                };
                emitter.enqueue_raw(key.as_deref(), &bytes)?
            }
        };
        in_flight.push(acknowledged(delivery));
    }
    while let Some(result) = in_flight.next().await {
        result?;
        bar.inc(1);
    }
    bar.finish_and_clear();

    let clickhouse = ClickHouseSettings::new(&endpoints.clickhouse_url);
    let client = clickhouse.client();
    let started = Instant::now();
    let stored = loop {
        let stored: u64 = client
            .query("SELECT count() FROM events WHERE startsWith(tenant_id, ?)")
            .bind(&prefix)
            .fetch_one()
            .await
            .context("counting the demo's events in ClickHouse")?;
        if stored >= good || started.elapsed() > STORE_WITHIN {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // The newest events are signed at the next checkpoint; give it its interval.
    tokio::time::sleep(Duration::from_secs(3)).await;
    eprintln!(
        "demo: {good} good events sent, {stored} sealed into ClickHouse in {:.1}s; {} malformed records went to the DLQ",
        started.elapsed().as_secs_f64(),
        events - good
    );
    let trusted = sealtrail_runtime::keys::load_trusted(&data_dir.root().join("keys/trusted"))?;
    let mut verified = 0;
    for tenant in generator.tenant_ids() {
        let request = VerifyRequest {
            tenant: tenant.clone(),
            from: None,
            to: None,
        };
        match verify_tenant(&clickhouse, &request, &trusted).await {
            Ok(report) if report.events > 0 => {
                verified += 1;
                eprintln!(
                    "  {tenant}: {} events verified, chain signed through sequence {}",
                    report.events, report.signed_through
                );
            }
            Ok(_) => {}
            Err(error) => eprintln!("  {tenant}: VERIFICATION FAILED: {error}"),
        }
    }
    let tenant = &generator.tenant_ids()[0];
    eprintln!("demo: {verified} tenant chains verified from ClickHouse; try `sealtrail verify --tenant {tenant}`");
    if let Some(api_url) = &endpoints.api_url {
        let key = KeyStore::new(clickhouse.client())
            .create(tenant, Role::Auditor, "demo")
            .await
            .context("creating the demo API key")?;
        eprintln!(
            "demo: the API serves {api_url}; an auditor key for tenant {tenant}, shown once:\n  {}\n  try: curl -s -H 'Authorization: Bearer {}' '{api_url}/v1/events?limit=3'",
            key.key, key.key
        );
    }
    Ok(())
}

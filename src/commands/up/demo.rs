//! `sealtrail up --demo`: a realistic workload through the live pipeline, then proof that every
//! tenant's chain verifies from ClickHouse.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use sealtrail_api::auth::Role;
use sealtrail_api::auth::api_keys::KeyStore;
use sealtrail_clickhouse::{ClickHouseSettings, VerifyRequest, verify_tenant};
use sealtrail_emit::generator::{Generator, Workload};
use sealtrail_emit::{AuditEmitter, Destination, send_workload};
use sealtrail_local::{DataDir, Endpoints};

const DEMO_TENANTS: usize = 20;
/// How long the demo waits for the pipeline to store everything before reporting what it has.
const STORE_WITHIN: Duration = Duration::from_secs(300);

pub async fn run(endpoints: &Endpoints, data_dir: &DataDir, raw_topic: &str, events: u64) -> anyhow::Result<()> {
    let now_ms = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    // A prefix per run keeps this demo's tenants apart from earlier runs on the same data.
    let run = u64::try_from(now_ms / 1000 % 100_000).unwrap_or_default();
    let prefix = format!("demo{run}-");
    eprintln!(
        "demo: sending {events} audit records for {DEMO_TENANTS} tenants (prefix {prefix}), 1% malformed on purpose"
    );
    let kafka = endpoints.kafka()?;
    let emitter = AuditEmitter::connect(&kafka, &endpoints.registry()?, raw_topic).await?;
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
    let sent = send_workload(Destination::Kafka(&emitter), &mut generator, events, None, |_| {
        bar.inc(1);
    })
    .await?;
    bar.finish_and_clear();
    if let Some(failure) = &sent.first_failure {
        anyhow::bail!(
            "{} demo records were not acknowledged; the first: {failure}",
            sent.failed
        );
    }
    let good = sent.good();

    let clickhouse = endpoints.clickhouse()?;
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
        demo_api(endpoints, api_url, &clickhouse, tenant, data_dir).await?;
    }
    Ok(())
}

/// An auditor key to try the API with, and an export run through it.
async fn demo_api(
    endpoints: &Endpoints,
    api_url: &str,
    clickhouse: &ClickHouseSettings,
    tenant: &str,
    data_dir: &DataDir,
) -> anyhow::Result<()> {
    let keys = KeyStore::new(clickhouse.client());
    let key = keys
        .create(tenant, Role::Auditor, "demo")
        .await
        .context("creating the demo API key")?;
    // The stack's own CA, which curl does not know.
    let cacert = endpoints
        .get("SEALTRAIL_CA_FILE")
        .map(|ca| format!("--cacert {ca} "))
        .unwrap_or_default();
    eprintln!(
        "demo: the API serves {api_url}; an auditor key for tenant {tenant}, shown once:\n  {}\n  try: curl -s {cacert}-H 'Authorization: Bearer {}' '{api_url}/v1/events?limit=3'",
        key.key, key.key
    );
    let producer = keys
        .create(tenant, Role::Producer, "demo ingest")
        .await
        .context("creating the demo producer key")?;
    let ingest_url = endpoints.get("INGEST_URL").unwrap_or(api_url);
    demo_ingest(&endpoints.http_client()?, ingest_url, &producer.key, tenant).await?;
    let compliance = keys
        .create(tenant, Role::Compliance, "demo export")
        .await
        .context("creating the demo compliance key")?;
    demo_export(&endpoints.http_client()?, api_url, &compliance.key, tenant, data_dir).await?;
    // Browsers do not know the stack's CA either: say how to make them trust it.
    let trust = endpoints.get("SEALTRAIL_CA_FILE").map_or_else(String::new, |ca| {
        format!("\n  the page is served with the stack's own CA: import {ca} into the browser's authorities (or start `up --insecure`)")
    });
    eprintln!(
        "demo: the console: {api_url}/console/ ; sign in with the auditor key above, or this compliance key (exports, legal holds), shown once:\n  {}{trust}",
        compliance.key
    );
    Ok(())
}

/// Three events over the ingest edge, as a service without a Kafka client sends them.
async fn demo_ingest(http: &reqwest::Client, api_url: &str, key: &str, tenant: &str) -> anyhow::Result<()> {
    let now = time::OffsetDateTime::now_utc();
    let events: Vec<serde_json::Value> = ["user.login", "configuration.changed", "user.logout"]
        .iter()
        .map(|action| {
            serde_json::json!({
                "event_id": ulid::Ulid::new().to_string(), "tenant_id": tenant,
                "occurred_at": sealtrail_clickhouse::unix_ms(now), "action": action,
                "actor": {"id": "backoffice-php", "type": "SERVICE"},
                "resource": {"type": "account", "id": "acct-demo"}, "outcome": {"status": "SUCCESS"}
            })
        })
        .collect();
    let answer: serde_json::Value = http
        .post(format!("{api_url}/v1/ingest/events"))
        .bearer_auth(key)
        .header("x-tenant-id", tenant)
        .json(&events)
        .send()
        .await?
        .error_for_status()
        .context("sending the demo events to the ingest edge")?
        .json()
        .await?;
    eprintln!(
        "demo: the ingest edge ({api_url}/v1/ingest/events) took {} events over HTTPS, each acknowledged by Kafka before the answer",
        answer["accepted"]
    );
    Ok(())
}

/// An eDiscovery export through the API, as compliance would run it: queued, followed to the end,
/// downloaded, and left for `verify-export`.
async fn demo_export(
    http: &reqwest::Client,
    api_url: &str,
    key: &str,
    tenant: &str,
    data_dir: &DataDir,
) -> anyhow::Result<()> {
    let queued: serde_json::Value = http
        .post(format!("{api_url}/v1/exports"))
        .bearer_auth(key)
        .json(&serde_json::json!({"scope": {}}))
        .send()
        .await?
        .error_for_status()
        .context("queueing the demo export")?
        .json()
        .await?;
    let export_id = queued["export_id"].as_str().unwrap_or_default().to_owned();
    let started = Instant::now();
    let status = loop {
        let status: serde_json::Value = http
            .get(format!("{api_url}/v1/exports/{export_id}"))
            .bearer_auth(key)
            .send()
            .await?
            .json()
            .await?;
        if status["state"] == "done" || status["state"] == "failed" {
            break status;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the demo export {export_id} is still {} after 120 s; see the export processor's log",
            status["state"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if status["state"] != "done" {
        eprintln!("demo: the export {export_id} FAILED: {}", status["error"]);
        return Ok(());
    }
    let tar = http
        .get(format!("{api_url}/v1/exports/{export_id}/artifact"))
        .bearer_auth(key)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let path = data_dir.root().join(format!("{export_id}.tar"));
    std::fs::write(&path, &tar).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "demo: exported tenant {tenant} through the API ({} events, {} KiB) in {:.1}s to {}\n  check it offline: sealtrail verify-export {} --public-key {}",
        status["result"]["event_count"],
        tar.len() / 1024,
        started.elapsed().as_secs_f64(),
        path.display(),
        path.display(),
        data_dir.root().join("signing-key.pub").display()
    );
    Ok(())
}

//! Starting the pipeline on the local stack: keys, topics, and the supervised processors and API.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use sealtrail_local::{DataDir, Endpoints, StackIdentity, StackPorts, SupervisedProcessor};

use super::{LOCAL_PARTITIONS, Security, Stack, api_url, default_topics, pipeline_env};
use crate::commands::{reshard, topics};
use crate::settings::TopicArgs;

/// Static membership for the seal, sink and monitor instances: a restarted instance takes its partitions
/// back at once, under the same id. (Tansu never expires a dead dynamic member, so without it a
/// killed processor's partitions would stay stuck.)
fn instance_env(command: &str, instance: u16) -> Vec<(String, String)> {
    match command {
        "seal" => vec![("SEAL_INSTANCE_ID".to_owned(), format!("seal-{instance}"))],
        "sink" => vec![("SINK_INSTANCE_ID".to_owned(), format!("sink-{instance}"))],
        // Without it a monitor killed with its broker left a dead member that held up the
        // restarted stack's groups (tests/it/outbox.rs).
        "monitor" => vec![("MONITOR_INSTANCE_ID".to_owned(), format!("monitor-{instance}"))],
        _ => Vec::new(),
    }
}

/// The environment of one process of the pipeline, and the URL of its `/metrics`.
fn process_env(
    command: &str,
    instance: u16,
    common: &[(String, String)],
    security: &Security<'_>,
    ports: StackPorts,
    metrics_ports: &mut Vec<u16>,
) -> anyhow::Result<(Vec<(String, String)>, String)> {
    let mut env = common.to_vec();
    env.extend(instance_env(command, instance));
    // The ingest edge is the API's other face: its Kafka, registry and TLS identity are the API's,
    // but it logs in to ClickHouse as its own user, which reads API keys and nothing else.
    let identity_of = if command == "ingest" { "api" } else { command };
    if let Some(identity) = StackIdentity::of_command(identity_of) {
        env.extend(security.env(identity));
    }
    // Each component logs in to ClickHouse as its own user, with only the grants it needs.
    if let Some((component, password_file)) = security
        .access
        .component_password_files
        .iter()
        .find(|(component, _)| component.process() == command)
    {
        env.push(("CLICKHOUSE_USER".to_owned(), component.user().to_owned()));
        env.push((
            "CLICKHOUSE_PASSWORD_FILE".to_owned(),
            password_file.display().to_string(),
        ));
    }
    if identity_of != "api" {
        // Kept across restarts of the processor, so the URL in endpoints.env stays right. None of
        // these processes listens yet, so the system could offer the API's port or another's.
        let port = ports
            .free_internal_port(metrics_ports)
            .context("cannot find a free loopback port for a processor's metrics")?;
        metrics_ports.push(port);
        env.push(("SEALTRAIL_METRICS_ADDR".to_owned(), format!("127.0.0.1:{port}")));
        return Ok((env, format!("http://127.0.0.1:{port}/metrics")));
    }
    let port = if command == "api" { ports.api } else { ports.ingest };
    env.push(("API_LISTEN".to_owned(), format!("127.0.0.1:{port}")));
    if let Some(secured) = security.stack {
        let files = secured.server_files();
        env.push(("TLS_CERT_FILE".to_owned(), files.cert.display().to_string()));
        env.push(("TLS_KEY_FILE".to_owned(), files.key.display().to_string()));
    }
    // The API and the edge serve /metrics on their own ports.
    Ok((env, format!("{}/metrics", api_url(security, port))))
}

/// Makes the keys and topics, and starts the seal, sink, monitor, export and retention processors, the
/// API and the ingest edge; returns the `/metrics` URLs of all of them.
pub(super) async fn start_pipeline(
    stack: &mut Stack,
    data_dir: &DataDir,
    endpoints: &Endpoints,
    ports: StackPorts,
    security: &Security<'_>,
    instances: u16,
) -> anyhow::Result<(Vec<String>, TopicArgs)> {
    let keys = sealtrail_runtime::keys::init_key_dir(&data_dir.root().join("keys"))?;
    // Verifiers of exports and checkpoints take the active public key from here.
    let public_key = keys.trusted.join(format!("{}.pub", keys.key_id));
    let published = data_dir.root().join("signing-key.pub");
    std::fs::copy(&public_key, &published)
        .with_context(|| format!("cannot publish {} as {}", public_key.display(), published.display()))?;
    if keys.created {
        eprintln!(
            "created the checkpoint signing key (key id {}) and tokenization key in {}",
            keys.key_id,
            data_dir.root().join("keys").display()
        );
    }
    let kafka = match security.stack {
        Some(secured) => secured.kafka_settings(&endpoints.kafka_bootstrap, StackIdentity::Operator)?,
        None => sealtrail_kafka::KafkaSettings::new(&endpoints.kafka_bootstrap),
    };
    sealtrail_kafka::ensure_topics(
        &kafka,
        &topics::specs(&default_topics(), LOCAL_PARTITIONS, topics::RAW_RETENTION_HOURS),
    )
    .await?;
    // After a `sealtrail reshard`, the processors run on the newest layout's topics.
    let topics = {
        let (kafka, trusted) = (kafka.clone(), keys.trusted.clone());
        sealtrail_runtime::run_blocking(move || reshard::current_topics(&kafka, &default_topics(), &trusted)).await??
    };
    if topics.raw_topic != default_topics().raw_topic {
        eprintln!(
            "the pipeline was resharded: its processors run on {} -> {} (DLQ {})",
            topics.raw_topic, topics.sealed_topic, topics.dlq_topic
        );
    }
    let launcher =
        std::env::current_exe().context("cannot locate the sealtrail executable to launch the processors")?;
    let mut env = vec![
        ("KAFKA_BOOTSTRAP".to_owned(), endpoints.kafka_bootstrap.clone()),
        ("SCHEMA_REGISTRY_URL".to_owned(), endpoints.schema_registry_url.clone()),
        ("CLICKHOUSE_URL".to_owned(), endpoints.clickhouse_url.clone()),
    ];
    env.extend(pipeline_env(data_dir, &topics));
    // Webhooks to loopback and private addresses stay refused here too: the API shares this
    // machine with ClickHouse and every component (SEALTRAIL_WEBHOOKS_ALLOW_PRIVATE opts in).
    let mut metrics_urls = Vec::new();
    let mut metrics_ports = Vec::new();
    // Where each seal and sink instance says whether it holds partitions (`/readyz`).
    let mut consuming: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (command, what, copies) in [
        ("seal", "the seal processor", instances),
        ("sink", "the ClickHouse sink", instances),
        ("monitor", "the integrity monitor", 1),
        ("export", "the export processor", 1),
        ("retention", "the retention processor", 1),
        ("api", "the query API", 1),
        ("ingest", "the ingest edge", 1),
    ] {
        for instance in 0..copies {
            let name = if instance == 0 {
                command.to_owned()
            } else {
                format!("{command}-{instance}")
            };
            eprintln!(
                "starting {what}{}",
                if copies > 1 {
                    format!(" {instance}")
                } else {
                    String::new()
                }
            );
            let (own_env, metrics_url) = process_env(command, instance, &env, security, ports, &mut metrics_ports)?;
            if matches!(command, "seal" | "sink") {
                consuming
                    .entry(what)
                    .or_default()
                    .push(metrics_url.replace("/metrics", "/readyz"));
            }
            metrics_urls.push(metrics_url);
            let mut processor = SupervisedProcessor::new(name, command, what, &launcher, own_env);
            processor.start(data_dir)?;
            stack.processors.push(processor);
        }
    }
    wait_for_api(&api_url(security, ports.api), &security.trust()).await?;
    wait_for_api(&api_url(security, ports.ingest), &security.trust()).await?;
    for (what, urls) in &consuming {
        wait_for_partitions(what, urls, &security.trust()).await?;
    }
    Ok((metrics_urls, topics))
}

/// How long `up` waits for the seal and the sink to be ready.
const READY_WITHIN: Duration = Duration::from_secs(600);

/// Waits until one instance of a consumer holds partitions (its `/readyz` answers 200 from its
/// first assignment on, once it has recovered them). Until then the group is forming and nothing
/// produced is sealed or stored: "sealtrail is up" printed before it left a producer's first
/// events waiting 5-7 s. A seal recovering a large sealed topic takes its time: the bound is
/// generous.
async fn wait_for_partitions(what: &str, urls: &[String], trust: &sealtrail_http::TrustSettings) -> anyhow::Result<()> {
    let client = trust.http_client()?.build()?;
    let started = std::time::Instant::now();
    let mut told = false;
    loop {
        for url in urls {
            if answers_ready(&client, url).await {
                return Ok(());
            }
        }
        anyhow::ensure!(
            started.elapsed() < READY_WITHIN,
            "{what} was not ready within {} s: its group did not hand it partitions, or it is still recovering them ({}); see its log under the data directory's logs/",
            READY_WITHIN.as_secs(),
            urls.join(", ")
        );
        if !told && started.elapsed() >= Duration::from_secs(15) {
            told = true;
            eprintln!("waiting for {what} to hold partitions (its group is forming, or it recovers them from Kafka)");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether `readyz` answers 200 within 2 s.
async fn answers_ready(client: &reqwest::Client, readyz: &str) -> bool {
    client
        .get(readyz)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .is_ok_and(|response| response.status().is_success())
}

/// The API answers `/readyz` once it reaches Kafka, the registry and ClickHouse.
async fn wait_for_api(url: &str, trust: &sealtrail_http::TrustSettings) -> anyhow::Result<()> {
    let client = trust.http_client()?.build()?;
    let started = std::time::Instant::now();
    loop {
        if answers_ready(&client, &format!("{url}/readyz")).await {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(90),
            "the API did not become ready at {url} within 90 s; see its log under the data directory's logs/"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

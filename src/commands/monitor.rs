//! `sealtrail monitor`: verifies every checkpoint of the sealed topic as it lands and sweeps the
//! ClickHouse projection against it (`sealtrail_monitor`). Each incident is sealed into the trail
//! as `integrity.incident` (the tenant's, or the platform tenant's) and sent to that tenant's
//! `integrity.incident` webhooks.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sealtrail_api::webhooks::{WebhookSettings, Webhooks};
use sealtrail_clickhouse::{apply_migrations, wait_for_clickhouse};
use sealtrail_core::alerting::{ALERT_ACTION, MONITOR_ACTOR, SecurityAlert};
use sealtrail_core::event::{Actor, ActorType, AuditEvent, Outcome, OutcomeStatus};
use sealtrail_core::witness::WitnessKey;
use sealtrail_emit::{AuditEmitter, platform_event};
use sealtrail_monitor::{AlertRulesFile, Incident, IncidentSink, MonitorConfig, WitnessTarget};
use sealtrail_runtime::{RegistryClient, SealedReaders, StopSignal, run_blocking};
use serde_json::json;

use crate::settings::{ClickHouseArgs, KafkaArgs, KeyArgs, MetricsArgs, RegistryUrlArgs, TopicArgs};

#[derive(Debug, clap::Args)]
pub struct MonitorArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryUrlArgs,
    #[command(flatten)]
    topics: TopicArgs,
    #[command(flatten)]
    clickhouse: ClickHouseArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    /// The trusted keys verify checkpoints; the tokenization key derives webhook secrets.
    #[command(flatten)]
    keys: KeyArgs,
    /// The monitor's own consumer group.
    #[arg(long, env = "MONITOR_GROUP", default_value = "sealtrail-monitor")]
    group: String,
    #[arg(long, env = "MONITOR_INSTANCE_ID")]
    instance_id: Option<String>,
    /// Seconds between sweeps of the ClickHouse projection.
    #[arg(long, env = "MONITOR_SWEEP_SECS", default_value_t = 10)]
    sweep_secs: u64,
    /// Sealed offsets per fingerprinted stretch of the projection.
    #[arg(long, env = "MONITOR_BUCKET_OFFSETS", default_value_t = 5000)]
    bucket_offsets: u64,
    /// The tenant whose trail and webhooks receive incidents that concern no one tenant (a
    /// checkpoint, a stray row).
    #[arg(long, env = "SEALTRAIL_PLATFORM_TENANT", default_value = "sealtrail.platform")]
    platform_tenant: String,
    /// A witness to send every verified checkpoint to, as `URL=VKEY_FILE` (its base URL and its
    /// verifier key file, `witness.vkey` of its state directory); repeatable, or comma-separated.
    #[arg(long = "witness", env = "MONITOR_WITNESSES", value_delimiter = ',')]
    witnesses: Vec<String>,
    /// The log's name in the checkpoints' note origins; the witnesses must use the same.
    #[arg(long, env = "SEALTRAIL_LOG_ORIGIN", default_value = "sealtrail.local/audit")]
    log_origin: String,
    /// Security alert rules: a TOML file of `[defaults]` and `[tenants.<id>]` tables
    /// (docs/security-alerts.md); tenant administrators' rules set through the API take precedence.
    #[arg(long, env = "SEALTRAIL_ALERT_RULES")]
    alert_rules: Option<PathBuf>,
    /// Let webhooks target loopback and private addresses (local stacks only).
    #[arg(long, env = "SEALTRAIL_WEBHOOKS_ALLOW_PRIVATE")]
    webhooks_allow_private: bool,
    /// A CA (PEM) webhook receivers may chain to, besides the system's roots.
    #[arg(long, env = "SEALTRAIL_CA_FILE")]
    ca_file: Option<PathBuf>,
}

/// `URL=VKEY_FILE` as a witness to submit to.
fn witness_target(spec: &str) -> anyhow::Result<WitnessTarget> {
    let (url, file) = spec
        .split_once('=')
        .with_context(|| format!("--witness {spec}: give URL=VKEY_FILE"))?;
    let text = std::fs::read_to_string(file).with_context(|| format!("--witness {spec}: cannot read {file}"))?;
    let key = WitnessKey::parse(&text).with_context(|| format!("--witness {spec}: {file}"))?;
    Ok(WitnessTarget {
        url: url.to_owned(),
        key,
    })
}

/// Seals incidents into the trail and tells the webhooks, off the monitor's thread.
struct TrailAndWebhooks {
    runtime: tokio::runtime::Handle,
    emitter: Arc<AuditEmitter>,
    webhooks: Webhooks,
    platform_tenant: String,
}

impl IncidentSink for TrailAndWebhooks {
    fn raise(&self, incident: &Incident) {
        let tenant = incident.tenant.clone().unwrap_or_else(|| self.platform_tenant.clone());
        let coordinates = format!(
            "{}/{}/{}",
            incident.layout_epoch, incident.sealed_partition, incident.sealed_offset
        );
        let actor = Actor {
            id: "sealtrail-monitor".to_owned(),
            kind: ActorType::System,
            display_name: None,
            authority: None,
            on_behalf_of: None,
        };
        let correlation = ulid::Ulid::new().to_string();
        let event = AuditEvent {
            outcome: Outcome {
                status: OutcomeStatus::Failure,
                reason_code: Some(incident.kind.label().to_owned()),
                reason_text: Some(incident.detail.clone()),
            },
            ..platform_event(
                &tenant,
                time::OffsetDateTime::now_utc(),
                "integrity.incident",
                actor,
                ("sealed_record", &coordinates),
                &correlation,
                vec![
                    ("source".to_owned(), "monitor".to_owned()),
                    ("kind".to_owned(), incident.kind.label().to_owned()),
                ],
            )
        };
        let data = json!({
            "source": "monitor",
            "kind": incident.kind.label(),
            "layout_epoch": incident.layout_epoch,
            "sealed_partition": incident.sealed_partition,
            "sealed_offset": incident.sealed_offset,
            "detail": incident.detail,
        });
        self.seal_and_notify(tenant, event, "integrity.incident", data);
    }

    fn security_alert(&self, alert: &SecurityAlert) {
        let actor = Actor {
            id: MONITOR_ACTOR.to_owned(),
            kind: ActorType::System,
            display_name: None,
            authority: None,
            on_behalf_of: None,
        };
        let event = AuditEvent {
            outcome: Outcome {
                status: OutcomeStatus::Success,
                reason_code: Some(alert.rule.name().to_owned()),
                reason_text: Some(alert.detail.clone()),
            },
            ..platform_event(
                &alert.tenant,
                time::OffsetDateTime::now_utc(),
                ALERT_ACTION,
                actor,
                ("security_rule", alert.rule.name()),
                &alert.trigger_event_id,
                vec![
                    ("rule".to_owned(), alert.rule.name().to_owned()),
                    ("trigger_event_id".to_owned(), alert.trigger_event_id.clone()),
                    ("trigger_seq".to_owned(), alert.trigger_seq.to_string()),
                    ("actor".to_owned(), alert.actor.clone()),
                    ("count".to_owned(), alert.count.to_string()),
                ],
            )
        };
        let data = json!({
            "rule": alert.rule.name(),
            "actor": alert.actor,
            "trigger_event_id": alert.trigger_event_id,
            "trigger_seq": alert.trigger_seq,
            "count": alert.count,
            "detail": alert.detail,
        });
        self.seal_and_notify(alert.tenant.clone(), event, ALERT_ACTION, data);
    }
}

impl TrailAndWebhooks {
    /// Seals `event` and tells the tenant's `kind` webhooks, off the monitor's thread.
    fn seal_and_notify(&self, tenant: String, event: AuditEvent, kind: &'static str, data: serde_json::Value) {
        let (emitter, webhooks) = (Arc::clone(&self.emitter), self.webhooks.clone());
        self.runtime.spawn(async move {
            if let Err(error) = emitter.emit(&event).await {
                tracing::error!(%error, %tenant, kind, "the monitor's finding could not be sealed");
            }
            webhooks.notify(&tenant, kind, data).await;
        });
    }
}

pub async fn run(args: MonitorArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        sealtrail_core::validate::is_valid_tenant_id(&args.platform_tenant),
        "SEALTRAIL_PLATFORM_TENANT must be a tenant id (^[a-z0-9][a-z0-9._-]{{0,62}}$)"
    );
    anyhow::ensure!(
        args.sweep_secs > 0 && args.bucket_offsets > 0,
        "MONITOR_SWEEP_SECS and MONITOR_BUCKET_OFFSETS must be positive"
    );
    let trust = sealtrail_http::TrustSettings {
        ca_file: args.ca_file.clone(),
    };
    trust.client_config()?;
    let witnesses = args
        .witnesses
        .iter()
        .filter(|spec| !spec.is_empty())
        .map(|spec| witness_target(spec))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let http = trust.http_client()?.build()?;
    let alert_rules = match &args.alert_rules {
        Some(path) => AlertRulesFile::read(path).map_err(anyhow::Error::msg)?,
        None => AlertRulesFile::default(),
    };
    let metrics = args.metrics.start("monitor").await?;
    metrics.set_not_ready("waiting for the broker, ClickHouse and a partition assignment");
    let kafka = args.kafka.settings();
    let clickhouse = args.clickhouse.settings()?;
    sealtrail_kafka::wait_for_broker(&kafka, args.kafka.connect_timeout()).await?;
    wait_for_clickhouse(&clickhouse, Duration::from_secs(60)).await?;
    apply_migrations(&clickhouse).await?;
    let trusted = sealtrail_runtime::keys::load_trusted(&args.keys.trusted_keys()).context(
        "the monitor verifies checkpoints with the trusted keys: set SEALTRAIL_TRUSTED_KEYS or SEALTRAIL_KEY_DIR",
    )?;
    let master_key = sealtrail_runtime::keys::load_tokenization_key(&args.keys.tokenization_key())
        .context("the monitor signs webhooks with secrets derived from the tokenization key: set SEALTRAIL_TOKENIZATION_KEY or SEALTRAIL_KEY_DIR")?;
    let emitter = AuditEmitter::connect(&kafka, &args.registry.connection()?, &args.topics.raw_topic)
        .await
        .context("the monitor seals its incidents into the trail, and cannot publish to it")?;
    let runtime = tokio::runtime::Handle::current();
    let registry = RegistryClient::new(&args.registry.connection()?, runtime.clone()).map_err(anyhow::Error::msg)?;
    let stop = StopSignal::new();
    stop.on_unix_signals();
    let (layout, handover) = {
        let (kafka, topics, keys) = (kafka.clone(), args.topics.clone(), args.keys.trusted_keys());
        let (registry, trusted, stop) = (registry.clone(), trusted.clone(), stop.clone());
        run_blocking(move || -> anyhow::Result<_> {
            let (history, layout) = super::reshard::sealed_history(&kafka, &topics, &keys)?;
            let reader = sealtrail_kafka::PartitionReader::new(&kafka, Duration::from_secs(30))?;
            let mut readers = SealedReaders::new(registry);
            let handover =
                sealtrail_seal::layouts::wait_for_handover(&reader, &mut readers, &history, &layout, &trusted, &stop)?;
            Ok((layout, handover))
        })
        .await??
    };
    let incidents = TrailAndWebhooks {
        runtime: runtime.clone(),
        emitter: Arc::new(emitter),
        webhooks: Webhooks::new(
            clickhouse.client(),
            WebhookSettings {
                key: Some(master_key),
                allow_private_targets: args.webhooks_allow_private,
                trust,
                ..WebhookSettings::default()
            },
        ),
        platform_tenant: args.platform_tenant,
    };
    let config = MonitorConfig {
        kafka,
        clickhouse,
        sealed_topic: layout.sealed_topic.clone(),
        layout_epoch: layout.epoch,
        partitions: layout.partitions,
        group: args.group,
        instance_id: args.instance_id,
        trusted,
        handover,
        sweep_every: Duration::from_secs(args.sweep_secs),
        bucket_offsets: args.bucket_offsets,
        witnesses,
        log_origin: args.log_origin,
        http,
        alert_rules,
        metrics,
    };
    let summary =
        run_blocking(move || sealtrail_monitor::run(config, &registry, Box::new(incidents), runtime, &stop)).await??;
    println!(
        "monitor stopped: {} sealed records read, {} checkpoints verified, {} stretches compared, {} incidents",
        summary.records, summary.checkpoints_verified, summary.buckets_compared, summary.incidents
    );
    Ok(())
}

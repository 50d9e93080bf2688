use std::time::Duration;

use anyhow::Context as _;
use sealtrail_core::policy::Policy;
use sealtrail_core::validate::Limits;
use sealtrail_runtime::{RegistryClient, StopSignal};
use sealtrail_seal::SealConfig;

use crate::settings::{KafkaArgs, KeyArgs, MetricsArgs, RegistryUrlArgs, TopicArgs};

#[derive(Debug, clap::Args)]
pub struct SealArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryUrlArgs,
    #[command(flatten)]
    topics: TopicArgs,
    #[command(flatten)]
    keys: KeyArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    /// Consumer group; run more instances in the same group to scale out.
    #[arg(long, env = "SEAL_GROUP", default_value = "sealtrail-seal")]
    group: String,
    /// A stable id per instance (for example the pod name of a StatefulSet): a restarted
    /// instance takes its partitions back at once instead of waiting for a rebalance.
    #[arg(long, env = "SEAL_INSTANCE_ID")]
    instance_id: Option<String>,
    /// Policy file (TOML); the policy shipped in schemas/policy.toml when absent.
    #[arg(long, env = "SEALTRAIL_POLICY")]
    policy: Option<std::path::PathBuf>,
    /// Checkpoint after this many sealed events per partition...
    #[arg(long, env = "SEAL_CHECKPOINT_EVERY", default_value_t = 1000)]
    checkpoint_every: usize,
    /// ...or after this many milliseconds with anything uncovered.
    #[arg(long, env = "SEAL_CHECKPOINT_INTERVAL_MS", default_value_t = 2000)]
    checkpoint_interval_ms: u64,
    /// Largest raw record accepted, in bytes.
    #[arg(long, env = "SEAL_MAX_RECORD_BYTES", default_value_t = 64 * 1024)]
    max_record_bytes: usize,
    /// Seconds within which a second event with the same (tenant, `idempotency_key`) is a producer
    /// retry, sent to the DLQ with reason `duplicate`; 0 turns this off. The window is rebuilt
    /// from the sealed topic at start, so its length is also how far back a restart reads.
    #[arg(long, env = "SEAL_IDEMPOTENCY_WINDOW_SECS", default_value_t = 600)]
    idempotency_window_secs: u64,
}

pub async fn run(args: SealArgs) -> anyhow::Result<()> {
    let policy = match &args.policy {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the policy file {}", path.display()))?;
            Policy::from_toml(&text).with_context(|| format!("policy file {}", path.display()))?
        }
        None => Policy::default_policy(),
    };
    let metrics = args.metrics.start("seal").await?;
    metrics.set_not_ready("waiting for the broker and a partition assignment");
    let kafka = args.kafka.settings();
    sealtrail_kafka::wait_for_broker(&kafka, args.kafka.connect_timeout()).await?;
    let config = SealConfig {
        kafka,
        raw_topic: args.topics.raw_topic,
        sealed_topic: args.topics.sealed_topic,
        dlq_topic: args.topics.dlq_topic,
        layout_topic: args.topics.layout_topic,
        group: args.group,
        instance_id: args.instance_id,
        signing_key: args.keys.signing_key(),
        tokenization_key: args.keys.tokenization_key(),
        trusted_keys: args.keys.trusted_keys(),
        policy,
        limits: Limits {
            max_record_bytes: args.max_record_bytes,
            ..Limits::default()
        },
        checkpoint_every: args.checkpoint_every.max(1),
        checkpoint_interval: Duration::from_millis(args.checkpoint_interval_ms),
        idempotency_window: Duration::from_secs(args.idempotency_window_secs),
        stop_after: None,
        metrics,
    };
    let stop = StopSignal::new();
    stop.on_unix_signals();
    let registry = RegistryClient::new(&args.registry.connection()?, tokio::runtime::Handle::current())
        .map_err(anyhow::Error::msg)?;
    let summary = sealtrail_runtime::run_blocking(move || sealtrail_seal::run(config, &registry, &stop)).await??;
    println!(
        "seal stopped: {} records, {} sealed, {} rejected to the DLQ, {} checkpoints",
        summary.records, summary.sealed, summary.rejected, summary.checkpoints
    );
    Ok(())
}

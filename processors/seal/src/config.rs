use std::path::PathBuf;
use std::time::Duration;

use sealtrail_core::policy::Policy;
use sealtrail_core::validate::Limits;
use sealtrail_kafka::KafkaSettings;
use sealtrail_runtime::Metrics;

/// Everything the seal processor needs.
#[derive(Debug, Clone)]
pub struct SealConfig {
    pub kafka: KafkaSettings,
    pub raw_topic: String,
    pub sealed_topic: String,
    pub dlq_topic: String,
    /// Where `sealtrail reshard` records layout changes; the processor finds its epoch there.
    pub layout_topic: String,
    pub group: String,
    /// Static group membership (`group.instance.id`): a restarted instance with the same id
    /// takes its partitions back at once, and fences a stale predecessor.
    pub instance_id: Option<String>,
    pub signing_key: PathBuf,
    pub tokenization_key: PathBuf,
    /// Public keys that may have signed the checkpoints found at recovery (the current key's
    /// public half and every earlier one).
    pub trusted_keys: PathBuf,
    pub policy: Policy,
    pub limits: Limits,
    pub checkpoint_every: usize,
    pub checkpoint_interval: Duration,
    /// A `(tenant, idempotency_key)` sealed within this long before is rejected as a duplicate
    /// (reason `duplicate`); zero turns deduplication off.
    pub idempotency_window: Duration,
    /// Stop after this many raw records have been handled (for benchmarks); `None` runs until
    /// stopped.
    pub stop_after: Option<u64>,
    pub metrics: Metrics,
}

use sealtrail_kafka::KafkaContext;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use sealtrail_kafka::{KafkaError, KafkaSettings, TopicSpec, ensure_topics, read_log_to_end};
use tokio::sync::{RwLock, RwLockReadGuard};

use crate::RegistryError;
use crate::log_record::LogEntry;
use crate::state::RegistryState;

/// How the registry reaches its log.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    pub kafka: KafkaSettings,
    /// The topic holding the registry's log; Confluent's registry uses the same default.
    pub topic: String,
}

impl RegistrySettings {
    pub const DEFAULT_TOPIC: &'static str = "_schemas";

    pub fn new(kafka: KafkaSettings) -> Self {
        Self {
            kafka,
            topic: Self::DEFAULT_TOPIC.to_owned(),
        }
    }
}

/// Why the registry could not start.
#[derive(Debug, thiserror::Error)]
pub enum RegistryStartError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(
        "record {partition}/{offset} of the registry log `{topic}` is not a registry record ({reason}); \
         point the registry at its own topic"
    )]
    CorruptLog {
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
    },
}

/// The running registry: its state and the producer that appends to its log.
///
/// Writes are serialized: a change is appended to the log and acknowledged before it is applied,
/// so what clients are told is always what a restart will rebuild. One instance writes the log.
pub struct RegistryService {
    state: RwLock<RegistryState>,
    producer: FutureProducer<KafkaContext>,
    topic: String,
}

impl std::fmt::Debug for RegistryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryService")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

const LOG_READ_TIMEOUT: Duration = Duration::from_secs(60);
const APPEND_TIMEOUT: Duration = Duration::from_secs(30);

impl RegistryService {
    /// Creates the log topic if needed and rebuilds the state from it.
    pub async fn start(settings: &RegistrySettings) -> Result<Arc<Self>, RegistryStartError> {
        ensure_topics(
            &settings.kafka,
            &[TopicSpec::new(&settings.topic, 1).with_config("cleanup.policy", "compact")],
        )
        .await?;
        let records = read_log_to_end(&settings.kafka, &settings.topic, LOG_READ_TIMEOUT).await?;
        let mut state = RegistryState::default();
        for record in &records {
            let corrupt = |reason: String| RegistryStartError::CorruptLog {
                topic: settings.topic.clone(),
                partition: record.partition,
                offset: record.offset,
                reason,
            };
            let Some(key) = &record.key else {
                return Err(corrupt("record without a key".to_owned()));
            };
            let entry = LogEntry::decode(key, record.value.as_deref()).map_err(|e| corrupt(e.to_string()))?;
            if let Some(entry) = entry {
                state.apply(&entry).map_err(corrupt)?;
            }
        }
        tracing::info!(topic = %settings.topic, records = records.len(), "schema registry state rebuilt");
        let producer: FutureProducer<KafkaContext> =
            settings
                .kafka
                .create(&settings.kafka.producer())
                .map_err(|source| KafkaError::Client {
                    bootstrap: settings.kafka.bootstrap.clone(),
                    source,
                })?;
        Ok(Arc::new(Self {
            state: RwLock::new(state),
            producer,
            topic: settings.topic.clone(),
        }))
    }

    pub(crate) async fn read(&self) -> RwLockReadGuard<'_, RegistryState> {
        self.state.read().await
    }

    /// Plans a change on the current state, appends it to the log, then applies it.
    pub(crate) async fn write<T>(
        &self,
        plan: impl FnOnce(&RegistryState) -> Result<(T, Vec<LogEntry>), RegistryError>,
    ) -> Result<T, RegistryError> {
        let mut state = self.state.write().await;
        let (answer, entries) = plan(&state)?;
        for entry in entries {
            self.append(&entry).await?;
            state
                .apply(&entry)
                .map_err(|reason| RegistryError::Store(format!("cannot apply an appended record: {reason}")))?;
        }
        Ok(answer)
    }

    async fn append(&self, entry: &LogEntry) -> Result<(), RegistryError> {
        let (key, value) = entry.encode();
        let mut record: FutureRecord<'_, Vec<u8>, Vec<u8>> = FutureRecord::to(&self.topic).key(&key);
        if let Some(value) = &value {
            record = record.payload(value);
        }
        self.producer
            .send(record, APPEND_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|(error, _)| RegistryError::Store(error.to_string()))
    }
}

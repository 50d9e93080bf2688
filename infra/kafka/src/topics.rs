use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use crate::{KafkaError, KafkaSettings};

/// A topic the stack needs, created if it does not exist.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub config: Vec<(String, String)>,
}

impl TopicSpec {
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        Self {
            name: name.into(),
            partitions,
            config: Vec::new(),
        }
    }

    #[must_use]
    pub fn with_config(mut self, key: &str, value: &str) -> Self {
        self.config.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// Waits until the broker answers a metadata request, or fails after `timeout`.
pub async fn wait_for_broker(settings: &KafkaSettings, timeout: Duration) -> Result<(), KafkaError> {
    // Refused connections are expected while a broker starts; they are not worth an error log.
    let consumer: BaseConsumer =
        settings
            .reader()
            .set("log_level", "0")
            .create()
            .map_err(|source| KafkaError::Client {
                bootstrap: settings.bootstrap.clone(),
                source,
            })?;
    let started = Instant::now();
    // librdkafka's metadata call blocks, so it runs off the async workers; each attempt is short
    // so the overall deadline is honoured even while the broker is still starting.
    let bootstrap = settings.bootstrap.clone();
    tokio::task::spawn_blocking(move || {
        loop {
            match consumer.fetch_metadata(None, Duration::from_secs(2)) {
                Ok(metadata) if !metadata.brokers().is_empty() => return Ok(()),
                Err(source) if started.elapsed() >= timeout => {
                    return Err(KafkaError::Unreachable {
                        bootstrap,
                        waited: started.elapsed(),
                        source,
                    });
                }
                Ok(_) | Err(_) => {}
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .expect("metadata probe does not panic")
}

/// Creates the topics that do not exist yet; existing topics are left as they are.
pub async fn ensure_topics(settings: &KafkaSettings, topics: &[TopicSpec]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = settings.base().create().map_err(|source| KafkaError::Client {
        bootstrap: settings.bootstrap.clone(),
        source,
    })?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|spec| {
            let mut topic = NewTopic::new(
                &spec.name,
                spec.partitions,
                TopicReplication::Fixed(settings.replication_factor),
            );
            for (key, value) in &spec.config {
                topic = topic.set(key, value);
            }
            topic
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(|source| KafkaError::CreateTopic {
            topic: topics.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", "),
            reason: source.to_string(),
        })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::CreateTopic {
                    topic,
                    reason: code.to_string(),
                });
            }
        }
    }
    Ok(())
}

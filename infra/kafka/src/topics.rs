use std::time::{Duration, Instant};

use crate::KafkaContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
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

/// Remembers the last error librdkafka reported, and its last failure log line (where it names a
/// connection cut in the handshake), so a refusal can be named; prints neither (refused
/// connections are expected while a broker starts).
#[derive(Debug, Default)]
struct LastError {
    last: std::sync::Mutex<Option<(RDKafkaErrorCode, String)>>,
    tokens: crate::oauth::OAuthTokens,
}

impl LastError {
    fn set(&self, code: RDKafkaErrorCode, reason: &str) {
        *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((code, reason.to_owned()));
    }
}

impl rdkafka::ClientContext for LastError {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
        self.tokens.generate()
    }

    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        if facility == "FAIL" {
            self.set(RDKafkaErrorCode::BrokerTransportFailure, message);
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        let code = error.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Unknown);
        // "n/n brokers are down" says less than the failure logged before it.
        if code != RDKafkaErrorCode::AllBrokersDown {
            self.set(code, reason);
        }
    }
}

impl rdkafka::consumer::ConsumerContext for LastError {}

impl crate::RefreshesTokens for LastError {
    fn oauth_tokens(&self) -> &crate::oauth::OAuthTokens {
        &self.tokens
    }
}

/// True when librdkafka's reason says the broker cut the connection during the handshake, not that
/// nothing listens.
fn refused_in_handshake(reason: &str) -> bool {
    ["security.protocol", "ApiVersion", "SSL", "SASL"]
        .iter()
        .any(|sign| reason.contains(sign))
}

/// Waits until the broker answers a metadata request, or fails after `timeout`. A broker that
/// refuses the credentials or the TLS handshake fails at once, saying why.
pub async fn wait_for_broker(settings: &KafkaSettings, timeout: Duration) -> Result<(), KafkaError> {
    let client = |source| KafkaError::Client {
        bootstrap: settings.bootstrap.clone(),
        source,
    };
    let context = LastError {
        tokens: settings.oauth_tokens().map_err(client)?,
        ..LastError::default()
    };
    let consumer: BaseConsumer<LastError> = settings
        .create_with_context(&settings.reader(), context)
        .map_err(client)?;
    let started = Instant::now();
    // librdkafka's metadata call blocks, so it runs off the async workers; each attempt is short
    // so the overall deadline is honoured even while the broker is still starting.
    let bootstrap = settings.bootstrap.clone();
    let credentials = settings.credential_properties();
    tokio::task::spawn_blocking(move || {
        loop {
            let attempt = consumer.fetch_metadata(None, Duration::from_secs(2));
            // Errors reach the context only when the client's queue is served.
            drop(consumer.poll(Duration::ZERO));
            let last = consumer
                .context()
                .last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            if let Some((code @ (RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SSL), reason)) = &last {
                return Err(KafkaError::Refused {
                    bootstrap,
                    reason: format!("{code}: {reason}"),
                    credentials,
                });
            }
            match attempt {
                Ok(metadata) if !metadata.brokers().is_empty() => return Ok(()),
                Err(source) if started.elapsed() >= timeout => {
                    return Err(match last {
                        // The broker answered but hung up in the handshake: librdkafka names it
                        // (a plaintext client at a TLS listener is cut off at `ApiVersion`).
                        Some((_, reason)) if refused_in_handshake(&reason) => KafkaError::Refused {
                            bootstrap,
                            reason,
                            credentials,
                        },
                        _ => KafkaError::Unreachable {
                            bootstrap,
                            waited: started.elapsed(),
                            source,
                        },
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
    let admin: AdminClient<KafkaContext> = settings.create(&settings.base()).map_err(|source| KafkaError::Client {
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

use std::time::Duration;

use rdkafka::error::KafkaError as ClientError;

/// Failures of the Kafka adapter, each naming the broker or topic involved.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error(
        "cannot reach the Kafka broker at {bootstrap} within {waited:?} ({source}); is it running? \
         (`sealtrail up` starts a local one)"
    )]
    Unreachable {
        bootstrap: String,
        waited: Duration,
        source: ClientError,
    },
    #[error(
        "the Kafka broker at {bootstrap} refused the connection ({reason}); check security.protocol, ssl.ca.location, sasl.mechanism, {credentials} in the client properties file (--kafka-config, KAFKA_CONFIG_FILE)"
    )]
    Refused {
        bootstrap: String,
        reason: String,
        /// The properties that hold this client's credentials.
        credentials: &'static str,
    },
    #[error("cannot create a Kafka client for {bootstrap}: {source}")]
    Client { bootstrap: String, source: ClientError },
    #[error("cannot create topic `{topic}`: {reason}")]
    CreateTopic { topic: String, reason: String },
    #[error("topic `{topic}` does not exist on the broker (or has no partitions)")]
    UnknownTopic { topic: String },
    #[error("consumer group membership: cannot {what}: {source}")]
    Group { what: String, source: ClientError },
    #[error("cannot read topic `{topic}`: {source}")]
    Read { topic: String, source: ClientError },
    #[error("timed out after {waited:?} reading topic `{topic}` up to offset {target}")]
    ReadTimeout {
        topic: String,
        target: i64,
        waited: Duration,
    },
}

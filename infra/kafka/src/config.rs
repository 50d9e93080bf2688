use rdkafka::ClientConfig;

/// Producer batching, unless the extra properties say otherwise.
const PRODUCER_LINGER_MS: &str = "5";
/// Producer compression, unless the extra properties say otherwise: LZ4 pays across a network; to
/// a broker on the same host it only costs CPU on both ends (on the local stack's broker, LZ4
/// was about 14% of its CPU at 5,000 events/s: it decompresses each produced batch and
/// compresses each fetch again).
const COMPRESSION_ACROSS_A_NETWORK: &str = "lz4";
const COMPRESSION_ON_THE_SAME_HOST: &str = "none";

/// Where the brokers are and which extra librdkafka properties to pass to every client.
///
/// Extra properties (for example `security.protocol` and SASL settings in production) are taken
/// as given, so the same binary talks to Tansu locally and to a secured Apache Kafka cluster.
#[derive(Clone)]
pub struct KafkaSettings {
    pub bootstrap: String,
    /// Replication factor of the topics sealtrail creates (1 on a single local broker).
    pub replication_factor: i32,
    pub extra: Vec<(String, String)>,
    /// The OAUTHBEARER token source, shared by clones so their clients share tokens.
    pub(crate) token_cache: crate::oauth::TokenCache,
}

impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSettings")
            .field("bootstrap", &self.bootstrap)
            .field("replication_factor", &self.replication_factor)
            .field("extra", &crate::client_properties::redacted(&self.extra))
            .finish_non_exhaustive()
    }
}

/// Whether every server of a comma-separated broker list is this host; an empty list is not.
fn all_on_this_host(brokers: &str) -> bool {
    let mut servers = brokers.split(',').filter(|server| !server.trim().is_empty()).peekable();
    servers.peek().is_some() && servers.all(sealtrail_http::is_this_host)
}

impl KafkaSettings {
    pub fn new(bootstrap: impl Into<String>) -> Self {
        Self {
            bootstrap: bootstrap.into(),
            replication_factor: 1,
            extra: Vec::new(),
            token_cache: crate::oauth::TokenCache::default(),
        }
    }

    /// The properties that hold this client's credentials, for a message about a refusal.
    pub fn credential_properties(&self) -> &'static str {
        if crate::oauth::mechanism(&self.extra).is_some_and(|name| name.eq_ignore_ascii_case("OAUTHBEARER")) {
            "the sasl.oauthbearer.* settings (is the broker configured for tokens of this provider and scope?)"
        } else {
            "sasl.username and sasl.password"
        }
    }

    /// Properties common to every client.
    pub fn base(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            // Loopback brokers answer in milliseconds; remote ones get a generous but finite bound
            // so a misconfigured address ends in an error instead of a hang.
            .set("socket.connection.setup.timeout.ms", "10000")
            .set("log_level", "3");
        // OIDC client credentials are sealtrail's to use (crate::oauth), not librdkafka's.
        for (key, value) in self.extra.iter().filter(|(key, _)| !crate::oauth::handled_here(key)) {
            config.set(key, value);
        }
        config
    }

    /// A producer that never loses or duplicates an acknowledged record: idempotent, `acks=all`,
    /// and keyed records placed with Java's partitioner so every client agrees on a partition.
    /// Those guarantees override any extra property; batching and compression are defaults that
    /// extra properties (`KAFKA_OPTIONS`, the client properties file) may change.
    pub fn producer(&self) -> ClientConfig {
        let mut config = self.base();
        // The brokers the client will reach: extra properties may name them instead of
        // `bootstrap`.
        let brokers = ["bootstrap.servers", "metadata.broker.list"]
            .iter()
            .filter_map(|key| config.get(key))
            .collect::<Vec<_>>()
            .join(",");
        let compression = if all_on_this_host(&brokers) {
            COMPRESSION_ON_THE_SAME_HOST
        } else {
            COMPRESSION_ACROSS_A_NETWORK
        };
        // `compression.codec` is librdkafka's alias of `compression.type`: either one set wins.
        if config.get("compression.type").is_none() && config.get("compression.codec").is_none() {
            config.set("compression.type", compression);
        }
        if config.get("linger.ms").is_none() {
            config.set("linger.ms", PRODUCER_LINGER_MS);
        }
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2_random")
            .set("message.timeout.ms", "30000");
        config
    }

    /// A consumer in `group` that commits offsets only when the application says so.
    pub fn consumer(&self, group: &str) -> ClientConfig {
        let mut config = self.base();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed");
        config
    }

    /// A consumer outside any group, for reading a topic with explicit assignments.
    pub fn reader(&self) -> ClientConfig {
        let mut config = self.base();
        config
            .set("group.id", "sealtrail-reader")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        config
    }
}

#[cfg(test)]
mod tests {
    use super::KafkaSettings;

    #[test]
    fn extra_properties_tune_batching_but_never_weaken_the_producer_guarantees() {
        let mut settings = KafkaSettings::new("kafka-1.example:9092,kafka-2.example:9092");
        let defaults = settings.producer();
        assert_eq!(defaults.get("linger.ms"), Some("5"));
        assert_eq!(defaults.get("compression.type"), Some("lz4"));
        settings.extra = [
            ("linger.ms", "50"),
            ("compression.type", "zstd"),
            ("enable.idempotence", "false"),
            ("acks", "1"),
            ("partitioner", "consistent_random"),
        ]
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .to_vec();
        let tuned = settings.producer();
        assert_eq!(tuned.get("linger.ms"), Some("50"));
        assert_eq!(tuned.get("compression.type"), Some("zstd"));
        assert_eq!(tuned.get("enable.idempotence"), Some("true"));
        assert_eq!(tuned.get("acks"), Some("all"));
        assert_eq!(tuned.get("partitioner"), Some("murmur2_random"));
    }

    #[test]
    fn a_broker_on_the_same_host_gets_uncompressed_batches_unless_asked_otherwise() {
        for bootstrap in ["127.0.0.1:9092", "localhost:9092,127.0.0.1:9093", "[::1]:9092"] {
            let settings = KafkaSettings::new(bootstrap);
            assert_eq!(settings.producer().get("compression.type"), Some("none"), "{bootstrap}");
        }
        let mixed = KafkaSettings::new("127.0.0.1:9092,kafka-1.example:9092");
        assert_eq!(mixed.producer().get("compression.type"), Some("lz4"));
        let mut asked = KafkaSettings::new("127.0.0.1:9092");
        asked.extra = vec![("compression.type".to_owned(), "zstd".to_owned())];
        assert_eq!(asked.producer().get("compression.type"), Some("zstd"));
        asked.extra = vec![("compression.codec".to_owned(), "zstd".to_owned())];
        assert_eq!(
            asked.producer().get("compression.type"),
            None,
            "the alias is not overridden"
        );
        // The brokers the client reaches decide, wherever they are named.
        let mut elsewhere = KafkaSettings::new("127.0.0.1:9092");
        elsewhere.extra = vec![("bootstrap.servers".to_owned(), "kafka-1.example:9092".to_owned())];
        assert_eq!(elsewhere.producer().get("compression.type"), Some("lz4"));
        elsewhere.extra = vec![("metadata.broker.list".to_owned(), "kafka-1.example:9092".to_owned())];
        assert_eq!(elsewhere.producer().get("compression.type"), Some("lz4"));
    }

    #[test]
    fn broker_lists_on_this_host_are_told_from_the_others() {
        for local in [
            "127.0.0.1:9092",
            "LOCALHOST:9092",
            "127.0.0.2:9092",
            "[::1]:9092",
            "[::1]",
            "SASL_SSL://localhost:9093, 127.0.0.1:9094",
        ] {
            assert!(super::all_on_this_host(local), "{local}");
        }
        for remote in [
            "",
            "kafka:9092",
            "10.0.0.5:9092",
            "localhost:9092,kafka:9092",
            "[2001:db8::1]:9092",
        ] {
            assert!(!super::all_on_this_host(remote), "{remote}");
        }
    }
}

//! Connection settings shared by the commands, read from flags or the same environment variables
//! that `endpoints.env` and docker-compose.yml use.

use sealtrail_clickhouse::ClickHouseSettings;
use sealtrail_kafka::KafkaSettings;

#[expect(clippy::struct_field_names, reason = "the field names are the flag names")]
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    pub kafka_bootstrap: String,
    /// Extra librdkafka property for every client (for example `security.protocol=SASL_SSL`); repeatable.
    #[arg(long = "kafka-option", env = "KAFKA_OPTIONS", value_delimiter = ',', value_parser = parse_key_value)]
    pub kafka_options: Vec<(String, String)>,
    /// Replication factor of the topics sealtrail creates.
    #[arg(long, env = "KAFKA_REPLICATION_FACTOR", default_value_t = 1)]
    pub kafka_replication_factor: i32,
    /// How long to wait for the broker at start before giving up, in seconds.
    #[arg(long, env = "KAFKA_CONNECT_TIMEOUT_SECS", default_value_t = 30)]
    pub kafka_connect_timeout: u64,
}

impl KafkaArgs {
    pub fn connect_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.kafka_connect_timeout)
    }

    pub fn settings(&self) -> KafkaSettings {
        let mut settings = KafkaSettings::new(&self.kafka_bootstrap);
        settings.replication_factor = self.kafka_replication_factor;
        settings.extra.clone_from(&self.kafka_options);
        settings
    }
}

#[expect(clippy::struct_field_names, reason = "the field names are the flag names")]
#[derive(Debug, Clone, clap::Args)]
pub struct ClickHouseArgs {
    /// ClickHouse HTTP interface.
    #[arg(long, env = "CLICKHOUSE_URL", default_value = "http://127.0.0.1:8123")]
    pub clickhouse_url: String,
    /// Database holding sealtrail's tables.
    #[arg(long, env = "CLICKHOUSE_DATABASE", default_value = ClickHouseSettings::DEFAULT_DATABASE)]
    pub clickhouse_database: String,
    #[arg(long, env = "CLICKHOUSE_USER")]
    pub clickhouse_user: Option<String>,
    #[arg(long, env = "CLICKHOUSE_PASSWORD", hide_env_values = true)]
    pub clickhouse_password: Option<String>,
}

impl ClickHouseArgs {
    pub fn settings(&self) -> ClickHouseSettings {
        let mut settings = ClickHouseSettings::new(&self.clickhouse_url);
        settings.database.clone_from(&self.clickhouse_database);
        settings.user.clone_from(&self.clickhouse_user);
        settings.password.clone_from(&self.clickhouse_password);
        settings
    }
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .filter(|(key, _)| !key.is_empty())
        .ok_or_else(|| format!("expected key=value, got `{text}`"))
}

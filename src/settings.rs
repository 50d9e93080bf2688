//! Connection settings shared by the commands, read from flags or the same environment variables
//! that `endpoints.env` and docker-compose.yml use.

use std::path::{Path, PathBuf};

use sealtrail_clickhouse::ClickHouseSettings;
use sealtrail_kafka::{ClientProperties, KafkaSettings};

#[expect(clippy::struct_field_names, reason = "the field names are the flag names")]
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    pub kafka_bootstrap: String,
    /// A client properties file in the Confluent convention (`security.protocol`,
    /// `ssl.ca.location`, `sasl.mechanism`, `sasl.username`, `sasl.password`...); a file holding a
    /// secret must be readable by its owner only.
    #[arg(long = "kafka-config", env = "KAFKA_CONFIG_FILE", value_parser = read_client_properties)]
    pub kafka_config: Option<ClientProperties>,
    /// Extra librdkafka property for every client (for example `security.protocol=SASL_SSL`);
    /// repeatable, applied after `--kafka-config`. Secrets are refused here: they would show in
    /// process listings and environments; put them in the `--kafka-config` file.
    #[arg(long = "kafka-option", env = "KAFKA_OPTIONS", value_delimiter = ',', value_parser = KafkaOptionParser)]
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
        if let Some(file) = &self.kafka_config {
            // The file's bootstrap servers give way to the flag and `KAFKA_BOOTSTRAP`.
            settings
                .extra
                .extend(file.kafka.iter().filter(|(key, _)| key != "bootstrap.servers").cloned());
        }
        settings.extra.extend(self.kafka_options.iter().cloned());
        settings
    }
}

#[expect(clippy::struct_field_names, reason = "the field names are the flag names")]
#[derive(Clone, clap::Args)]
pub struct ClickHouseArgs {
    /// ClickHouse HTTP interface.
    #[arg(long, env = "CLICKHOUSE_URL", default_value = "http://127.0.0.1:8123")]
    pub clickhouse_url: String,
    /// Database holding sealtrail's tables.
    #[arg(long, env = "CLICKHOUSE_DATABASE", default_value = ClickHouseSettings::DEFAULT_DATABASE)]
    pub clickhouse_database: String,
    #[arg(long, env = "CLICKHOUSE_USER")]
    pub clickhouse_user: Option<String>,
    /// File holding the password of --clickhouse-user, readable by its owner only.
    #[arg(long, env = "CLICKHOUSE_PASSWORD_FILE")]
    pub clickhouse_password_file: Option<PathBuf>,
    /// The password itself; prefer --clickhouse-password-file (an environment is easier to leak).
    #[arg(
        long,
        env = "CLICKHOUSE_PASSWORD",
        hide_env_values = true,
        conflicts_with = "clickhouse_password_file"
    )]
    pub clickhouse_password: Option<String>,
    /// File holding the password of the tenant-bound read-only ClickHouse users
    /// (`sealtrail_analyst`, `sealtrail_exporter`) that analysts' SQL and export filters run as.
    #[arg(long, env = "CLICKHOUSE_READER_PASSWORD_FILE")]
    pub clickhouse_reader_password_file: Option<PathBuf>,
    /// The readers' password itself; prefer --clickhouse-reader-password-file.
    #[arg(
        long,
        env = "CLICKHOUSE_READER_PASSWORD",
        hide_env_values = true,
        conflicts_with = "clickhouse_reader_password_file"
    )]
    pub clickhouse_reader_password: Option<String>,
    /// CA certificate (PEM) an `https://` ClickHouse's certificate must chain to, besides the
    /// system's roots.
    #[arg(long, env = "SEALTRAIL_CA_FILE")]
    pub clickhouse_ca_file: Option<PathBuf>,
}

/// Passwords given directly never show in debug output.
impl std::fmt::Debug for ClickHouseArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("ClickHouseArgs")
            .field("clickhouse_url", &self.clickhouse_url)
            .field("clickhouse_database", &self.clickhouse_database)
            .field("clickhouse_user", &self.clickhouse_user)
            .field("clickhouse_password_file", &self.clickhouse_password_file)
            .field("clickhouse_password", &hidden(&self.clickhouse_password))
            .field("clickhouse_reader_password_file", &self.clickhouse_reader_password_file)
            .field("clickhouse_reader_password", &hidden(&self.clickhouse_reader_password))
            .field("clickhouse_ca_file", &self.clickhouse_ca_file)
            .finish()
    }
}

impl ClickHouseArgs {
    /// The settings, with the password files read (refused when others may read them) and the CA
    /// checked.
    pub fn settings(&self) -> anyhow::Result<ClickHouseSettings> {
        let mut settings = ClickHouseSettings::new(&self.clickhouse_url);
        settings.database.clone_from(&self.clickhouse_database);
        settings.user.clone_from(&self.clickhouse_user);
        settings.password = secret(
            self.clickhouse_password.as_ref(),
            self.clickhouse_password_file.as_deref(),
            "ClickHouse password",
        )?;
        settings.reader_password = secret(
            self.clickhouse_reader_password.as_ref(),
            self.clickhouse_reader_password_file.as_deref(),
            "ClickHouse readers' password",
        )?;
        settings.trust = sealtrail_http::TrustSettings {
            ca_file: self.clickhouse_ca_file.clone(),
        };
        settings.check_trust()?;
        Ok(settings)
    }
}

/// A secret given directly or, better, in a file.
fn secret(given: Option<&String>, file: Option<&Path>, what: &'static str) -> anyhow::Result<Option<String>> {
    match (given, file) {
        (Some(secret), _) => Ok(Some(secret.clone())),
        (None, Some(path)) => Ok(Some(sealtrail_http::secret_file::read_secret(path, what)?)),
        (None, None) => Ok(None),
    }
}

/// TLS for a server (the API, the registry): its certificate and key files, read again whenever
/// they change.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerTlsArgs {
    /// PEM certificate chain to serve HTTPS with (with --tls-key); plain HTTP without it.
    #[arg(long = "tls-cert", env = "TLS_CERT_FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert, readable by its owner only.
    #[arg(long = "tls-key", env = "TLS_KEY_FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl ServerTlsArgs {
    /// The server's TLS, asking clients for a certificate of `client_ca` when given.
    pub fn load(&self, client_ca: Option<&Path>) -> anyhow::Result<Option<sealtrail_http::ServerTls>> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            anyhow::ensure!(
                client_ca.is_none(),
                "a client CA needs TLS: give --tls-cert and --tls-key too"
            );
            return Ok(None);
        };
        let files = sealtrail_http::ServerTlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        };
        Ok(Some(sealtrail_http::ServerTls::load_with_client_ca(&files, client_ca)?))
    }
}

/// An RFC 3339 time on the command line.
pub fn parse_time(text: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("expected an RFC 3339 time such as 2026-11-01T00:00:00Z: {e}"))
}

fn read_client_properties(path: &str) -> Result<ClientProperties, String> {
    ClientProperties::read(Path::new(path)).map_err(|error| error.to_string())
}

/// Parses `--kafka-option key=value`, refusing secrets without echoing them (clap's own errors
/// repeat the value they refuse).
#[derive(Debug, Clone, Copy)]
struct KafkaOptionParser;

impl clap::builder::TypedValueParser for KafkaOptionParser {
    type Value = (String, String);

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Self::Value, clap::Error> {
        let refuse = |message: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("--kafka-option: {message}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value.to_str().ok_or_else(|| refuse("not UTF-8".to_owned()))?;
        let Some((key, value)) = text.split_once('=') else {
            return Err(refuse("expected key=value".to_owned()));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(refuse("expected key=value".to_owned()));
        }
        if sealtrail_kafka::is_secret_property(key) {
            return Err(refuse(format!(
                "{key} is a secret: give it in a client properties file readable by its owner only (--kafka-config FILE or KAFKA_CONFIG_FILE), not on the command line or in KAFKA_OPTIONS"
            )));
        }
        Ok((key.to_owned(), value.trim().to_owned()))
    }
}

/// The topics of the pipeline.
#[expect(clippy::struct_field_names, reason = "the field names are the flag names")]
#[derive(Debug, Clone, clap::Args)]
pub struct TopicArgs {
    /// Where services publish raw audit events.
    #[arg(long, env = "RAW_TOPIC", default_value = "audit-events")]
    pub raw_topic: String,
    /// Where sealed events and checkpoints go.
    #[arg(long, env = "SEALED_TOPIC", default_value = "audit-events-sealed")]
    pub sealed_topic: String,
    /// Where rejected records go, with their reason.
    #[arg(long, env = "DLQ_TOPIC", default_value = "audit-events-dlq")]
    pub dlq_topic: String,
    /// Where `sealtrail reshard` records every change of partition layout (one partition).
    #[arg(long, env = "LAYOUT_TOPIC", default_value = "audit-events-layouts")]
    pub layout_topic: String,
}

#[expect(clippy::struct_field_names, reason = "the field names are the flag names")]
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryUrlArgs {
    /// The Confluent-compatible schema registry.
    #[arg(long, env = "SCHEMA_REGISTRY_URL", default_value = "http://127.0.0.1:8081")]
    pub schema_registry_url: String,
    /// Client properties with the registry's credentials, in Confluent's convention
    /// (`basic.auth.credentials.source=USER_INFO`, `basic.auth.user.info=user:password`); may be
    /// the same file as --kafka-config.
    #[arg(long = "schema-registry-config", env = "SCHEMA_REGISTRY_CONFIG_FILE", value_parser = read_client_properties)]
    pub schema_registry_config: Option<ClientProperties>,
    /// CA certificate (PEM) an `https://` registry's certificate must chain to, besides the
    /// system's roots.
    #[arg(long, env = "SEALTRAIL_CA_FILE")]
    pub schema_registry_ca_file: Option<PathBuf>,
}

impl RegistryUrlArgs {
    pub fn connection(&self) -> anyhow::Result<sealtrail_runtime::RegistryConnection> {
        let mut connection = sealtrail_runtime::RegistryConnection::new(&self.schema_registry_url);
        connection.trust.ca_file.clone_from(&self.schema_registry_ca_file);
        if let Some(properties) = &self.schema_registry_config
            && let Some(user_info) = properties.registry_user_info()
        {
            connection.credentials = Some(
                sealtrail_runtime::BasicCredentials::parse_user_info(user_info)
                    .ok_or_else(|| anyhow::anyhow!("basic.auth.user.info must be user:password"))?,
            );
        }
        // Read the CA now: a wrong path is reported at start.
        connection.sr_settings().map_err(anyhow::Error::msg)?;
        Ok(connection)
    }
}

/// Key files (see `sealtrail keys init`).
#[derive(Debug, Clone, clap::Args)]
pub struct KeyArgs {
    /// Directory holding the key files; the individual flags override its files.
    #[arg(long, env = "SEALTRAIL_KEY_DIR", default_value = ".sealtrail/keys")]
    pub key_dir: PathBuf,
    /// Ed25519 PKCS#8 key that signs checkpoints.
    #[arg(long, env = "SEALTRAIL_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// Master key for per-tenant tokenization (64+ hex characters).
    #[arg(long, env = "SEALTRAIL_TOKENIZATION_KEY", hide_env_values = true)]
    pub tokenization_key: Option<PathBuf>,
    /// Public keys trusted to sign checkpoints: a `.pub` file or a directory of them.
    #[arg(long, env = "SEALTRAIL_TRUSTED_KEYS")]
    pub trusted_keys: Option<PathBuf>,
}

impl KeyArgs {
    pub fn signing_key(&self) -> PathBuf {
        self.signing_key
            .clone()
            .unwrap_or_else(|| self.key_dir.join(sealtrail_runtime::keys::SIGNING_KEY_FILE))
    }

    pub fn tokenization_key(&self) -> PathBuf {
        self.tokenization_key
            .clone()
            .unwrap_or_else(|| self.key_dir.join(sealtrail_runtime::keys::TOKENIZATION_KEY_FILE))
    }

    pub fn trusted_keys(&self) -> PathBuf {
        self.trusted_keys
            .clone()
            .unwrap_or_else(|| self.key_dir.join(sealtrail_runtime::keys::TRUSTED_DIR))
    }
}

/// The export job queue: its topics and where artifacts are kept.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportQueueArgs {
    /// Export jobs, appended by the API and consumed by the export processor.
    #[arg(long, env = "EXPORT_JOBS_TOPIC", default_value = sealtrail_export::ExportTopics::DEFAULT_JOBS)]
    pub export_jobs_topic: String,
    /// Every state of every export job.
    #[arg(long, env = "EXPORT_STATUS_TOPIC", default_value = sealtrail_export::ExportTopics::DEFAULT_STATUS)]
    pub export_status_topic: String,
    /// Where the export processor writes artifacts and the API reads them (shared storage when
    /// they run on different hosts).
    #[arg(long, env = "SEALTRAIL_ARTIFACTS_DIR", default_value = ".sealtrail/exports")]
    pub artifacts_dir: PathBuf,
}

impl ExportQueueArgs {
    pub fn topics(&self) -> sealtrail_export::ExportTopics {
        sealtrail_export::ExportTopics {
            jobs: self.export_jobs_topic.clone(),
            status: self.export_status_topic.clone(),
        }
    }
}

/// Where a component serves `/metrics`, `/healthz` and `/readyz`.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// Address for the Prometheus endpoint, for example 0.0.0.0:9464 (port 0 picks a free one);
    /// not served when absent (the counters still appear in the periodic log line).
    #[arg(long = "metrics-listen", env = "SEALTRAIL_METRICS_ADDR")]
    pub listen: Option<std::net::SocketAddr>,
}

impl MetricsArgs {
    /// The component's metrics, served when an address is configured.
    pub async fn start(&self, component: &'static str) -> anyhow::Result<sealtrail_runtime::Metrics> {
        let metrics = sealtrail_runtime::Metrics::new(component);
        if let Some(address) = self.listen {
            metrics.serve(address).await.map_err(|error| {
                anyhow::anyhow!(
                    "cannot serve metrics on {address}: {error}; set SEALTRAIL_METRICS_ADDR to a free address"
                )
            })?;
        }
        Ok(metrics)
    }
}

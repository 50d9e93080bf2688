//! Clients configured from `endpoints.env` the way `set -a; . endpoints.env` configures every
//! command: the CA (`SEALTRAIL_CA_FILE`), the Kafka client properties (`KAFKA_CONFIG_FILE`), the
//! registry's credentials (`SCHEMA_REGISTRY_CONFIG_FILE`) and ClickHouse's user and password
//! files. For in-process callers: `up --demo`, `status`, the test harness.

use std::path::Path;

use sealtrail_clickhouse::ClickHouseSettings;
use sealtrail_http::TrustSettings;
use sealtrail_http::secret_file::read_secret;
use sealtrail_kafka::{ClientProperties, KafkaSettings};
use sealtrail_runtime::{BasicCredentials, RegistryConnection};

use crate::{Endpoints, LocalError};

fn refused(what: &str, reason: impl std::fmt::Display) -> LocalError {
    LocalError::Credentials {
        what: what.to_owned(),
        reason: reason.to_string(),
    }
}

impl Endpoints {
    /// What TLS clients trust: the stack's CA, if it names one.
    pub fn trust(&self) -> TrustSettings {
        TrustSettings {
            ca_file: self.get("SEALTRAIL_CA_FILE").map(Into::into),
        }
    }

    fn properties(&self, variable: &str) -> Result<Option<ClientProperties>, LocalError> {
        self.get(variable)
            .map(|path| ClientProperties::read(Path::new(path)).map_err(|error| refused(variable, &error)))
            .transpose()
    }

    /// The broker, with the client properties file's security settings.
    pub fn kafka(&self) -> Result<KafkaSettings, LocalError> {
        let mut settings = KafkaSettings::new(&self.kafka_bootstrap);
        if let Some(properties) = self.properties("KAFKA_CONFIG_FILE")? {
            settings.extra = properties.kafka;
        }
        Ok(settings)
    }

    /// The registry, with the CA and the credentials of `SCHEMA_REGISTRY_CONFIG_FILE`.
    pub fn registry(&self) -> Result<RegistryConnection, LocalError> {
        let mut connection = RegistryConnection::new(&self.schema_registry_url);
        connection.trust = self.trust();
        if let Some(properties) = self.properties("SCHEMA_REGISTRY_CONFIG_FILE")?
            && let Some(user_info) = properties.registry_user_info()
        {
            connection.credentials = Some(BasicCredentials::parse_user_info(user_info).ok_or_else(|| {
                refused(
                    "the registry's credentials",
                    "basic.auth.user.info is not user:password",
                )
            })?);
        }
        Ok(connection)
    }

    /// ClickHouse as `CLICKHOUSE_USER` (the stack's administrator), with the readers' password.
    pub fn clickhouse(&self) -> Result<ClickHouseSettings, LocalError> {
        let mut settings = ClickHouseSettings::new(&self.clickhouse_url);
        if let Some(database) = self.get("CLICKHOUSE_DATABASE") {
            database.clone_into(&mut settings.database);
        }
        settings.user = self.get("CLICKHOUSE_USER").map(str::to_owned);
        let secret = |variable: &str, what: &'static str| {
            self.get(variable)
                .map(|path| read_secret(Path::new(path), what).map_err(|error| refused(what, &error)))
                .transpose()
        };
        settings.password = secret("CLICKHOUSE_PASSWORD_FILE", "ClickHouse password")?;
        settings.reader_password = secret("CLICKHOUSE_READER_PASSWORD_FILE", "ClickHouse readers' password")?;
        settings.trust = self.trust();
        Ok(settings)
    }

    /// An HTTP client for the API and the registry, trusting the stack's CA.
    pub fn http_client(&self) -> Result<reqwest::Client, LocalError> {
        self.trust()
            .http_client()
            .map_err(|error| refused("an HTTP client", &error))?
            .build()
            .map_err(|error| refused("an HTTP client", &error))
    }
}

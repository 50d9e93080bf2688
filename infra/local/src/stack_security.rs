//! The credentials of the secured local stack: one identity per component (its SCRAM user on the
//! broker and its registry user, with its own passwords), each component's client properties
//! file in the Confluent convention, and the registry's users file. Everything is made once per
//! data directory, kept readable by its owner only, and named by path, never by value, in what
//! the stack hands to processes (`KAFKA_CONFIG_FILE`, `SCHEMA_REGISTRY_CONFIG_FILE`).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use sealtrail_http::{ServerTls, ServerTlsFiles};
use sealtrail_kafka::{ClientProperties, KafkaSettings};
use sealtrail_registry::{RegistryAccess, RegistryRole};

use crate::private_file::{stored_or_new_secret, write_private};
use crate::{DataDir, LocalCa, LocalError};

const SECRETS_DIR: &str = "secrets";
const TLS_DIR: &str = "tls";
/// The SCRAM mechanism of every local user.
pub const SCRAM_MECHANISM: &str = "SCRAM-SHA-512";

/// Who connects to the stack's broker and registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackIdentity {
    Seal,
    Sink,
    Export,
    Retention,
    Api,
    /// Reads the sealed topic; writes its incidents to the raw topic.
    Monitor,
    /// The registry's own Kafka client (its log topic).
    Registry,
    /// Whoever sources endpoints.env: `produce`, `offsets`, `dlq`, `reshard`, the demo.
    Operator,
}

impl StackIdentity {
    pub const ALL: [Self; 8] = [
        Self::Seal,
        Self::Sink,
        Self::Export,
        Self::Retention,
        Self::Api,
        Self::Monitor,
        Self::Registry,
        Self::Operator,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Seal => "seal",
            Self::Sink => "sink",
            Self::Export => "export",
            Self::Retention => "retention",
            Self::Api => "api",
            Self::Monitor => "monitor",
            Self::Registry => "registry",
            Self::Operator => "operator",
        }
    }

    /// The identity a supervised `sealtrail <command>` runs as.
    pub fn of_command(command: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|identity| identity.name() == command)
    }

    /// The broker's SCRAM user.
    pub fn kafka_user(self) -> String {
        format!("sealtrail-{}", self.name())
    }

    /// Readers decode with schemas others registered; writers register the schemas they produce
    /// with (the seal its sealed schema, the API and retention their audit events).
    fn registry_role(self) -> RegistryRole {
        match self {
            Self::Sink | Self::Export | Self::Registry => RegistryRole::Read,
            Self::Seal | Self::Retention | Self::Api | Self::Monitor | Self::Operator => RegistryRole::Write,
        }
    }
}

/// The stack's CA and every identity's secrets, on disk.
#[derive(Clone)]
pub struct StackSecurity {
    pub ca: LocalCa,
    secrets_dir: PathBuf,
    /// `(identity, Kafka password)`, for creating the broker's users.
    kafka_passwords: Vec<(StackIdentity, String)>,
}

impl std::fmt::Debug for StackSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackSecurity")
            .field("ca", &self.ca)
            .field("secrets_dir", &self.secrets_dir)
            .finish_non_exhaustive()
    }
}

impl StackSecurity {
    /// Makes (first start) or reads the CA and the secrets, and writes each identity's client
    /// properties and the registry's users file.
    pub fn prepare(data_dir: &DataDir) -> Result<Self, LocalError> {
        let ca = LocalCa::ensure(&data_dir.root().join(TLS_DIR))?;
        let secrets_dir = data_dir.root().join(SECRETS_DIR);
        fs::create_dir_all(&secrets_dir).map_err(LocalError::io("create", &secrets_dir))?;
        fs::set_permissions(&secrets_dir, fs::Permissions::from_mode(0o700))
            .map_err(LocalError::io("protect", &secrets_dir))?;
        let mut kafka_passwords = Vec::new();
        let mut registry_users = String::from("# The schema registry's users (sealtrail up); passwords as SHA-256.\n");
        for identity in StackIdentity::ALL {
            let name = identity.name();
            let kafka_password = stored_or_new_secret(&secrets_dir.join(format!("{name}.kafka.password")))?;
            let registry_password = stored_or_new_secret(&secrets_dir.join(format!("{name}.registry.password")))?;
            let properties = format!(
                "# {name}'s client properties (sealtrail up): the broker over TLS with SCRAM, and the registry's credentials.\n\
                 security.protocol=SASL_SSL\n\
                 ssl.ca.location={ca}\n\
                 sasl.mechanism={SCRAM_MECHANISM}\n\
                 sasl.username={user}\n\
                 sasl.password={kafka_password}\n\
                 basic.auth.credentials.source=USER_INFO\n\
                 basic.auth.user.info={name}:{registry_password}\n",
                ca = ca.ca_file.display(),
                user = identity.kafka_user(),
            );
            write_private(&secrets_dir.join(format!("{name}.properties")), properties.as_bytes())?;
            registry_users.push_str(&RegistryAccess::line(
                name,
                identity.registry_role(),
                &registry_password,
            ));
            registry_users.push('\n');
            kafka_passwords.push((identity, kafka_password));
        }
        write_private(&secrets_dir.join("registry-users"), registry_users.as_bytes())?;
        Ok(Self {
            ca,
            secrets_dir,
            kafka_passwords,
        })
    }

    /// `identity`'s client properties file (`KAFKA_CONFIG_FILE`, `SCHEMA_REGISTRY_CONFIG_FILE`).
    pub fn client_properties(&self, identity: StackIdentity) -> PathBuf {
        self.secrets_dir.join(format!("{}.properties", identity.name()))
    }

    /// The registry's users file.
    pub fn registry_users_file(&self) -> PathBuf {
        self.secrets_dir.join("registry-users")
    }

    /// `(user, password)` of every SCRAM user the broker must know.
    pub fn kafka_users(&self) -> impl Iterator<Item = (String, &str)> {
        self.kafka_passwords
            .iter()
            .map(|(identity, password)| (identity.kafka_user(), password.as_str()))
    }

    /// Kafka settings for `bootstrap` as `identity`.
    pub fn kafka_settings(&self, bootstrap: &str, identity: StackIdentity) -> Result<KafkaSettings, LocalError> {
        let file = self.client_properties(identity);
        let properties = ClientProperties::read(&file).map_err(|error| LocalError::Credentials {
            what: format!("the Kafka client of {}", identity.name()),
            reason: error.to_string(),
        })?;
        let mut settings = KafkaSettings::new(bootstrap);
        settings.extra = properties.kafka;
        Ok(settings)
    }

    /// The TLS of the stack's servers: the CA's server certificate, reloaded when remade.
    pub fn server_tls(&self) -> Result<ServerTls, LocalError> {
        ServerTls::load(&self.server_files()).map_err(|error| LocalError::Certificates {
            dir: self.ca.cert_file.clone(),
            reason: error.to_string(),
        })
    }

    /// The certificate and key files the stack's servers use.
    pub fn server_files(&self) -> ServerTlsFiles {
        ServerTlsFiles {
            cert: self.ca.cert_file.clone(),
            key: self.ca.key_file.clone(),
        }
    }
}

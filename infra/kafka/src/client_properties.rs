//! A client properties file in the Confluent convention (`--kafka-config FILE`,
//! `KAFKA_CONFIG_FILE`): `security.protocol`, `ssl.ca.location`, `sasl.mechanism`,
//! `sasl.username`, `sasl.password`... as librdkafka names them, with what Java clients write
//! understood too: a `sasl.jaas.config` for PLAIN or SCRAM becomes `sasl.username` and
//! `sasl.password`, and the schema registry's keys (`schema.registry.url`,
//! `basic.auth.user.info`) are kept apart for the registry client. A file that holds a secret
//! must be readable by its owner only.

use std::path::{Path, PathBuf};

/// Property names whose values are secrets: never logged, and their file must be private.
const SECRET_KEYS: [&str; 7] = [
    "sasl.password",
    "sasl.jaas.config",
    "sasl.oauthbearer.client.secret",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.password",
    "basic.auth.user.info",
];

/// True for a property whose value must never be shown.
pub fn is_secret_property(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    SECRET_KEYS.contains(&key.as_str())
        || key.contains("password")
        || key.contains("secret")
        || key.contains("passphrase")
        || key.ends_with("private.key.pem")
        || key.ends_with("basic.auth.user.info")
}

/// Why a properties file was refused; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ClientPropertiesError {
    #[error("cannot read the Kafka client properties file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "the Kafka client properties file {path} holds {key} but other users may read it (mode {mode:o}); run `chmod 600 {path}`"
    )]
    Exposed { path: PathBuf, key: String, mode: u32 },
    #[error("{path} line {line}: {problem}")]
    Syntax {
        path: PathBuf,
        line: usize,
        problem: String,
    },
}

/// The properties of a file, split by who reads them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientProperties {
    /// For every librdkafka client.
    pub kafka: Vec<(String, String)>,
    /// For the schema registry client (`schema.registry.url`, `basic.auth.user.info`, ...).
    pub registry: Vec<(String, String)>,
}

impl std::fmt::Debug for ClientProperties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientProperties")
            .field("kafka", &redacted(&self.kafka))
            .field("registry", &redacted(&self.registry))
            .finish()
    }
}

/// `properties` with every secret value replaced, for logs and debug output.
pub fn redacted(properties: &[(String, String)]) -> Vec<(String, String)> {
    properties
        .iter()
        .map(|(key, value)| {
            let shown = if is_secret_property(key) {
                "<redacted>".to_owned()
            } else {
                value.clone()
            };
            (key.clone(), shown)
        })
        .collect()
}

impl ClientProperties {
    /// The registry credentials, `user:password` (Confluent's `basic.auth.user.info`, with or
    /// without the `schema.registry.` prefix).
    pub fn registry_user_info(&self) -> Option<&str> {
        self.registry
            .iter()
            .find(|(key, _)| key == "basic.auth.user.info" || key == "schema.registry.basic.auth.user.info")
            .map(|(_, value)| value.as_str())
    }

    /// Reads and checks `path`.
    pub fn read(path: &Path) -> Result<Self, ClientPropertiesError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClientPropertiesError::Read {
            path: path.to_owned(),
            source,
        })?;
        let properties = Self::parse(&text).map_err(|(line, problem)| ClientPropertiesError::Syntax {
            path: path.to_owned(),
            line,
            problem,
        })?;
        if let Some((key, _)) = properties
            .kafka
            .iter()
            .chain(&properties.registry)
            .find(|(key, _)| is_secret_property(key))
        {
            check_private(path, key)?;
        }
        Ok(properties)
    }

    /// Parses the text of a properties file; an error names the line (from 1) and the problem.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut properties = Self::default();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let Some((key, value)) = line.split_once(['=', ':']) else {
                return Err((index + 1, "expected `key=value`".to_owned()));
            };
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() {
                return Err((index + 1, "a property without a name".to_owned()));
            }
            if key.starts_with("schema.registry.") || key.starts_with("basic.auth.") {
                properties.registry.push((key.to_owned(), value.to_owned()));
            } else if key == "sasl.jaas.config" {
                let (username, password) = jaas_credentials(value).ok_or_else(|| {
                    let instead = if value.contains("OAuthBearerLoginModule") {
                        "for OAUTHBEARER give sasl.oauthbearer.method=oidc, sasl.oauthbearer.client.id, sasl.oauthbearer.client.secret and sasl.oauthbearer.token.endpoint.url instead"
                    } else {
                        "give sasl.username and sasl.password instead"
                    };
                    (
                        index + 1,
                        format!("sasl.jaas.config is understood for PLAIN and SCRAM login modules with username and password; {instead}"),
                    )
                })?;
                properties.kafka.push(("sasl.username".to_owned(), username));
                properties.kafka.push(("sasl.password".to_owned(), password));
            } else {
                properties.kafka.push((key.to_owned(), value.to_owned()));
            }
        }
        Ok(properties)
    }
}

/// `username` and `password` of a Java `sasl.jaas.config` for the PLAIN or SCRAM login module.
fn jaas_credentials(config: &str) -> Option<(String, String)> {
    if !(config.contains("PlainLoginModule") || config.contains("ScramLoginModule")) {
        return None;
    }
    let field = |name: &str| {
        let start = config.find(&format!("{name}=\""))? + name.len() + 2;
        let end = config[start..].find('"')? + start;
        Some(config[start..end].to_owned())
    };
    Some((field("username")?, field("password")?))
}

/// Refuses a file holding `key` that other users may read.
fn check_private(path: &Path, key: &str) -> Result<(), ClientPropertiesError> {
    match sealtrail_http::secret_file::exposed_mode(path) {
        Ok(None) => Ok(()),
        Ok(Some(mode)) => Err(ClientPropertiesError::Exposed {
            path: path.to_owned(),
            key: key.to_owned(),
            mode,
        }),
        Err(source) => Err(ClientPropertiesError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confluent_files_are_read_as_librdkafka_names_them() {
        let text = "# Confluent Cloud\nbootstrap.servers=pkc.example:9092\nsecurity.protocol = SASL_SSL\n\
                    sasl.mechanisms=PLAIN\nsasl.username=KEY\nsasl.password=SECRET\n\
                    schema.registry.url=https://psrc.example\nbasic.auth.user.info=SRKEY:SRSECRET\n";
        let properties = ClientProperties::parse(text).expect("parses");
        assert!(
            properties
                .kafka
                .contains(&("security.protocol".to_owned(), "SASL_SSL".to_owned()))
        );
        assert!(
            properties
                .kafka
                .contains(&("sasl.password".to_owned(), "SECRET".to_owned()))
        );
        assert_eq!(properties.registry.len(), 2, "the registry's keys are kept apart");
        let shown = format!("{properties:?}");
        assert!(!shown.contains("SECRET") && !shown.contains("SRSECRET"), "{shown}");
    }

    #[test]
    fn a_java_jaas_line_becomes_username_and_password() {
        let text = "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"svc\" password=\"p=w\";";
        let properties = ClientProperties::parse(text).expect("parses");
        assert_eq!(
            properties.kafka,
            vec![
                ("sasl.username".to_owned(), "svc".to_owned()),
                ("sasl.password".to_owned(), "p=w".to_owned())
            ]
        );
        assert!(
            ClientProperties::parse("sasl.jaas.config=com.sun.security.auth.module.Krb5LoginModule required;").is_err()
        );
    }

    #[test]
    fn secrets_are_recognised_whatever_their_case() {
        for key in [
            "sasl.password",
            "SASL.PASSWORD",
            " Sasl.Jaas.Config",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.client.credentials.client.secret",
            "sasl.oauthbearer.assertion.private.key.passphrase",
            "sasl.oauthbearer.assertion.private.key.pem",
        ] {
            assert!(is_secret_property(key), "{key}");
        }
        assert!(!is_secret_property("ssl.ca.location"));
    }

    #[test]
    fn a_line_without_a_value_is_named() {
        let error = ClientProperties::parse("security.protocol=SSL\nnonsense\n").expect_err("refused");
        assert_eq!(error.0, 2);
    }

    #[cfg(unix)]
    #[test]
    fn a_secret_in_a_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("client.properties");
        std::fs::write(&path, "sasl.password=hunter2\n").expect("written");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("mode");
        let error = ClientProperties::read(&path).expect_err("refused").to_string();
        assert!(error.contains("chmod 600") && !error.contains("hunter2"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("mode");
        assert!(ClientProperties::read(&path).is_ok());
    }
}

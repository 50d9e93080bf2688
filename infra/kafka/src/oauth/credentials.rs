//! The OIDC client-credentials settings of a client properties file, in the names librdkafka and
//! the Confluent clients give them (`sasl.oauthbearer.method=oidc`,
//! `sasl.oauthbearer.client.id`, `sasl.oauthbearer.client.secret`,
//! `sasl.oauthbearer.token.endpoint.url`, `sasl.oauthbearer.scope`), so one file serves sealtrail
//! and a Java or Python client alike.
//!
//! librdkafka fetches such tokens itself only when built with libcurl, which a fresh machine
//! lacks (and its configure step cannot find a static one); sealtrail fetches them instead, over
//! the same rustls stack as its other HTTPS clients, and hands them to librdkafka. These
//! properties are therefore read here and never passed to librdkafka.

use std::path::PathBuf;

/// Properties sealtrail reads itself and keeps from librdkafka.
const HANDLED_HERE: [&str; 13] = [
    "sasl.oauthbearer.method",
    "sasl.oauthbearer.client.id",
    "sasl.oauthbearer.client.credentials.client.id",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.client.credentials.client.secret",
    "sasl.oauthbearer.token.endpoint.url",
    "sasl.oauthbearer.scope",
    "sasl.oauthbearer.extensions",
    "sasl.oauthbearer.grant.type",
    "sasl.oauthbearer.metadata.authentication.type",
    "https.ca.location",
    "https.ca.pem",
    "enable.sasl.oauthbearer.unsecure.jwt",
];

/// True for a property sealtrail handles itself rather than librdkafka.
pub fn handled_here(key: &str) -> bool {
    HANDLED_HERE.contains(&key)
}

/// How to obtain OAUTHBEARER tokens: the OAuth 2.0 client-credentials grant at an OIDC provider.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub token_endpoint: String,
    pub client_id: String,
    client_secret: String,
    pub scope: Option<String>,
    /// The CA that signs the token endpoint's certificate, beyond the system's roots.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scope", &self.scope)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Why a client properties file cannot give OAUTHBEARER tokens; each says what to set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthConfigError {
    #[error(
        "sasl.mechanism=OAUTHBEARER needs sasl.oauthbearer.method=oidc with sasl.oauthbearer.client.id, sasl.oauthbearer.client.secret and sasl.oauthbearer.token.endpoint.url in the client properties file: sealtrail fetches its tokens with OIDC client credentials"
    )]
    NotOidc,
    #[error(
        "{key} is missing from the client properties file: OAUTHBEARER with sasl.oauthbearer.method=oidc needs sasl.oauthbearer.client.id, sasl.oauthbearer.client.secret and sasl.oauthbearer.token.endpoint.url"
    )]
    Missing { key: &'static str },
    #[error(
        "sasl.oauthbearer.token.endpoint.url must be an https:// URL, since the client secret is sent to it; got `{url}`"
    )]
    NotHttps { url: String },
    #[error("{key} is not supported by sealtrail: {why}")]
    Unsupported { key: &'static str, why: &'static str },
}

/// The last value of `key`: a `--kafka-option` given after the file overrides it.
fn value<'a>(properties: &'a [(String, String)], key: &str) -> Option<&'a str> {
    properties
        .iter()
        .rev()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// The SASL mechanism, from `sasl.mechanism` or its alias `sasl.mechanisms`, whichever comes
/// last (as librdkafka takes it).
pub fn mechanism(properties: &[(String, String)]) -> Option<&str> {
    properties
        .iter()
        .rev()
        .find(|(name, _)| name == "sasl.mechanism" || name == "sasl.mechanisms")
        .map(|(_, value)| value.trim())
}

/// A CA file for the token endpoint: librdkafka's `probe` and CA directories mean the system's
/// roots, which every client trusts anyway.
fn ca_file(location: &str) -> Option<PathBuf> {
    let path = PathBuf::from(location);
    (location != "probe" && !path.is_dir()).then_some(path)
}

fn either<'a>(properties: &'a [(String, String)], key: &'static str, alias: &str) -> Result<&'a str, OAuthConfigError> {
    value(properties, key)
        .or_else(|| value(properties, alias))
        .ok_or(OAuthConfigError::Missing { key })
}

/// The client credentials of `properties` when they choose `sasl.mechanism=OAUTHBEARER`;
/// `None` for any other mechanism.
pub fn client_credentials(properties: &[(String, String)]) -> Result<Option<ClientCredentials>, OAuthConfigError> {
    if !mechanism(properties).is_some_and(|name| name.eq_ignore_ascii_case("OAUTHBEARER")) {
        return Ok(None);
    }
    if value(properties, "enable.sasl.oauthbearer.unsecure.jwt").is_some_and(|flag| flag.eq_ignore_ascii_case("true")) {
        return Err(OAuthConfigError::Unsupported {
            key: "enable.sasl.oauthbearer.unsecure.jwt",
            why: "unsigned tokens are for development only; use sasl.oauthbearer.method=oidc",
        });
    }
    if !value(properties, "sasl.oauthbearer.method").is_some_and(|method| method.eq_ignore_ascii_case("oidc")) {
        return Err(OAuthConfigError::NotOidc);
    }
    refuse_unsupported(properties)?;
    let token_endpoint = value(properties, "sasl.oauthbearer.token.endpoint.url").ok_or(OAuthConfigError::Missing {
        key: "sasl.oauthbearer.token.endpoint.url",
    })?;
    let is_https = url::Url::parse(token_endpoint).is_ok_and(|url| url.scheme() == "https" && url.host().is_some());
    if !is_https {
        return Err(OAuthConfigError::NotHttps {
            url: token_endpoint.to_owned(),
        });
    }
    Ok(Some(ClientCredentials {
        token_endpoint: token_endpoint.to_owned(),
        client_id: either(
            properties,
            "sasl.oauthbearer.client.id",
            "sasl.oauthbearer.client.credentials.client.id",
        )?
        .to_owned(),
        client_secret: either(
            properties,
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.client.credentials.client.secret",
        )?
        .to_owned(),
        scope: value(properties, "sasl.oauthbearer.scope").map(str::to_owned),
        // A private deployment's provider is usually signed by the CA that signs its brokers.
        ca_file: value(properties, "https.ca.location")
            .or_else(|| value(properties, "ssl.ca.location"))
            .and_then(ca_file),
    }))
}

fn refuse_unsupported(properties: &[(String, String)]) -> Result<(), OAuthConfigError> {
    if value(properties, "sasl.oauthbearer.grant.type")
        .is_some_and(|grant| !grant.eq_ignore_ascii_case("client_credentials"))
    {
        return Err(OAuthConfigError::Unsupported {
            key: "sasl.oauthbearer.grant.type",
            why: "only client_credentials is implemented",
        });
    }
    if value(properties, "sasl.oauthbearer.extensions").is_some() {
        return Err(OAuthConfigError::Unsupported {
            key: "sasl.oauthbearer.extensions",
            why: "rdkafka 0.39 hands librdkafka no SASL extensions (Confluent Cloud's logicalCluster and identityPoolId are such extensions)",
        });
    }
    if value(properties, "sasl.oauthbearer.metadata.authentication.type")
        .is_some_and(|kind| !kind.eq_ignore_ascii_case("none"))
    {
        return Err(OAuthConfigError::Unsupported {
            key: "sasl.oauthbearer.metadata.authentication.type",
            why: "give the provider's token endpoint and client credentials instead",
        });
    }
    if value(properties, "https.ca.pem").is_some() {
        return Err(OAuthConfigError::Unsupported {
            key: "https.ca.pem",
            why: "name the CA file with https.ca.location",
        });
    }
    Ok(())
}

impl ClientCredentials {
    pub(crate) fn client_secret(&self) -> &str {
        &self.client_secret
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn properties(lines: &[(&str, &str)]) -> Vec<(String, String)> {
        lines.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn oidc(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut all = properties(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "OAUTHBEARER"),
            ("sasl.oauthbearer.method", "oidc"),
            ("sasl.oauthbearer.client.id", "seal"),
            ("sasl.oauthbearer.client.secret", "s3cret"),
            ("sasl.oauthbearer.token.endpoint.url", "https://idp.example/token"),
            ("ssl.ca.location", "/etc/ca.pem"),
        ]);
        all.extend(properties(extra));
        all
    }

    #[test]
    fn confluent_names_give_client_credentials_and_the_brokers_ca_by_default() {
        let credentials = client_credentials(&oidc(&[("sasl.oauthbearer.scope", "kafka")]))
            .expect("valid")
            .expect("OAUTHBEARER");
        assert_eq!(credentials.token_endpoint, "https://idp.example/token");
        assert_eq!(credentials.client_id, "seal");
        assert_eq!(credentials.client_secret(), "s3cret");
        assert_eq!(credentials.scope.as_deref(), Some("kafka"));
        assert_eq!(credentials.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert!(!format!("{credentials:?}").contains("s3cret"));
        let own_ca = client_credentials(&oidc(&[("https.ca.location", "/etc/idp-ca.pem")]))
            .expect("valid")
            .expect("OAUTHBEARER");
        assert_eq!(own_ca.ca_file, Some(PathBuf::from("/etc/idp-ca.pem")));
    }

    #[test]
    fn a_probe_or_a_directory_means_the_systems_roots() {
        let dir = std::env::temp_dir();
        for location in ["probe", dir.to_str().expect("utf-8")] {
            let credentials = client_credentials(&oidc(&[("ssl.ca.location", location)]))
                .expect("valid")
                .expect("OAUTHBEARER");
            assert_eq!(credentials.ca_file, None, "{location}");
        }
    }

    #[test]
    fn the_last_of_mechanism_and_mechanisms_counts() {
        let mut later_scram = oidc(&[]);
        later_scram.push(("sasl.mechanisms".to_owned(), "SCRAM-SHA-512".to_owned()));
        assert_eq!(client_credentials(&later_scram), Ok(None));
    }

    #[test]
    fn other_mechanisms_need_no_token() {
        let scram = properties(&[("sasl.mechanism", "SCRAM-SHA-512"), ("sasl.oauthbearer.method", "oidc")]);
        assert_eq!(client_credentials(&scram), Ok(None));
        assert_eq!(client_credentials(&[]), Ok(None));
    }

    #[test]
    fn what_is_missing_or_unsupported_is_named() {
        let without_method = properties(&[("sasl.mechanisms", "oauthbearer")]);
        assert_eq!(client_credentials(&without_method), Err(OAuthConfigError::NotOidc));
        let mut without_secret = oidc(&[]);
        without_secret.retain(|(key, _)| key != "sasl.oauthbearer.client.secret");
        assert_eq!(
            client_credentials(&without_secret),
            Err(OAuthConfigError::Missing {
                key: "sasl.oauthbearer.client.secret"
            })
        );
        let plain = oidc(&[("sasl.oauthbearer.token.endpoint.url", "http://idp.example/token")]);
        assert!(matches!(
            client_credentials(&plain),
            Err(OAuthConfigError::NotHttps { .. })
        ));
        for (key, value) in [
            (
                "sasl.oauthbearer.grant.type",
                "urn:ietf:params:oauth:grant-type:jwt-bearer",
            ),
            ("sasl.oauthbearer.extensions", "tenant=acme"),
            ("enable.sasl.oauthbearer.unsecure.jwt", "true"),
            ("https.ca.pem", "-----BEGIN CERTIFICATE-----"),
        ] {
            let error = client_credentials(&oidc(&[(key, value)])).expect_err(key);
            assert!(error.to_string().contains(key), "{error}");
        }
    }

    #[test]
    fn aliases_and_later_values_are_honoured() {
        let mut aliased = oidc(&[]);
        aliased.retain(|(key, _)| !key.starts_with("sasl.oauthbearer.client."));
        aliased.extend(properties(&[
            ("sasl.oauthbearer.client.credentials.client.id", "sink"),
            ("sasl.oauthbearer.client.credentials.client.secret", "other"),
            ("sasl.oauthbearer.scope", "first"),
            ("sasl.oauthbearer.scope", "second"),
        ]));
        let credentials = client_credentials(&aliased).expect("valid").expect("OAUTHBEARER");
        assert_eq!(credentials.client_id, "sink");
        assert_eq!(credentials.scope.as_deref(), Some("second"));
    }
}

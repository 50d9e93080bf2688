//! How a client reaches the schema registry: its URL, the CA its certificate chains to, and the
//! HTTP basic credentials Confluent clients give as `basic.auth.user.info=user:password`.

use schema_registry_converter::async_impl::schema_registry::SrSettings;
use sealtrail_http::TrustSettings;

/// A registry user and password; the password never shows in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl BasicCredentials {
    /// `user:password`, the form of Confluent's `basic.auth.user.info`.
    pub fn parse_user_info(user_info: &str) -> Option<Self> {
        let (user, password) = user_info.split_once(':')?;
        (!user.is_empty() && !password.is_empty()).then(|| Self {
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }
}

/// Where the registry is and how to prove who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConnection {
    pub url: String,
    pub trust: TrustSettings,
    pub credentials: Option<BasicCredentials>,
}

impl RegistryConnection {
    /// An open registry over plain HTTP or with the system's roots.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            trust: TrustSettings::default(),
            credentials: None,
        }
    }

    /// The converter's settings for this connection; fails when the CA file cannot be read.
    pub fn sr_settings(&self) -> Result<SrSettings, String> {
        let client = self
            .trust
            .http_client()
            .map_err(|error| format!("schema registry at {}: {error}", self.url))?;
        let mut builder = SrSettings::new_builder(self.url.clone());
        if let Some(credentials) = &self.credentials {
            builder.set_basic_authorization(&credentials.user, Some(&credentials.password));
        }
        builder
            .build_with(client)
            .map_err(|error| format!("schema registry at {}: {error}", self.url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_splits_at_the_first_colon_and_hides_the_password() {
        let credentials = BasicCredentials::parse_user_info("seal:pa:ss").expect("parsed");
        assert_eq!(
            (credentials.user.as_str(), credentials.password.as_str()),
            ("seal", "pa:ss")
        );
        assert!(!format!("{credentials:?}").contains("pa:ss"));
        assert!(BasicCredentials::parse_user_info("no-colon").is_none());
        assert!(BasicCredentials::parse_user_info(":empty-user").is_none());
    }
}

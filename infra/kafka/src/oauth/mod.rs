//! SASL/OAUTHBEARER with OIDC client credentials: the settings (credentials), the provider's
//! answer (token), the fetching (source), and handing tokens to librdkafka (native).

mod credentials;
mod native;
mod source;
mod token;

use std::sync::{Arc, Mutex, PoisonError};

use rdkafka::ClientContext;
use rdkafka::client::{Client, OAuthToken};

pub use credentials::{ClientCredentials, OAuthConfigError, client_credentials, handled_here, mechanism};
pub use source::{TokenError, TokenSource};
pub use token::IssuedToken;

/// Where a client's OAUTHBEARER tokens come from; empty for every other mechanism. Carried by
/// every sealtrail client context, so any client can refresh its token from its poll loop.
#[derive(Debug, Clone, Default)]
pub struct OAuthTokens(Option<Arc<TokenSource>>);

impl OAuthTokens {
    pub fn source(&self) -> Option<&TokenSource> {
        self.0.as_deref()
    }

    /// The answer to librdkafka's refresh event (`ClientContext::generate_oauth_token`).
    pub fn generate(&self) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        let source = self
            .0
            .as_ref()
            .ok_or("sasl.mechanism=OAUTHBEARER without OIDC client credentials")?;
        let token = source.token()?;
        Ok(OAuthToken {
            token: token.value,
            principal_name: token.principal,
            lifetime_ms: token.expires_at_ms,
        })
    }

    /// A new client's first token, fetched before the client is made: a client that fails to
    /// start must not ask again from its own teardown.
    pub(crate) fn first_token(&self) -> Result<Option<IssuedToken>, TokenError> {
        self.0.as_ref().map(|source| source.token()).transpose()
    }

    /// Sets `token` as a new client's first, so it connects without waiting for a poll.
    pub(crate) fn install<C: ClientContext>(client: &Client<C>, token: &IssuedToken) -> Result<(), String> {
        native::set_token(client, token).map_err(|reason| format!("librdkafka refused the OAUTHBEARER token: {reason}"))
    }
}

/// The token source of one `KafkaSettings` and its clones, made again when the properties name
/// other credentials.
#[derive(Debug, Clone, Default)]
pub(crate) struct TokenCache(Arc<Mutex<Option<Arc<TokenSource>>>>);

impl TokenCache {
    pub(crate) fn tokens(&self, properties: &[(String, String)]) -> Result<OAuthTokens, OAuthConfigError> {
        let Some(credentials) = client_credentials(properties)? else {
            return Ok(OAuthTokens::default());
        };
        let mut cached = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(source) = cached.as_ref().filter(|source| *source.credentials() == credentials) {
            return Ok(OAuthTokens(Some(source.clone())));
        }
        let source = Arc::new(TokenSource::new(credentials));
        *cached = Some(source.clone());
        Ok(OAuthTokens(Some(source)))
    }
}

//! The client context every sealtrail Kafka client is made with, and the one way clients are
//! made (`KafkaSettings::create`), so no client can miss its first OAUTHBEARER token.

use rdkafka::admin::AdminClient;
use rdkafka::client::{Client, OAuthToken};
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::producer::{BaseProducer, FutureProducer, Producer as _, ProducerContext};
use rdkafka::util::AsyncRuntime;
use rdkafka::{ClientConfig, ClientContext, Message as _};

use crate::KafkaSettings;
use crate::oauth::OAuthTokens;

/// A plain client context that refreshes OAUTHBEARER tokens (and does nothing else).
#[derive(Debug, Clone, Default)]
pub struct KafkaContext {
    tokens: OAuthTokens,
}

impl KafkaContext {
    pub fn new(tokens: OAuthTokens) -> Self {
        Self { tokens }
    }
}

impl ClientContext for KafkaContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(&self, _config: Option<&str>) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        self.tokens.generate()
    }
}

/// A client context that answers librdkafka's token refreshes (`ENABLE_REFRESH_OAUTH_TOKEN` and
/// `generate_oauth_token` from these tokens): the only kind `KafkaSettings` makes clients with.
pub trait RefreshesTokens: ClientContext {
    fn oauth_tokens(&self) -> &OAuthTokens;
}

impl RefreshesTokens for KafkaContext {
    fn oauth_tokens(&self) -> &OAuthTokens {
        &self.tokens
    }
}

impl ConsumerContext for KafkaContext {}

impl ProducerContext for KafkaContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, (): Self::DeliveryOpaque) {
        if let Err((error, message)) = result {
            tracing::warn!(topic = message.topic(), %error, "a record was not delivered");
        }
    }
}

/// Serves the queued events of a consumer that reads no records here (a probe), so it answers
/// librdkafka's token refreshes; a record it might return is dropped, and read again by whoever
/// assigns it (these consumers commit nothing).
pub(crate) fn serve_events<C: ConsumerContext>(consumer: &BaseConsumer<C>) {
    for _ in 0..16 {
        if consumer.poll(std::time::Duration::ZERO).is_none() {
            break;
        }
    }
}

/// A librdkafka client of any kind, for setting its first token.
pub trait KafkaClient {
    type Context: ClientContext;
    fn native_client(&self) -> &Client<Self::Context>;
}

impl<C: ConsumerContext> KafkaClient for BaseConsumer<C> {
    type Context = C;
    fn native_client(&self) -> &Client<C> {
        self.client()
    }
}

impl<C: ProducerContext> KafkaClient for BaseProducer<C> {
    type Context = C;
    fn native_client(&self) -> &Client<C> {
        self.client()
    }
}

impl<C: ClientContext + 'static, R: AsyncRuntime> KafkaClient for FutureProducer<C, R> {
    type Context = rdkafka::producer::future_producer::FutureProducerContext<C>;
    fn native_client(&self) -> &Client<Self::Context> {
        self.client()
    }
}

impl<C: ClientContext> KafkaClient for AdminClient<C> {
    type Context = C;
    fn native_client(&self) -> &Client<C> {
        self.inner()
    }
}

impl KafkaSettings {
    /// A client of `config` with the plain context.
    pub fn create<T>(&self, config: &ClientConfig) -> KafkaResult<T>
    where
        T: FromClientConfigAndContext<KafkaContext> + KafkaClient,
    {
        let context = KafkaContext::new(self.oauth_tokens()?);
        self.create_with_context(config, context)
    }

    /// A client of `config` with `context`, made with `self.oauth_tokens()`; its first token is
    /// set before it is returned. (An admin client never polls the queue librdkafka asks for
    /// refreshes on, so it keeps its first token: sealtrail makes one per operation.)
    pub fn create_with_context<T, C>(&self, config: &ClientConfig, context: C) -> KafkaResult<T>
    where
        C: RefreshesTokens,
        T: FromClientConfigAndContext<C> + KafkaClient,
    {
        let creation = |reason: String| rdkafka::error::KafkaError::ClientCreation(reason);
        if self.oauth_tokens()?.source().is_some() != context.oauth_tokens().source().is_some() {
            return Err(creation(
                "a Kafka client context was made without these settings' OAUTHBEARER tokens".to_owned(),
            ));
        }
        let first_token = context
            .oauth_tokens()
            .first_token()
            .map_err(|error| creation(error.to_string()))?;
        let client = T::from_config_and_context(config, context)?;
        if let Some(token) = first_token {
            OAuthTokens::install(client.native_client(), &token).map_err(creation)?;
        }
        Ok(client)
    }

    /// The OAUTHBEARER token source of these settings (empty for other mechanisms).
    pub fn oauth_tokens(&self) -> KafkaResult<OAuthTokens> {
        self.token_cache
            .tokens(&self.extra)
            .map_err(|error| rdkafka::error::KafkaError::ClientCreation(error.to_string()))
    }
}

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clickhouse::Client;
use sealtrail_http::TrustSettings;

use crate::ClickHouseError;

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// A client over HTTPS, and the TLS configuration it was made with.
type HttpsTransport = (Arc<rustls::ClientConfig>, Client);

/// How to reach ClickHouse over HTTP and which database holds sealtrail's tables.
#[derive(Clone)]
pub struct ClickHouseSettings {
    pub url: String,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// The password of the tenant-bound read-only users (`access::TenantReader`).
    pub reader_password: Option<String>,
    /// What an `https://` URL's certificate must chain to.
    pub trust: TrustSettings,
    /// The HTTPS transport made for `trust`, shared by the clients of these settings and their
    /// clones: one connection pool, so requests reuse connections instead of each paying a TLS
    /// handshake. Made again when `trust` leads to another TLS configuration.
    https: Arc<Mutex<Option<HttpsTransport>>>,
}

/// Passwords never show in debug output or logs.
impl std::fmt::Debug for ClickHouseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("ClickHouseSettings")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &hidden(&self.password))
            .field("reader_password", &hidden(&self.reader_password))
            .field("trust", &self.trust)
            .finish_non_exhaustive()
    }
}

impl ClickHouseSettings {
    pub const DEFAULT_DATABASE: &'static str = "sealtrail";
    /// The database `sealtrail bench-api` fills; the local stack's readers may read it too.
    pub const BENCH_DATABASE: &'static str = "sealtrail_bench";

    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            database: Self::DEFAULT_DATABASE.to_owned(),
            user: None,
            password: None,
            reader_password: None,
            trust: TrustSettings::default(),
            https: Arc::default(),
        }
    }

    /// Whether the URL asks for TLS.
    pub fn is_https(&self) -> bool {
        self.url
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    }

    /// Reads the trusted CA now, so a missing or unreadable file is reported at start rather than
    /// as failed connections later.
    pub fn check_trust(&self) -> Result<(), ClickHouseError> {
        if self.is_https() {
            self.trust
                .client_config()
                .map_err(|error| ClickHouseError::Tls(error.to_string()))?;
        }
        Ok(())
    }

    /// A client bound to sealtrail's database, with row validation on so a mismatch between a Rust
    /// row type and the table is reported by column name instead of corrupting data.
    pub fn client(&self) -> Client {
        self.server_client().with_database(&self.database)
    }

    /// Whether ClickHouse is on this host.
    fn is_loopback(&self) -> bool {
        sealtrail_http::is_this_host(&self.url)
    }

    /// A client with no database selected, for statements that must run before it exists.
    pub fn server_client(&self) -> Client {
        let mut client = self.anonymous_client();
        if let Some(user) = &self.user {
            client = client.with_user(user);
        }
        if let Some(password) = &self.password {
            client = client.with_password(password);
        }
        client
    }

    /// A client with no database and no credentials of its own.
    pub(crate) fn anonymous_client(&self) -> Client {
        // LZ4 pays across a network; on the same host it only costs CPU on both ends.
        let compression = if self.is_loopback() {
            clickhouse::Compression::None
        } else {
            clickhouse::Compression::Lz4
        };
        self.transport()
            .with_url(&self.url)
            .with_validation(true)
            .with_compression(compression)
    }
}

impl ClickHouseSettings {
    /// Plain HTTP, or HTTPS verified against `trust` (rustls, HTTP/1.1, the crate's own pool
    /// timings).
    fn transport(&self) -> Client {
        if !self.is_https() {
            return Client::default();
        }
        let config = self.trust.client_config().unwrap_or_else(|error| {
            // `check_trust` reports this at start; here the connections fail their handshake.
            tracing::error!(%error, "cannot read the CA that ClickHouse's certificate must chain to");
            Arc::new(
                rustls::ClientConfig::builder_with_provider(sealtrail_http::crypto_provider())
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default protocol versions")
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )
        });
        let mut made = self.https.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((for_config, client)) = made.as_ref()
            && Arc::ptr_eq(for_config, &config)
        {
            return client.clone();
        }
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.set_keepalive(Some(Duration::from_secs(60)));
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(rustls::ClientConfig::clone(&config))
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::with_http_client(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(2))
                .build(connector),
        );
        *made = Some((config, client.clone()));
        client
    }
}

/// Waits until ClickHouse answers `SELECT 1`, or fails after `timeout`.
pub async fn wait_for_clickhouse(settings: &ClickHouseSettings, timeout: Duration) -> Result<(), ClickHouseError> {
    let client = settings.server_client();
    let started = Instant::now();
    loop {
        let attempt = match tokio::time::timeout(PROBE_TIMEOUT, client.query("SELECT 1").fetch_one::<u8>()).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(sealtrail_http::error_chain(&error)),
            Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
        };
        match attempt {
            Ok(1) => return Ok(()),
            Ok(other) => {
                return Err(ClickHouseError::Unreachable {
                    url: settings.url.clone(),
                    waited: started.elapsed(),
                    reason: format!("SELECT 1 returned {other}"),
                });
            }
            Err(reason) if started.elapsed() >= timeout => {
                return Err(ClickHouseError::Unreachable {
                    url: settings.url.clone(),
                    waited: started.elapsed(),
                    reason,
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ClickHouseSettings;

    #[test]
    fn only_this_host_goes_uncompressed() {
        for (url, loopback) in [
            ("http://127.0.0.1:8123", true),
            ("http://localhost:8123/", true),
            ("http://user:secret@localhost:8123", true),
            ("http://[::1]:8123", true),
            ("http://clickhouse:8123", false),
            ("https://127.0.0.1.example.com", false),
            ("https://db.example.com:8443/path", false),
        ] {
            assert_eq!(ClickHouseSettings::new(url).is_loopback(), loopback, "{url}");
        }
    }
}

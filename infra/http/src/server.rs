//! The server side: a certificate and key read from files and read again when either changes,
//! so renewing a certificate (cert-manager, an ACME client, `sealtrail up` remaking the local
//! one) takes effect at the next handshake without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject as _;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::client::read_certificates;
use crate::{TlsError, crypto_provider};

/// How often the files are checked for a change.
const RELOAD_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Where a server's certificate chain and private key are (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A server's TLS: hands out acceptors that always use the newest valid certificate.
#[derive(Debug, Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    files: ServerTlsFiles,
}

impl ServerTls {
    /// Reads the files (refusing a key others can read) and, on a Tokio runtime, keeps watching
    /// them for as long as this or an acceptor from it lives.
    pub fn load(files: &ServerTlsFiles) -> Result<Self, TlsError> {
        Self::load_with_client_ca(files, None)
    }

    /// Like `load`, also asking clients for a certificate: one that chains to the CA in
    /// `client_ca` identifies its caller (`ClientCertificate`); a client without one is still
    /// served (it authenticates otherwise), a client with a certificate of another CA is refused
    /// at the handshake.
    pub fn load_with_client_ca(files: &ServerTlsFiles, client_ca: Option<&Path>) -> Result<Self, TlsError> {
        let certificate = Arc::new(ReloadingCertificate {
            current: RwLock::new(read_certified_key(files)?),
            files: files.clone(),
            stamp: RwLock::new(stamp(files)),
        });
        let config = ServerConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Invalid {
                path: files.cert.clone(),
                reason: error.to_string(),
            })?;
        let config = match client_ca {
            None => config.with_no_client_auth(),
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for certificate in read_certificates(path, "client CA certificate")? {
                    roots.add(certificate).map_err(|error| TlsError::Invalid {
                        path: path.to_owned(),
                        reason: error.to_string(),
                    })?;
                }
                let verifier =
                    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crypto_provider())
                        .allow_unauthenticated()
                        .build()
                        .map_err(|error| TlsError::Invalid {
                            path: path.to_owned(),
                            reason: error.to_string(),
                        })?;
                config.with_client_cert_verifier(verifier)
            }
        }
        .with_cert_resolver(certificate.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(watch(Arc::downgrade(&certificate)));
        }
        Ok(Self {
            config: Arc::new(config),
            files: files.clone(),
        })
    }

    /// An acceptor that offers no application protocol: for a front that forwards the bytes to
    /// a service (a client that negotiated HTTP/2 would then talk it to an HTTP/1.1 server).
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.clone())
    }

    /// An acceptor for an HTTP server that speaks HTTP/2 and HTTP/1.1 (ALPN).
    pub fn http_acceptor(&self) -> TlsAcceptor {
        let mut config = ServerConfig::clone(&self.config);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        TlsAcceptor::from(Arc::new(config))
    }

    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    pub fn files(&self) -> &ServerTlsFiles {
        &self.files
    }
}

#[derive(Debug)]
struct ReloadingCertificate {
    current: RwLock<Arc<CertifiedKey>>,
    files: ServerTlsFiles,
    /// What the files looked like when last read.
    stamp: RwLock<Stamp>,
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

type Stamp = [Option<(SystemTime, u64)>; 2];

fn stamp(files: &ServerTlsFiles) -> Stamp {
    let of = |path: &Path| {
        std::fs::metadata(path)
            .ok()
            .and_then(|meta| Some((meta.modified().ok()?, meta.len())))
    };
    [of(&files.cert), of(&files.key)]
}

/// Checks the files every second; a change that reads as a valid pair replaces the certificate,
/// one that does not (a renewal half written) is logged and tried again at the next change.
async fn watch(certificate: Weak<ReloadingCertificate>) {
    let mut ticks = tokio::time::interval(RELOAD_CHECK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(certificate) = certificate.upgrade() else {
            return;
        };
        let now = stamp(&certificate.files);
        if *certificate.stamp.read().unwrap_or_else(PoisonError::into_inner) == now {
            continue;
        }
        *certificate.stamp.write().unwrap_or_else(PoisonError::into_inner) = now;
        match read_certified_key(&certificate.files) {
            Ok(fresh) => {
                *certificate.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
                tracing::info!(cert = %certificate.files.cert.display(), "TLS certificate reloaded");
            }
            Err(error) => {
                tracing::warn!(%error, "the TLS certificate changed but cannot be used; still serving the previous one");
            }
        }
    }
}

fn read_certified_key(files: &ServerTlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = read_certificates(&files.cert, "certificate")?;
    refuse_readable_by_others(&files.key)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|error| TlsError::Read {
        what: "private key",
        path: files.key.clone(),
        reason: error.to_string(),
    })?;
    let signing_key = crypto_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|error| TlsError::Invalid {
            path: files.key.clone(),
            reason: error.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().map_err(|error| TlsError::Invalid {
        path: files.key.clone(),
        reason: format!(
            "the key does not match the certificate {}: {error}",
            files.cert.display()
        ),
    })?;
    Ok(Arc::new(certified))
}

/// A private key others can read is as good as published.
fn refuse_readable_by_others(path: &Path) -> Result<(), TlsError> {
    match crate::secret_file::exposed_mode(path) {
        Ok(None) => Ok(()),
        Ok(Some(mode)) => Err(TlsError::KeyNotPrivate {
            path: path.to_owned(),
            mode,
        }),
        Err(error) => Err(TlsError::Read {
            what: "private key",
            path: path.to_owned(),
            reason: error.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;
    use std::time::{Duration, Instant};

    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    use super::*;
    use crate::TrustSettings;

    /// A CA (its PEM) and a certificate of 127.0.0.1 it signed, written as `files`.
    fn issue(dir: &Path, name: &str, files: &ServerTlsFiles) -> PathBuf {
        let ca_key = KeyPair::generate().expect("key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).expect("CA");
        let issuer = Issuer::new(ca, &ca_key);
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("certificate");
        let ca_file = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca_file, ca_cert.pem()).expect("CA written");
        std::fs::write(&files.key, key.serialize_pem()).expect("key written");
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600)).expect("mode");
        std::fs::write(&files.cert, cert.pem()).expect("certificate written");
        ca_file
    }

    /// Whether a new client trusting `ca` gets an answer. The CA is copied to a new path each
    /// time: clients trusting the same file share a TLS session cache, and a resumed session is
    /// not checked against the certificate again.
    async fn answers(url: &str, ca: &Path) -> bool {
        static COPIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let copy = ca.with_extension(format!(
            "{}.pem",
            COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::copy(ca, &copy).expect("CA copied");
        let client = TrustSettings::with_ca(&copy)
            .http_client()
            .expect("client")
            .build()
            .expect("client");
        client
            .get(url)
            .send()
            .await
            .is_ok_and(|response| response.status().is_success())
    }

    #[tokio::test]
    async fn a_renewed_certificate_is_served_without_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        let files = ServerTlsFiles {
            cert: dir.path().join("server.pem"),
            key: dir.path().join("server.key"),
        };
        let first_ca = issue(dir.path(), "first", &files);
        let tls = ServerTls::load(&files).expect("loaded");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("https://{}/", listener.local_addr().expect("address"));
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        tokio::spawn(crate::serve::serve(listener, router, Some(tls), std::future::pending()));
        assert!(answers(&url, &first_ca).await, "served with the first certificate");

        let second_ca = issue(dir.path(), "second", &files);
        let started = Instant::now();
        while !answers(&url, &second_ca).await {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the renewed certificate is never served"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            !answers(&url, &first_ca).await,
            "the old certificate is no longer served"
        );
    }

    #[test]
    fn a_key_others_can_read_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let files = ServerTlsFiles {
            cert: dir.path().join("server.pem"),
            key: dir.path().join("server.key"),
        };
        issue(dir.path(), "only", &files);
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o644)).expect("mode");
        let error = ServerTls::load(&files).expect_err("refused").to_string();
        assert!(error.contains("chmod 600"), "{error}");
    }
}

//! A TLS front for a service that speaks only plaintext: Tansu 0.6 takes `--cert` and `--key`
//! but never uses them (its acceptor is built and dropped; every connection is served as plain
//! TCP), so the local stack terminates TLS here, with the local CA's server certificate, and
//! forwards each connection to the broker on loopback. Clients see a TLS listener; SASL runs
//! through the tunnel to the broker, which checks the credentials.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::LocalError;

/// A running TLS front; dropping it stops accepting.
#[derive(Debug)]
pub struct TlsFront {
    pub address: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn failed(what: &str, path: &Path, reason: impl std::fmt::Display) -> LocalError {
    LocalError::Certificates {
        dir: path.to_owned(),
        reason: format!("{what}: {reason}"),
    }
}

/// The server configuration of the certificate chain in `cert` and the key in `key` (PEM).
pub fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, LocalError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| failed("cannot read the certificate", cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| failed("cannot read the certificate", cert, e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| failed("cannot read the key", key, e))?;
    // ring: the provider the workspace already builds (aws-lc-rs would add a C build); loopback
    // TLS to a local broker does not need its post-quantum key exchange.
    #[expect(
        deprecated,
        reason = "ring's provider lacks post-quantum key exchange, not needed on loopback"
    )]
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| failed("the certificate and key do not make a TLS configuration", cert, e))
}

impl TlsFront {
    /// Listens on `listen` (port 0 picks one) and forwards every TLS connection to `upstream`.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr, config: ServerConfig) -> Result<Self, LocalError> {
        let listener = TcpListener::bind(listen).await.map_err(|_| LocalError::PortTaken {
            what: "the TLS front of the broker",
            port: listen.port(),
            flag: "--kafka-port",
        })?;
        let address = listener
            .local_addr()
            .map_err(LocalError::io("read the address of", "the TLS listener"))?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let task = tokio::spawn(async move {
            while let Ok((client, peer)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that does not speak TLS (or distrusts the certificate) ends here;
                    // it sees the connection closed, and librdkafka names the likely cause.
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        tracing::debug!(%peer, "TLS handshake refused");
                        return;
                    };
                    let Ok(mut broker) = TcpStream::connect(upstream).await else {
                        tracing::warn!(%upstream, "the service behind the TLS front is unreachable");
                        return;
                    };
                    broker.set_nodelay(true).ok();
                    tokio::io::copy_bidirectional(&mut tls, &mut broker).await.ok();
                });
            }
        });
        Ok(Self { address, task })
    }
}

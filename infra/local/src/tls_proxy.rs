//! A TLS front for a service that speaks only plaintext. Tansu 0.6 takes `--cert` and `--key`
//! but never uses them (its acceptor is built and dropped; every connection is served as plain
//! TCP), and the embedded ClickHouse engine serves only plain HTTP (`SYSTEM START LISTEN HTTPS`
//! is refused), so the local stack terminates TLS here, with the local CA's server certificate,
//! and forwards each connection to the service on loopback. Clients see a TLS listener; SASL and
//! passwords run through the tunnel to the service, which checks them.

use std::net::SocketAddr;

use sealtrail_http::ServerTls;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

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

impl TlsFront {
    /// Listens on `listen` (port 0 picks one) and forwards every TLS connection to `upstream`;
    /// `what` and `flag` name the service and its port flag when `listen` is taken.
    pub async fn start(
        (what, flag): (&'static str, &'static str),
        listen: SocketAddr,
        upstream: SocketAddr,
        tls: &ServerTls,
    ) -> Result<Self, LocalError> {
        let listener = TcpListener::bind(listen).await.map_err(|_| LocalError::PortTaken {
            what,
            port: listen.port(),
            flag,
        })?;
        let address = listener
            .local_addr()
            .map_err(LocalError::io("read the address of", "the TLS listener"))?;
        let acceptor = tls.acceptor();
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

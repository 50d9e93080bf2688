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

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

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
            loop {
                let (client, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: pause and go on accepting.
                        tracing::warn!(%error, "the TLS front cannot accept a connection");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Small writes leave at once on both legs. With Nagle's algorithm on the client's
                // leg, a response the front forwards in two TLS records (ClickHouse's HTTP header,
                // then its body) waited for the client's delayed ACK: 45 ms added to every
                // ClickHouse request through the front, against 2-5 ms direct.
                client.set_nodelay(true).ok();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that does not speak TLS (or distrusts the certificate) ends here;
                    // it sees the connection closed, and librdkafka names the likely cause.
                    let handshake = tokio::time::timeout(HANDSHAKE_WITHIN, acceptor.accept(client));
                    let Ok(Ok(mut tls)) = handshake.await else {
                        tracing::debug!(%peer, "TLS handshake refused or not finished in time");
                        return;
                    };
                    let connected = tokio::time::timeout(HANDSHAKE_WITHIN, TcpStream::connect(upstream)).await;
                    let Ok(Ok(mut broker)) = connected else {
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

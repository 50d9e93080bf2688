//! Serving a router over TCP, with TLS when configured, and the limits a public endpoint needs,
//! which `axum::serve` does not set: a client must finish its TLS handshake and send its request
//! headers within `HEADER_READ_TIMEOUT` (a connection that dribbles them is closed), and every
//! request knows the peer address it came from (failed credentials are rate limited per address).
//! Over TLS, every response carries HSTS, so a browser never falls back to plain HTTP.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::HeaderValue;
use axum::http::header::STRICT_TRANSPORT_SECURITY;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::first_bytes::FirstBytesWithin;
use crate::{ClientCertificate, ServerTls};

/// How long a client has to finish its TLS handshake, and then to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once; the next waits to be accepted (the listener's backlog holds it).
const MAX_CONNECTIONS: usize = 4096;

/// Two years, the preload lists' minimum: browsers that once reached the server over TLS keep
/// using TLS.
const HSTS: &str = "max-age=63072000";

/// Serves `router` on `listener` (over TLS when `tls` is given) until `shutdown` completes, then
/// lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = tls.as_ref().map(ServerTls::http_acceptor);
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = std::sync::Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        connections.spawn(serve_connection(
            stream,
            peer,
            router.clone(),
            acceptor.clone(),
            stopped.clone(),
            slot,
        ));
        // Forget the connections that have ended.
        while connections.try_join_next().is_some() {}
    }
    stopping.send_replace(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Serves one connection: its TLS handshake (when `acceptor`), then HTTP until it ends or the
/// server stops; `_slot` is its place among `MAX_CONNECTIONS`.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    acceptor: Option<TlsAcceptor>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
    _slot: tokio::sync::OwnedSemaphorePermit,
) {
    let secure = acceptor.is_some();
    let (stream, client_certificate): (Box<dyn Connection>, Option<ClientCertificate>) = match acceptor {
        None => (Box::new(stream), None),
        // A client that does not speak TLS, or does not trust the certificate, ends here.
        Some(acceptor) => match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                let certificate = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|leaf| ClientCertificate::from_der(leaf));
                (Box::new(tls), certificate)
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, %peer, "TLS handshake refused");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake not finished in time");
                return;
            }
        },
    };
    let service = router
        .map_request(move |request: axum::http::Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            if let Some(certificate) = &client_certificate {
                request.extensions_mut().insert(certificate.clone());
            }
            request
        })
        .map_response(move |mut response: axum::response::Response| {
            if secure {
                response
                    .headers_mut()
                    .insert(STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
            }
            response
        });
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    // An HTTP/2 peer that stops answering pings is dropped.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    // The protocol detection (HTTP/1 or HTTP/2) waits for the first bytes with no timeout of
    // its own; a client that sends nothing is dropped like one that dribbles its headers.
    let stream = FirstBytesWithin::new(stream, HEADER_READ_TIMEOUT);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(connection);
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, %peer, "connection ended with an error");
                }
                break;
            }
            _ = stopped.changed() => connection.as_mut().graceful_shutdown(),
        }
    }
}

/// A plain or TLS connection.
trait Connection: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Connection for T {}

/// The peer address of a request, when it came through [`serve`].
pub fn peer(extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| *address)
}

//! HTTP with TLS for every hop of sealtrail: clients that trust the system's roots plus a CA the
//! operator names (`SEALTRAIL_CA_FILE`), and servers (the API, the registry) that serve TLS from
//! certificate and key files reloaded when they change, so a renewed certificate needs no restart;
//! and files holding secrets, refused when others may read them.

mod address;
mod client;
mod client_certificate;
mod error;
mod first_bytes;
mod provider;
pub mod secret_file;
pub mod serve;
mod server;

pub use address::is_this_host;
pub use client::{TrustSettings, client_config};
pub use client_certificate::ClientCertificate;
pub use error::TlsError;
pub use provider::crypto_provider;
pub use server::{ServerTls, ServerTlsFiles};

/// An error with every cause under it (`a: b: c`): HTTP clients report a failed TLS handshake as
/// "client error (connect)", and say why only in the causes.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let said = inner.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = inner.source();
    }
    text
}

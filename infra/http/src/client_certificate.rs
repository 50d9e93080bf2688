//! Who a client certificate names: a machine caller authenticated at the TLS handshake by a
//! certificate of the CA the server was given for clients.

use rustls::pki_types::CertificateDer;

/// The verified certificate a client presented (its chain checked against the client CA during
/// the handshake), as a request extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The subject's common name: the caller's name (a service, a host).
    pub common_name: String,
}

impl ClientCertificate {
    /// The certificate's subject; `None` when it has no common name (it then identifies nobody).
    pub fn from_der(der: &CertificateDer<'_>) -> Option<Self> {
        let (_, certificate) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
        let common_name = certificate.subject().iter_common_name().next()?.as_str().ok()?;
        Some(Self {
            common_name: common_name.to_owned(),
        })
    }
}

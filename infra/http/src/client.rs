//! The client side: which certificate authorities a connection trusts.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use rustls::{ClientConfig, RootCertStore};

use crate::{TlsError, crypto_provider};

/// What a client trusts: the system's roots, plus the CA in `ca_file` when given (a private CA,
/// such as the local stack's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustSettings {
    pub ca_file: Option<PathBuf>,
}

impl TrustSettings {
    pub fn with_ca(ca_file: impl Into<PathBuf>) -> Self {
        Self {
            ca_file: Some(ca_file.into()),
        }
    }

    /// A rustls client configuration trusting these roots.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        client_config(self.ca_file.as_deref())
    }

    /// A `reqwest` client builder that verifies servers against these roots (and speaks plain
    /// HTTP to `http://` URLs).
    pub fn http_client(&self) -> Result<reqwest::ClientBuilder, TlsError> {
        let config = Arc::unwrap_or_clone(self.client_config()?);
        Ok(reqwest::Client::builder().tls_backend_preconfigured(config))
    }
}

/// A rustls client configuration trusting the system's roots and the CA certificates in
/// `ca_file`. Made once per CA file and kept while the file is unchanged: clients are made per
/// request in places, and reading the system's roots each time would cost milliseconds.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    type Key = (Option<PathBuf>, Option<std::time::SystemTime>);
    static MADE: Mutex<Vec<(Key, Arc<ClientConfig>)>> = Mutex::new(Vec::new());
    let key: Key = (
        ca_file.map(Path::to_owned),
        ca_file.and_then(|path| std::fs::metadata(path).ok()?.modified().ok()),
    );
    if let Some((_, config)) = MADE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .find(|(made, _)| *made == key)
    {
        return Ok(config.clone());
    }
    let config = make_client_config(ca_file)?;
    let mut made = MADE.lock().unwrap_or_else(PoisonError::into_inner);
    made.retain(|((path, _), _)| *path != key.0);
    made.push((key, config.clone()));
    Ok(config)
}

fn make_client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    // The system's roots, for public services; a machine without any still trusts `ca_file`.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let certificates = read_certificates(path, "CA certificate")?;
        for certificate in certificates {
            roots.add(certificate).map_err(|error| TlsError::Invalid {
                path: path.to_owned(),
                reason: error.to_string(),
            })?;
        }
    }
    let config = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Invalid {
            path: ca_file.unwrap_or(Path::new("(system roots)")).to_owned(),
            reason: error.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Every certificate in a PEM file; refuses a file with none.
pub(crate) fn read_certificates(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let failed = |reason: String| TlsError::Read {
        what,
        path: path.to_owned(),
        reason,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| failed(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(e.to_string()))?;
    if certificates.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}

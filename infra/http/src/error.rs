use std::path::PathBuf;

/// Why TLS cannot be set up; each names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {}: {reason}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{} holds no {what}: give a PEM file", path.display())]
    Empty { what: &'static str, path: PathBuf },
    #[error("the private key {} can be read by others (mode {mode:o}): run `chmod 600 {}`", path.display(), path.display())]
    KeyNotPrivate { path: PathBuf, mode: u32 },
    #[error("TLS configuration from {}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot build an HTTP client: {0}")]
    Client(String),
}

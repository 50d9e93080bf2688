use std::path::PathBuf;

/// Why the local stack cannot be installed, started or stopped. Every message is one line that
/// says what to do.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(
        "port {port} for {what} is already in use on 127.0.0.1; stop what holds it or pick another port with {flag} (or `--ports auto`)"
    )]
    PortTaken {
        what: &'static str,
        port: u16,
        flag: &'static str,
    },
    #[error(
        "--data-dir {path} is not a usable directory ({reason}); point --data-dir at a directory sealtrail may write to"
    )]
    DataDirUnusable { path: PathBuf, reason: String },
    #[error("{path} is corrupt ({reason}); move it away to start afresh, or restore it from a backup")]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "sealtrail is already running on {data_dir} (pid {pid}); stop it with `sealtrail down --data-dir {data_dir}`"
    )]
    AlreadyRunning { data_dir: PathBuf, pid: String },
    #[error("{what} not found at {path}; {hint}")]
    MissingBinary {
        what: &'static str,
        path: PathBuf,
        hint: &'static str,
    },
    #[error("installing {what} failed: {reason}")]
    Install { what: &'static str, reason: String },
    #[error("{what} exited during start-up ({status}): {last_log_line} (full log: {log})")]
    StartFailed {
        what: &'static str,
        status: String,
        last_log_line: String,
        log: PathBuf,
    },
    #[error("{what} did not become ready within {seconds}s: {reason} (log: {log})")]
    NotReady {
        what: &'static str,
        seconds: u64,
        reason: String,
        log: PathBuf,
    },
    #[error("cannot make the local certificate authority in {dir}: {reason}")]
    Certificates { dir: PathBuf, reason: String },
    #[error("cannot set up {what}: {reason}")]
    Credentials { what: String, reason: String },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl LocalError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { action, path, source }
    }
}

//! Files that hold secrets (passwords, private keys, client properties with credentials): read
//! only when their owner alone may read them, and never echoed in errors.

use std::path::{Path, PathBuf};

/// Why a secret file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("cannot read the {what} file {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the {what} file {} can be read by other users (mode {mode:o}): run `chmod 600 {}`", path.display(), path.display())]
    Exposed {
        what: &'static str,
        path: PathBuf,
        mode: u32,
    },
    #[error("the {what} file {} is empty", path.display())]
    Empty { what: &'static str, path: PathBuf },
}

/// The permission bits of `path` when users other than its owner may read or write it.
pub fn exposed_mode(path: &Path) -> std::io::Result<Option<u32>> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    Ok((mode & 0o077 != 0).then_some(mode))
}

/// The secret in `path` (trimmed of surrounding whitespace), refusing a file others may read.
pub fn read_secret(path: &Path, what: &'static str) -> Result<String, SecretFileError> {
    let read_failed = |source| SecretFileError::Read {
        what,
        path: path.to_owned(),
        source,
    };
    if let Some(mode) = exposed_mode(path).map_err(read_failed)? {
        return Err(SecretFileError::Exposed {
            what,
            path: path.to_owned(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(read_failed)?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(SecretFileError::Empty {
            what,
            path: path.to_owned(),
        });
    }
    Ok(secret.to_owned())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_secret_others_can_read_is_refused_without_showing_it() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("password");
        std::fs::write(&path, "s3cret-value\n").expect("written");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("mode");
        let error = read_secret(&path, "ClickHouse password")
            .expect_err("refused")
            .to_string();
        assert!(error.contains("chmod 600") && !error.contains("s3cret"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("mode");
        assert_eq!(read_secret(&path, "ClickHouse password").expect("read"), "s3cret-value");
    }

    #[test]
    fn an_empty_secret_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("password");
        std::fs::write(&path, "\n").expect("written");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("mode");
        assert!(matches!(read_secret(&path, "x"), Err(SecretFileError::Empty { .. })));
    }
}

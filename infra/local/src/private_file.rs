//! Files that hold secrets: keys, passwords, credentials.

use std::path::Path;

use crate::LocalError;

/// Writes `contents` to a file only its owner may read (created that way, never readable by
/// others even for a moment).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), LocalError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(LocalError::io("create", path))?;
    file.write_all(contents).map_err(LocalError::io("write", path))
}

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

/// The secret in `path`, or a new random one (48 hex digits) written there readable by its owner
/// only. Kept across starts: clients were told it.
pub fn stored_or_new_secret(path: &Path) -> Result<String, LocalError> {
    use std::io::Read as _;
    if let Ok(existing) = std::fs::read_to_string(path)
        && existing.trim().len() >= 32
    {
        return Ok(existing.trim().to_owned());
    }
    let mut random = [0_u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut source| source.read_exact(&mut random))
        .map_err(LocalError::io("read", Path::new("/dev/urandom")))?;
    let secret = sealtrail_core::digest::to_hex(&random);
    write_private(path, secret.as_bytes())?;
    Ok(secret)
}

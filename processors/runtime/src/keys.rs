//! Key files: the checkpoint signing key (PKCS#8, Ed25519), the tokenization master key, and the
//! public keys a verifier trusts.
//!
//! Layout of a key directory (what `sealtrail up` creates in `<data-dir>/keys`):
//! `checkpoint-signing.pk8` (secret), `tokenization.key` (secret, 64 hex characters) and
//! `trusted/<key id>.pub` (public key, 64 hex characters).

use std::fs;
use std::path::{Path, PathBuf};

use sealtrail_core::checkpoint::{CheckpointSigner, TrustedKey};
use sealtrail_core::digest::{from_hex, to_hex};

pub const SIGNING_KEY_FILE: &str = "checkpoint-signing.pk8";
pub const TOKENIZATION_KEY_FILE: &str = "tokenization.key";
pub const TRUSTED_DIR: &str = "trusted";

/// A key file that cannot be used, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {reason}; pass the right file, or run `sealtrail keys init --dir <dir>` to make one")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path} is not a usable {what}: {reason}")]
    Invalid {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("no trusted public key found in {path} (expected *.pub files holding 64 hex characters)")]
    NoTrustedKeys { path: PathBuf },
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    fs::read(path).map_err(|e| KeyError::Unreadable {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

pub fn load_signer(path: &Path) -> Result<CheckpointSigner, KeyError> {
    CheckpointSigner::from_pkcs8(&read(path)?).map_err(|reason| KeyError::Invalid {
        path: path.to_owned(),
        what: "checkpoint signing key",
        reason,
    })
}

pub fn load_tokenization_key(path: &Path) -> Result<Vec<u8>, KeyError> {
    let text = String::from_utf8_lossy(&read(path)?).trim().to_owned();
    let key = from_hex(&text)
        .filter(|k| k.len() >= 32)
        .ok_or_else(|| KeyError::Invalid {
            path: path.to_owned(),
            what: "tokenization key",
            reason: "expected at least 64 hex characters".to_owned(),
        })?;
    Ok(key)
}

/// Like [`load_trusted`], with no key configured yet meaning none trusted (a processor adds its
/// own signing key; nothing signed by another key is accepted).
pub fn load_trusted_or_none(path: &Path) -> Result<Vec<TrustedKey>, KeyError> {
    match load_trusted(path) {
        Err(KeyError::NoTrustedKeys { .. }) => Ok(Vec::new()),
        other => other,
    }
}

/// Loads the trusted public keys from a `.pub` file or a directory of them.
pub fn load_trusted(path: &Path) -> Result<Vec<TrustedKey>, KeyError> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let entries = fs::read_dir(path).map_err(|e| KeyError::Unreadable {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|ext| ext == "pub"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_owned()]
    };
    let mut keys = Vec::new();
    for file in files {
        let text = String::from_utf8_lossy(&read(&file)?).trim().to_owned();
        let key = from_hex(&text)
            .filter(|k| k.len() == 32)
            .ok_or_else(|| KeyError::Invalid {
                path: file.clone(),
                what: "trusted public key",
                reason: "expected 64 hex characters (a raw Ed25519 public key)".to_owned(),
            })?;
        keys.push(TrustedKey::new(key));
    }
    if keys.is_empty() {
        return Err(KeyError::NoTrustedKeys { path: path.to_owned() });
    }
    Ok(keys)
}

/// What `init_key_dir` found or made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDir {
    pub signing_key: PathBuf,
    pub tokenization_key: PathBuf,
    pub trusted: PathBuf,
    pub key_id: String,
    pub created: bool,
}

/// Makes the key files in `dir` that do not exist yet (secrets readable by the owner only),
/// and publishes the signing key's public half under `trusted/`.
pub fn init_key_dir(dir: &Path) -> Result<KeyDir, KeyError> {
    let write = |path: &Path, bytes: &[u8]| -> Result<(), KeyError> {
        let failed = |e: std::io::Error| KeyError::Write {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(failed)?;
        }
        fs::write(path, bytes).map_err(failed)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if path.extension().is_none_or(|ext| ext != "pub") {
                fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(failed)?;
            }
        }
        Ok(())
    };
    let signing_key = dir.join(SIGNING_KEY_FILE);
    let tokenization_key = dir.join(TOKENIZATION_KEY_FILE);
    let trusted = dir.join(TRUSTED_DIR);
    let mut created = false;
    if !signing_key.exists() {
        let pkcs8 = CheckpointSigner::generate_pkcs8().map_err(|reason| KeyError::Write {
            path: signing_key.clone(),
            reason,
        })?;
        write(&signing_key, &pkcs8)?;
        created = true;
    }
    if !tokenization_key.exists() {
        let mut secret = [0_u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret).map_err(|_| KeyError::Write {
            path: tokenization_key.clone(),
            reason: "the system's random source failed".to_owned(),
        })?;
        write(&tokenization_key, to_hex(&secret).as_bytes())?;
        created = true;
    }
    let signer = load_signer(&signing_key)?;
    let public = TrustedKey::new(signer.public_key().to_vec());
    let public_file = trusted.join(format!("{}.pub", public.key_id));
    if !public_file.exists() {
        write(&public_file, public.to_text().as_bytes())?;
        created = true;
    }
    Ok(KeyDir {
        signing_key,
        tokenization_key,
        trusted,
        key_id: public.key_id,
        created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_dir_is_made_once_and_loads_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let made = init_key_dir(dir.path()).expect("init");
        assert!(made.created);
        let again = init_key_dir(dir.path()).expect("init again");
        assert!(!again.created);
        assert_eq!(made.key_id, again.key_id);
        let signer = load_signer(&made.signing_key).expect("signer");
        assert_eq!(signer.key_id(), made.key_id);
        assert_eq!(
            load_tokenization_key(&made.tokenization_key)
                .expect("tokenization key")
                .len(),
            32
        );
        let trusted = load_trusted(&made.trusted).expect("trusted");
        assert_eq!(trusted.len(), 1);
        assert_eq!(trusted[0].key_id, made.key_id);
        assert!(matches!(load_trusted(dir.path()), Err(KeyError::NoTrustedKeys { .. })));
    }
}

//! The local stack's certificate authority: a CA kept in the data directory, and a server
//! certificate for `localhost` and `127.0.0.1` it signs, so every hop of the local stack can run
//! TLS with one CA its clients trust (`SEALTRAIL_CA_FILE`). Keys are written readable by their
//! owner only.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::LocalError;
use crate::private_file::write_private;

/// The CA and the server certificate, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCa {
    /// The CA certificate: what clients trust.
    pub ca_file: PathBuf,
    /// The server certificate of `localhost` and `127.0.0.1`, and its key.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl LocalCa {
    /// The files in `dir`, made on first use and kept after (a CA that changed at every start
    /// would invalidate what clients were told to trust).
    pub fn ensure(dir: &Path) -> Result<Self, LocalError> {
        let ca = Self {
            ca_file: dir.join("ca.pem"),
            cert_file: dir.join("server.pem"),
            key_file: dir.join("server.key"),
        };
        if ca.ca_file.is_file() && ca.cert_file.is_file() && ca.key_file.is_file() {
            return Ok(ca);
        }
        std::fs::create_dir_all(dir).map_err(LocalError::io("create", dir))?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(LocalError::io("protect", dir))?;
        }
        let failed = |reason: rcgen::Error| LocalError::Certificates {
            dir: dir.to_owned(),
            reason: reason.to_string(),
        };
        let ca_key = KeyPair::generate().map_err(failed)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "sealtrail local CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(failed)?;
        let issuer = Issuer::new(ca_params, &ca_key);

        let server_key = KeyPair::generate().map_err(failed)?;
        let mut server_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).map_err(failed)?;
        server_params.distinguished_name.push(DnType::CommonName, "localhost");
        let server_cert = server_params.signed_by(&server_key, &issuer).map_err(failed)?;

        write_private(&dir.join("ca.key"), ca_key.serialize_pem().as_bytes())?;
        write_private(&ca.key_file, server_key.serialize_pem().as_bytes())?;
        std::fs::write(&ca.cert_file, server_cert.pem()).map_err(LocalError::io("write", &ca.cert_file))?;
        // Last: its presence says the set is complete.
        std::fs::write(&ca.ca_file, ca_cert.pem()).map_err(LocalError::io("write", &ca.ca_file))?;
        Ok(ca)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_made_once_and_its_keys_are_private() {
        let dir = tempfile::tempdir().expect("dir");
        let first = LocalCa::ensure(dir.path()).expect("made");
        let ca_pem = std::fs::read_to_string(&first.ca_file).expect("ca");
        assert!(ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let again = LocalCa::ensure(dir.path()).expect("kept");
        assert_eq!(
            std::fs::read_to_string(&again.ca_file).expect("ca"),
            ca_pem,
            "kept, not remade"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&first.key_file).expect("key").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}

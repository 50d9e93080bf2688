//! The local engine's users: the configuration it starts with (written on every start, so it
//! always matches this build), the tenant-bound readers' password and each component's own (made
//! once per data directory, kept private to its owner).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use sealtrail_clickhouse::ClickHouseSettings;
use sealtrail_clickhouse::access::{AccessConfig, Component, PasswordSource, local_engine_config};
use sha2::{Digest as _, Sha256};

use sealtrail_core::digest::to_hex;

use crate::private_file::{stored_or_new_secret, write_private};
use crate::{DataDir, LocalError};

const ACCESS_DIR: &str = "clickhouse-access";
const PASSWORD_FILE: &str = "reader.password";
const ADMIN_PASSWORD_FILE: &str = "admin.password";
pub use sealtrail_clickhouse::access::ADMIN_USER;

/// The files the engine needs to enforce sealtrail's access rules, and the password of its
/// tenant-bound readers.
#[derive(Clone)]
pub struct EngineAccess {
    pub config_file: PathBuf,
    /// The file holding the tenant-bound readers' password.
    pub reader_password_file: PathBuf,
    /// The file holding the administrator's (`ADMIN_USER`) password.
    pub admin_password_file: PathBuf,
    /// Each component's ClickHouse password file (its user is `component.user()`).
    pub component_password_files: Vec<(Component, PathBuf)>,
}

impl std::fmt::Debug for EngineAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineAccess")
            .field("config_file", &self.config_file)
            .finish_non_exhaustive()
    }
}

/// Writes the engine's configuration for `databases` (besides `sealtrail` and the API
/// benchmark's) into the data
/// directory, making the readers' password on first use.
pub fn prepare_engine_access(data_dir: &DataDir, extra_databases: &[String]) -> Result<EngineAccess, LocalError> {
    let dir = data_dir.root().join(ACCESS_DIR);
    fs::create_dir_all(&dir).map_err(LocalError::io("create", &dir))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(LocalError::io("protect", &dir))?;
    let reader_password_file = dir.join(PASSWORD_FILE);
    let reader_password = stored_or_new_secret(&reader_password_file)?;
    let admin_password_file = dir.join(ADMIN_PASSWORD_FILE);
    let admin_password = stored_or_new_secret(&admin_password_file)?;
    let mut component_passwords = Vec::new();
    let mut component_password_files = Vec::new();
    for component in Component::ALL {
        let file = dir.join(format!("{}.password", component.user()));
        component_passwords.push((component, stored_or_new_secret(&file)?));
        component_password_files.push((component, file));
    }
    let digest = |password: &str| PasswordSource::Sha256Hex(to_hex(&Sha256::digest(password.as_bytes())));
    let mut databases = vec![
        ClickHouseSettings::DEFAULT_DATABASE.to_owned(),
        ClickHouseSettings::BENCH_DATABASE.to_owned(),
    ];
    databases.extend(
        extra_databases
            .iter()
            .filter(|d| !databases.contains(d))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let users = AccessConfig {
        databases,
        networks: vec!["127.0.0.1".to_owned(), "::1".to_owned()],
        password: digest(&reader_password),
        component_passwords: component_passwords
            .iter()
            .map(|(component, password)| (*component, digest(password)))
            .collect(),
        default_admin: Some(digest(&admin_password)),
    }
    .users_xml();
    let users_file = dir.join("users.xml");
    write_private(&users_file, users.as_bytes())?;
    let config_file = dir.join("config.xml");
    write_private(&config_file, local_engine_config(&users_file).as_bytes())?;
    Ok(EngineAccess {
        config_file,
        reader_password_file,
        admin_password_file,
        component_password_files,
    })
}

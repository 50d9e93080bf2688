//! The local engine's users: the configuration it starts with (written on every start, so it
//! always matches this build), the tenant-bound readers' password and each component's own (made
//! once per data directory, kept private to its owner).

use std::fs;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use sealtrail_clickhouse::ClickHouseSettings;
use sealtrail_clickhouse::access::{AccessConfig, Component, PasswordSource, local_engine_config};
use sha2::{Digest as _, Sha256};

use crate::private_file::write_private;
use crate::{DataDir, LocalError};

const ACCESS_DIR: &str = "clickhouse-access";
const PASSWORD_FILE: &str = "reader.password";

/// The readers' password of a data directory's stack, once `prepare_engine_access` made it.
pub fn stored_reader_password(data_dir: &DataDir) -> Option<String> {
    fs::read_to_string(data_dir.root().join(ACCESS_DIR).join(PASSWORD_FILE))
        .ok()
        .map(|text| text.trim().to_owned())
}

/// The files the engine needs to enforce sealtrail's access rules, and the password of its
/// tenant-bound readers.
#[derive(Debug, Clone)]
pub struct EngineAccess {
    pub config_file: PathBuf,
    pub reader_password: String,
    /// Each component's ClickHouse password (its user is `component.user()`).
    pub component_passwords: Vec<(Component, String)>,
}

/// Writes the engine's configuration for `databases` (besides `sealtrail` and the API
/// benchmark's) into the data
/// directory, making the readers' password on first use.
pub fn prepare_engine_access(data_dir: &DataDir, extra_databases: &[String]) -> Result<EngineAccess, LocalError> {
    let dir = data_dir.root().join(ACCESS_DIR);
    fs::create_dir_all(&dir).map_err(LocalError::io("create", &dir))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(LocalError::io("protect", &dir))?;
    let reader_password = stored_or_new_password(&dir.join(PASSWORD_FILE))?;
    let component_passwords = Component::ALL
        .iter()
        .map(|component| {
            stored_or_new_password(&dir.join(format!("{}.password", component.user()))).map(|p| (*component, p))
        })
        .collect::<Result<Vec<_>, _>>()?;
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
        password: PasswordSource::Sha256Hex(hex(&Sha256::digest(reader_password.as_bytes()))),
        component_passwords: component_passwords
            .iter()
            .map(|(component, password)| {
                (
                    *component,
                    PasswordSource::Sha256Hex(hex(&Sha256::digest(password.as_bytes()))),
                )
            })
            .collect(),
        define_default_admin: true,
    }
    .users_xml();
    let users_file = dir.join("users.xml");
    write_private(&users_file, users.as_bytes())?;
    let config_file = dir.join("config.xml");
    write_private(&config_file, local_engine_config(&users_file).as_bytes())?;
    Ok(EngineAccess {
        config_file,
        reader_password,
        component_passwords,
    })
}

/// The password in `path`, or a new random one written there.
fn stored_or_new_password(path: &Path) -> Result<String, LocalError> {
    if let Ok(existing) = fs::read_to_string(path)
        && existing.trim().len() >= 32
    {
        return Ok(existing.trim().to_owned());
    }
    let mut random = [0_u8; 24];
    fs::File::open("/dev/urandom")
        .and_then(|mut source| source.read_exact(&mut random))
        .map_err(LocalError::io("read", Path::new("/dev/urandom")))?;
    let password = hex(&random);
    write_private(path, password.as_bytes())?;
    Ok(password)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut text, byte| {
            let _ = write!(text, "{byte:02x}");
            text
        })
}

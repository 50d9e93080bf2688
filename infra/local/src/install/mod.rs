//! Installing what the local stack runs, once per machine, into a cache directory.

mod clickhouse;
mod progress;
mod python;
mod system_packages;
mod tansu;
mod tansu_source;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::LocalError;
pub use clickhouse::ensure_clickhouse_engine;
pub use python::ensure_python_interop;
pub use system_packages::{ensure_browser, ensure_node};
pub use tansu::ensure_tansu;

/// The per-user cache where installed components live: `$SEALTRAIL_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/sealtrail`, else `~/.cache/sealtrail`.
#[derive(Debug, Clone)]
pub struct CacheDir {
    root: PathBuf,
}

/// An installed component: where it is and whether this call installed it.
#[derive(Debug, Clone)]
pub struct Installed {
    pub path: PathBuf,
    pub newly_installed: bool,
}

impl CacheDir {
    pub fn from_env() -> Self {
        let root = std::env::var_os("SEALTRAIL_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|dir| PathBuf::from(dir).join("sealtrail")))
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/sealtrail")))
            .unwrap_or_else(|| std::env::temp_dir().join("sealtrail-cache"));
        Self { root }
    }

    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Serializes installs across processes (two test binaries may start at once): the second
    /// waits for the first, then finds the component installed.
    fn lock(&self, name: &str) -> Result<Flock<File>, LocalError> {
        std::fs::create_dir_all(&self.root).map_err(LocalError::io("create", &self.root))?;
        let path = self.root.join(format!("{name}.install.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(LocalError::io("open", &path))?;
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| LocalError::Io {
            action: "lock",
            path,
            source: errno.into(),
        })
    }
}

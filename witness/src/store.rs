//! What a witness remembers, on disk: per origin, an append-only file of the checkpoints it
//! cosigned (`<number> <checkpoint_hash>` lines), each line synced before the cosignature is
//! answered, so a witness that restarts never cosigns a second history.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};

use sealtrail_core::digest::{Digest, to_hex};
use sealtrail_core::witness::OriginHistory;
use sha2::{Digest as _, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} line {line} is not `<number> <checkpoint hash>`: the witness state is damaged; restore it from a backup"
    )]
    Damaged { path: PathBuf, line: usize },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_owned();
    move |source| StoreError::Io { action, path, source }
}

/// The cosigned checkpoints of every origin, in memory and on disk.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    origins: HashMap<String, OriginHistory>,
}

impl Store {
    /// Reads every origin's file under `dir/origins`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let dir = dir.join("origins");
        fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let mut origins = HashMap::new();
        for entry in fs::read_dir(&dir).map_err(io("read", &dir))? {
            let path = entry.map_err(io("read", &dir))?.path();
            if path.extension().is_none_or(|ext| ext != "log") {
                continue;
            }
            let file = File::open(&path).map_err(io("open", &path))?;
            let mut lines = BufReader::new(file).lines();
            let Some(origin) = lines.next().transpose().map_err(io("read", &path))? else {
                continue;
            };
            let mut history = OriginHistory::default();
            for (index, line) in lines.enumerate() {
                let line = line.map_err(io("read", &path))?;
                let damaged = || StoreError::Damaged {
                    path: path.clone(),
                    line: index + 2,
                };
                let (number, hash) = line.split_once(' ').ok_or_else(damaged)?;
                let number: u64 = number.parse().map_err(|_| damaged())?;
                let hash = Digest::from_hex(hash).ok_or_else(damaged)?;
                history.record(number, hash);
            }
            origins.insert(origin, history);
        }
        Ok(Self { dir, origins })
    }

    pub fn history(&self, origin: &str) -> Option<&OriginHistory> {
        self.origins.get(origin)
    }

    pub fn origins(&self) -> impl Iterator<Item = (&String, &OriginHistory)> {
        self.origins.iter()
    }

    /// Appends a cosigned checkpoint to the origin's file and syncs it, then remembers it.
    pub fn record(&mut self, origin: &str, number: u64, hash: Digest) -> Result<(), StoreError> {
        let name = to_hex(&Sha256::digest(origin.as_bytes()));
        let path = self.dir.join(format!("{name}.log"));
        let new = !path.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io("open", &path))?;
        let header = if new { format!("{origin}\n") } else { String::new() };
        let text = format!("{header}{number} {}\n", hash.to_hex());
        file.write_all(text.as_bytes()).map_err(io("write", &path))?;
        file.sync_all().map_err(io("sync", &path))?;
        if new {
            File::open(&self.dir)
                .and_then(|dir| dir.sync_all())
                .map_err(io("sync", &self.dir))?;
        }
        self.origins.entry(origin.to_owned()).or_default().record(number, hash);
        Ok(())
    }
}

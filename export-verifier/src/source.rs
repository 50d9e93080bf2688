//! Where an export's files are read from.

use std::path::{Path, PathBuf};

/// Why a file of the export could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a readable tar: {source}")]
    NotTar { path: PathBuf, source: std::io::Error },
    #[error("NOT VERIFIED: the tar holds `{name}`; an export holds plain file names only")]
    UnsafeName { name: String },
    #[error("cannot make a temporary directory to unpack the tar into: {0}")]
    Temporary(std::io::Error),
}

/// The files of an export, by their plain names (`manifest.json`, `events-00001.ndjson.gz`, ...).
pub trait ExportFiles {
    fn read(&self, name: &str) -> Result<Vec<u8>, SourceError>;
}

/// An export written to a directory.
#[derive(Debug, Clone)]
pub struct ExportDirectory {
    dir: PathBuf,
}

impl ExportDirectory {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

impl ExportFiles for ExportDirectory {
    fn read(&self, name: &str) -> Result<Vec<u8>, SourceError> {
        let path = self.dir.join(name);
        std::fs::read(&path).map_err(|source| SourceError::Read { path, source })
    }
}

/// An export downloaded as a tar: unpacked once into a private temporary directory, removed
/// when dropped. Only regular files with plain names are taken, so nothing lands outside it.
#[derive(Debug)]
pub struct ExportTar {
    unpacked: tempfile::TempDir,
}

impl ExportTar {
    pub fn open(tar_path: &Path) -> Result<Self, SourceError> {
        let not_tar = |source| SourceError::NotTar {
            path: tar_path.to_owned(),
            source,
        };
        let unpacked = tempfile::tempdir().map_err(SourceError::Temporary)?;
        let file = std::fs::File::open(tar_path).map_err(|source| SourceError::Read {
            path: tar_path.to_owned(),
            source,
        })?;
        let mut archive = tar::Archive::new(file);
        for entry in archive.entries().map_err(not_tar)? {
            let mut entry = entry.map_err(not_tar)?;
            let name = entry.path().map_err(not_tar)?.to_string_lossy().into_owned();
            if name.is_empty() || name.contains(['/', '\\']) || name == ".." || name == "." {
                return Err(SourceError::UnsafeName { name });
            }
            if entry.header().entry_type().is_file() {
                entry.unpack(unpacked.path().join(&name)).map_err(not_tar)?;
            }
        }
        Ok(Self { unpacked })
    }
}

impl ExportFiles for ExportTar {
    fn read(&self, name: &str) -> Result<Vec<u8>, SourceError> {
        ExportDirectory::new(self.unpacked.path()).read(name)
    }
}

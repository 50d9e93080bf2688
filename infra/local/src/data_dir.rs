//! The data directory of a local stack: what lives where, who owns it, and what it serves.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::LocalError;

/// A data directory: broker storage, ClickHouse data, logs and run-time files.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// Held while a supervisor runs on a data directory; released when the process ends, however.
#[derive(Debug)]
pub struct DataDirLock {
    _lock: Flock<File>,
}

impl DataDir {
    /// Opens (creating if needed) the data directory at `path`.
    pub fn open(path: &Path) -> Result<Self, LocalError> {
        let unusable = |reason: String| LocalError::DataDirUnusable {
            path: path.to_owned(),
            reason,
        };
        if path.exists() && !path.is_dir() {
            return Err(unusable("it exists and is not a directory".to_owned()));
        }
        fs::create_dir_all(path).map_err(|e| unusable(e.to_string()))?;
        let root = path.canonicalize().map_err(|e| unusable(e.to_string()))?;
        let dir = Self { root };
        for sub in [dir.run_dir(), dir.logs_dir(), dir.kafka_dir(), dir.clickhouse_dir()] {
            if sub.exists() && !sub.is_dir() {
                return Err(unusable(format!("{} is not a directory", sub.display())));
            }
            fs::create_dir_all(&sub).map_err(|e| unusable(format!("{}: {e}", sub.display())))?;
        }
        Ok(dir)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn kafka_dir(&self) -> PathBuf {
        self.root.join("kafka")
    }

    pub fn clickhouse_dir(&self) -> PathBuf {
        self.root.join("clickhouse")
    }

    pub fn endpoints_file(&self) -> PathBuf {
        self.root.join("endpoints.env")
    }

    pub fn ports_file(&self) -> PathBuf {
        self.root.join("ports.json")
    }

    fn lock_file(&self) -> PathBuf {
        self.run_dir().join("supervisor.lock")
    }

    /// Takes the directory for this process, failing if another supervisor holds it.
    pub fn lock(&self) -> Result<DataDirLock, LocalError> {
        let path = self.lock_file();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(LocalError::io("open", &path))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                lock.set_len(0).map_err(LocalError::io("write", &path))?;
                write!(lock, "{}", std::process::id()).map_err(LocalError::io("write", &path))?;
                Ok(DataDirLock { _lock: lock })
            }
            Err((mut file, _)) => {
                let mut pid = String::new();
                file.read_to_string(&mut pid).map_err(LocalError::io("read", &path))?;
                Err(LocalError::AlreadyRunning {
                    data_dir: self.root.clone(),
                    pid: pid.trim().to_owned(),
                })
            }
        }
    }

    /// The pid of the supervisor running on this directory, if one is.
    pub fn running_supervisor(&self) -> Result<Option<i32>, LocalError> {
        match self.lock() {
            Ok(_released_on_drop) => Ok(None),
            Err(LocalError::AlreadyRunning { pid, .. }) => Ok(pid.parse().ok()),
            Err(other) => Err(other),
        }
    }

    /// Refuses to start the broker on a storage file that is not a SQLite database, which Tansu
    /// would otherwise report with an obscure error or overwrite.
    pub fn check_broker_storage(&self) -> Result<(), LocalError> {
        let path = self.kafka_dir().join("tansu.db");
        let Ok(mut file) = File::open(&path) else {
            return Ok(());
        };
        let mut header = [0_u8; 16];
        let read = file.read(&mut header).map_err(LocalError::io("read", &path))?;
        if read == 0 {
            return Ok(());
        }
        if read < header.len() || &header != b"SQLite format 3\0" {
            return Err(LocalError::Corrupt {
                path,
                reason: "not a SQLite database".to_owned(),
            });
        }
        Ok(())
    }
}

/// Where the running stack answers, as written to `endpoints.env`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Endpoints {
    pub kafka_bootstrap: String,
    pub schema_registry_url: String,
    pub clickhouse_url: String,
    pub api_url: Option<String>,
    /// Further settings of the running pipeline (topics, database, key locations), in order.
    pub extra: Vec<(String, String)>,
}

impl Endpoints {
    /// `KEY=VALUE` lines, the same variable names the services read in production.
    pub fn to_env(&self) -> String {
        let mut text = format!(
            "KAFKA_BOOTSTRAP={}\nSCHEMA_REGISTRY_URL={}\nCLICKHOUSE_URL={}\n",
            self.kafka_bootstrap, self.schema_registry_url, self.clickhouse_url
        );
        if let Some(api) = &self.api_url {
            text.push_str("API_URL=");
            text.push_str(api);
            text.push('\n');
        }
        for (key, value) in &self.extra {
            text.push_str(key);
            text.push('=');
            // A value with spaces (METRICS_URLS) is quoted, so a shell can source the file.
            if value.contains(' ') {
                text.push('"');
                text.push_str(value);
                text.push('"');
            } else {
                text.push_str(value);
            }
            text.push('\n');
        }
        text
    }

    /// A further setting by name.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.extra.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn parse(text: &str) -> Self {
        let mut endpoints = Self::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|quoted| quoted.strip_suffix('"'))
                .unwrap_or(value)
                .to_owned();
            match key.trim() {
                "KAFKA_BOOTSTRAP" => endpoints.kafka_bootstrap = value,
                "SCHEMA_REGISTRY_URL" => endpoints.schema_registry_url = value,
                "CLICKHOUSE_URL" => endpoints.clickhouse_url = value,
                "API_URL" => endpoints.api_url = Some(value),
                other => endpoints.extra.push((other.to_owned(), value)),
            }
        }
        endpoints
    }

    /// Writes the file whole or not at all, so a reader never sees half of it.
    pub fn write(&self, path: &Path) -> Result<(), LocalError> {
        let partial = path.with_extension("env.partial");
        fs::write(&partial, self.to_env()).map_err(LocalError::io("write", &partial))?;
        fs::rename(&partial, path).map_err(LocalError::io("write", path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_round_trip_through_the_env_file() {
        let endpoints = Endpoints {
            kafka_bootstrap: "127.0.0.1:9092".into(),
            schema_registry_url: "http://127.0.0.1:8081".into(),
            clickhouse_url: "http://127.0.0.1:8123".into(),
            api_url: None,
            extra: vec![
                ("RAW_TOPIC".into(), "audit-events".into()),
                (
                    "METRICS_URLS".into(),
                    "http://127.0.0.1:1/metrics http://127.0.0.1:2/metrics".into(),
                ),
            ],
        };
        assert!(
            endpoints
                .to_env()
                .contains("METRICS_URLS=\"http://127.0.0.1:1/metrics http://127.0.0.1:2/metrics\"\n"),
            "quoted for a shell"
        );
        assert_eq!(Endpoints::parse(&endpoints.to_env()), endpoints);
    }

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = DataDir::open(dir.path()).expect("opens");
        let _held = data.lock().expect("first lock");
        match data.lock() {
            Err(LocalError::AlreadyRunning { pid, .. }) => assert_eq!(pid, std::process::id().to_string()),
            other => panic!("expected AlreadyRunning, got {other:?}"),
        }
    }

    #[test]
    fn a_storage_file_that_is_not_sqlite_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = DataDir::open(dir.path()).expect("opens");
        data.check_broker_storage().expect("no file yet is fine");
        fs::write(data.kafka_dir().join("tansu.db"), b"definitely not a database").expect("write");
        let error = data.check_broker_storage().expect_err("refused");
        assert!(error.to_string().contains("not a SQLite database"), "{error}");
    }

    #[test]
    fn a_file_in_place_of_the_directory_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("not-a-dir");
        fs::write(&file, b"x").expect("write");
        let error = DataDir::open(&file).expect_err("refused");
        assert!(error.to_string().contains("not a directory"), "{error}");
    }
}

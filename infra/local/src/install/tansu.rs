//! Tansu, the Kafka-API broker of the local stack, built from crates.io with cargo.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::progress::InstallProgress;
use super::{CacheDir, Installed};
use crate::LocalError;

pub const TANSU_VERSION: &str = "0.6.0";
/// Crates compiled by the install, measured; sizes the progress bar.
const EXPECTED_CRATES: u64 = 410;

/// Returns the Tansu binary, installing it into the cache when missing and `allow_install`.
///
/// `SEALTRAIL_TANSU_BIN` names a binary to use instead (for machines that build it elsewhere).
pub async fn ensure_tansu(cache: &CacheDir, allow_install: bool) -> Result<Installed, LocalError> {
    if let Some(path) = std::env::var_os("SEALTRAIL_TANSU_BIN").map(PathBuf::from) {
        if path.is_file() {
            return Ok(Installed {
                path,
                newly_installed: false,
            });
        }
        return Err(LocalError::MissingBinary {
            what: "Tansu (from SEALTRAIL_TANSU_BIN)",
            path,
            hint: "unset SEALTRAIL_TANSU_BIN to let sealtrail install Tansu 0.6.0, or point it at a tansu 0.6.0 binary",
        });
    }
    let home = cache.root().join(format!("tansu-{TANSU_VERSION}"));
    let binary = home.join("bin/tansu");
    if is_expected_version(&binary).await {
        return Ok(Installed {
            path: binary,
            newly_installed: false,
        });
    }
    if !allow_install {
        return Err(LocalError::MissingBinary {
            what: "Tansu",
            path: binary,
            hint: "run `sealtrail setup` to install it (about 12 minutes on 2 cores, once)",
        });
    }
    let _lock = cache.lock("tansu")?;
    if is_expected_version(&binary).await {
        return Ok(Installed {
            path: binary,
            newly_installed: false,
        });
    }
    install(cache, &home).await?;
    Ok(Installed {
        path: binary,
        newly_installed: true,
    })
}

async fn is_expected_version(binary: &Path) -> bool {
    let Ok(output) = Command::new(binary).arg("--version").output().await else {
        return false;
    };
    String::from_utf8_lossy(&output.stdout).trim() == format!("tansu {TANSU_VERSION}")
}

async fn install(cache: &CacheDir, home: &Path) -> Result<(), LocalError> {
    let failed = |reason: String| LocalError::Install { what: "Tansu", reason };
    let partial = cache.root().join(format!("tansu-{TANSU_VERSION}.partial"));
    // A kept target directory lets an interrupted install resume instead of starting over.
    let target_dir = cache.root().join("tansu-build");
    eprintln!(
        "Installing Tansu {TANSU_VERSION} (the Kafka-API broker of the local stack) into {}\n  \
         with `cargo install`; this takes about 12 minutes on 2 cores and happens once.",
        home.display()
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut child = Command::new(&cargo)
        .args(["install", "tansu", "--version", TANSU_VERSION, "--locked"])
        .args(["--features", "libsql,dynostore"])
        .arg("--root")
        .arg(&partial)
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            failed(format!(
                "cannot run {} ({e}); install Rust from https://rustup.rs or set SEALTRAIL_TANSU_BIN to a tansu {TANSU_VERSION} binary",
                cargo.to_string_lossy()
            ))
        })?;
    let mut progress = InstallProgress::start("Tansu install", Some(EXPECTED_CRATES));
    let mut recent: VecDeque<String> = VecDeque::with_capacity(20);
    if let Some(stderr) = child.stderr.take() {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let line = line.trim().to_owned();
            if let Some(krate) = line.strip_prefix("Compiling ") {
                progress.step(&format!("compiling {krate}"));
            } else if !line.is_empty() {
                progress.message(&line);
            }
            if recent.len() == 20 {
                recent.pop_front();
            }
            recent.push_back(line);
        }
    }
    let status = child.wait().await.map_err(|e| failed(e.to_string()))?;
    if !status.success() {
        progress.abandon();
        let tail: Vec<String> = recent.into_iter().collect();
        return Err(failed(format!(
            "cargo install exited with {status}; its last lines: {}",
            tail.join(" | ")
        )));
    }
    if home.exists() {
        std::fs::remove_dir_all(home).map_err(LocalError::io("replace", home))?;
    }
    std::fs::rename(&partial, home).map_err(LocalError::io("move the install into", home))?;
    std::fs::remove_dir_all(&target_dir).ok();
    progress.finish(&format!("finished: {}", home.join("bin/tansu").display()));
    Ok(())
}

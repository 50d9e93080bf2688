//! Tansu, the Kafka-API broker of the local stack, built with cargo from its crates.io source
//! with sealtrail's patches (see `tansu_source`).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::progress::InstallProgress;
use super::tansu_source::{self, PATCH_LEVEL, TANSU_VERSION};
use super::{CacheDir, Installed};
use crate::LocalError;

/// Written next to the binary: the patch level it was built with.
const PATCH_MARKER: &str = "sealtrail-patch-level";
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
    let home = cache.root().join(format!("tansu-{TANSU_VERSION}-{PATCH_LEVEL}"));
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
    let patched = binary
        .parent()
        .and_then(Path::parent)
        .and_then(|home| std::fs::read_to_string(home.join(PATCH_MARKER)).ok())
        .is_some_and(|level| level.trim() == PATCH_LEVEL);
    if !patched {
        return false;
    }
    let Ok(output) = Command::new(binary).arg("--version").output().await else {
        return false;
    };
    String::from_utf8_lossy(&output.stdout).trim() == format!("tansu {TANSU_VERSION}")
}

async fn install(cache: &CacheDir, home: &Path) -> Result<(), LocalError> {
    let failed = |reason: String| LocalError::Install { what: "Tansu", reason };
    let partial = cache
        .root()
        .join(format!("tansu-{TANSU_VERSION}-{PATCH_LEVEL}.partial"));
    // A kept target directory lets an interrupted install resume instead of starting over.
    let target_dir = cache.root().join("tansu-build");
    eprintln!(
        "Installing Tansu {TANSU_VERSION} (the Kafka-API broker of the local stack, with sealtrail's patch \
         {PATCH_LEVEL}) into {}\n  with `cargo build`; this takes about 12 minutes on 2 cores and happens once.",
        home.display()
    );
    let source = tansu_source::prepare(&cache.root().join("tansu-source")).await?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Not `--locked`: the lock file shipped with the crate names the unpatched storage crate; cargo
    // changes only that entry and keeps every other pinned version.
    let mut child = Command::new(&cargo)
        .args(["build", "--release", "--bin", "tansu"])
        .args(["--features", "libsql,dynostore"])
        .arg("--manifest-path")
        .arg(source.join("Cargo.toml"))
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
            "cargo build exited with {status}; its last lines: {}",
            tail.join(" | ")
        )));
    }
    let bin = partial.join("bin");
    std::fs::create_dir_all(&bin).map_err(LocalError::io("create", &bin))?;
    let built = target_dir.join("release/tansu");
    std::fs::copy(&built, bin.join("tansu")).map_err(LocalError::io("copy", &built))?;
    let marker = partial.join(PATCH_MARKER);
    std::fs::write(&marker, PATCH_LEVEL).map_err(LocalError::io("write", &marker))?;
    if home.exists() {
        std::fs::remove_dir_all(home).map_err(LocalError::io("replace", home))?;
    }
    std::fs::rename(&partial, home).map_err(LocalError::io("move the install into", home))?;
    std::fs::remove_dir_all(&target_dir).ok();
    std::fs::remove_dir_all(cache.root().join("tansu-source")).ok();
    let pruned = prune_older_patch_levels(cache.root(), home);
    progress.finish(&format!(
        "finished: {}{}",
        home.join("bin/tansu").display(),
        if pruned.is_empty() {
            String::new()
        } else {
            format!(" (removed the builds of older patch levels: {})", pruned.join(", "))
        }
    ));
    Ok(())
}

/// Removes the builds of patch levels older than `home`'s (about 60 MB each): nothing this
/// checkout runs needs them once `home` is installed. Newer levels stay: another checkout of a
/// later commit may share the cache. A stack still running an old build keeps its open binary.
fn prune_older_patch_levels(cache_root: &Path, home: &Path) -> Vec<String> {
    let prefix = format!("tansu-{TANSU_VERSION}-sealtrail.");
    let level = |path: &Path| {
        let name = path.file_name()?.to_str()?;
        name.strip_prefix(&prefix)?.parse::<u32>().ok()
    };
    let (Some(current), Ok(entries)) = (level(home), std::fs::read_dir(cache_root)) else {
        return Vec::new();
    };
    let mut pruned = Vec::new();
    for path in entries.flatten().map(|entry| entry.path()) {
        if level(&path).is_some_and(|level| level < current) && std::fs::remove_dir_all(&path).is_ok() {
            pruned.extend(path.file_name().map(|name| name.to_string_lossy().into_owned()));
        }
    }
    pruned.sort();
    pruned
}

#[cfg(test)]
mod tests {
    use super::{TANSU_VERSION, prune_older_patch_levels};

    #[test]
    fn only_older_patch_levels_are_pruned() {
        let root = std::env::temp_dir().join(format!("sealtrail-prune-{}", std::process::id()));
        let name = |level: u32| format!("tansu-{TANSU_VERSION}-sealtrail.{level}");
        let kept = [name(8), name(9), "clickhouse-26.7.3-stable.1".to_owned()];
        let older = name(7);
        for dir in kept.iter().chain([&older]) {
            std::fs::create_dir_all(root.join(dir).join("bin")).expect("create");
        }
        let pruned = prune_older_patch_levels(&root, &root.join(name(8)));
        assert_eq!(pruned, vec![older.clone()]);
        assert!(!root.join(&older).exists());
        for dir in &kept {
            assert!(root.join(dir).exists(), "{dir} is kept");
        }
        std::fs::remove_dir_all(&root).ok();
    }
}

//! The ClickHouse engine library, fetched from npm (`@chdb/lib-linux-x64-gnu`), pinned exactly.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::progress::InstallProgress;
use super::{CacheDir, Installed};
use crate::LocalError;

pub const PACKAGE: &str = "@chdb/lib-linux-x64-gnu";
/// Pinned: later releases reject `--http_port`, which the launcher relies on.
pub const VERSION: &str = "26.7.3-stable.1";
/// The registry's integrity digest of the pinned tarball; a different tarball is refused.
const INTEGRITY: &str =
    "sha512-XP97mMqnc5tZpKQywR8N7cLTsHNiTmHr30pC5mzo3jWmukjKn2IBa60c2B/gWUNcuFjOMjWoorQICCqBVj5wpw==";

/// Returns the engine library, fetching it into the cache when missing and `allow_install`.
///
/// `SEALTRAIL_CLICKHOUSE_LIB` names a `libchdb.so` to use instead.
pub async fn ensure_clickhouse_engine(cache: &CacheDir, allow_install: bool) -> Result<Installed, LocalError> {
    if let Some(path) = std::env::var_os("SEALTRAIL_CLICKHOUSE_LIB").map(PathBuf::from) {
        if path.is_file() {
            return Ok(Installed {
                path,
                newly_installed: false,
            });
        }
        return Err(LocalError::MissingBinary {
            what: "the ClickHouse engine (from SEALTRAIL_CLICKHOUSE_LIB)",
            path,
            hint: "unset SEALTRAIL_CLICKHOUSE_LIB to let sealtrail fetch it, or point it at libchdb.so",
        });
    }
    let home = cache.root().join(format!("clickhouse-{VERSION}"));
    let library = home.join("libchdb.so");
    if library.is_file() {
        return Ok(Installed {
            path: library,
            newly_installed: false,
        });
    }
    if !allow_install {
        return Err(LocalError::MissingBinary {
            what: "the ClickHouse engine",
            path: library,
            hint: "run `sealtrail setup` to fetch it (a 178 MB download from npm, once)",
        });
    }
    let _lock = cache.lock("clickhouse")?;
    if !library.is_file() {
        fetch(cache, &home).await?;
    }
    Ok(Installed {
        path: library,
        newly_installed: true,
    })
}

async fn fetch(cache: &CacheDir, home: &Path) -> Result<(), LocalError> {
    let failed = |reason: String| LocalError::Install {
        what: "the ClickHouse engine",
        reason,
    };
    let work = cache.root().join(format!("clickhouse-{VERSION}.partial"));
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(LocalError::io("clear", &work))?;
    }
    std::fs::create_dir_all(&work).map_err(LocalError::io("create", &work))?;
    eprintln!(
        "Fetching the ClickHouse engine {VERSION} ({PACKAGE}, 178 MB from npm, 566 MB unpacked)\n  into {}; this happens once.",
        home.display()
    );
    let mut progress = InstallProgress::start("ClickHouse engine fetch", None);

    progress.message("downloading with npm pack");
    let pack = Command::new("npm")
        .args(["pack", &format!("{PACKAGE}@{VERSION}"), "--json", "--pack-destination"])
        .arg(&work)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = with_heartbeat(&mut progress, "downloading with npm pack", pack)
        .await
        .map_err(|e| {
            failed(format!(
                "cannot run npm ({e}); install Node.js and npm (apt install npm), or set SEALTRAIL_CLICKHOUSE_LIB"
            ))
        })?;
    if !output.status.success() {
        progress.abandon();
        return Err(failed(format!(
            "npm pack exited with {}: {}",
            output.status,
            last_line(&output.stderr)
        )));
    }
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| failed(format!("npm pack printed no JSON report ({e})")))?;
    let integrity = report[0]["integrity"].as_str().unwrap_or_default();
    let filename = report[0]["filename"].as_str().unwrap_or_default();
    if integrity != INTEGRITY {
        progress.abandon();
        return Err(failed(format!(
            "the downloaded tarball has integrity {integrity}, not the pinned {INTEGRITY}; check the npm registry in use"
        )));
    }

    progress.message("unpacking libchdb.so");
    let tarball = work.join(filename.replace('@', "").replace('/', "-"));
    let unpack = Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&work)
        .arg("package/libchdb.so")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = with_heartbeat(&mut progress, "unpacking libchdb.so", unpack)
        .await
        .map_err(|e| failed(format!("cannot run tar: {e}")))?;
    if !output.status.success() {
        progress.abandon();
        return Err(failed(format!(
            "tar exited with {}: {}",
            output.status,
            last_line(&output.stderr)
        )));
    }
    std::fs::create_dir_all(home).map_err(LocalError::io("create", home))?;
    let library = home.join("libchdb.so");
    std::fs::rename(work.join("package/libchdb.so"), &library)
        .map_err(LocalError::io("move the library into", home))?;
    std::fs::remove_dir_all(&work).ok();
    progress.finish(&format!("finished: {}", library.display()));
    Ok(())
}

/// Awaits `work` while telling the user it is still going.
async fn with_heartbeat<T>(progress: &mut InstallProgress, doing: &str, work: impl Future<Output = T>) -> T {
    let mut work = std::pin::pin!(work);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            result = &mut work => return result,
            _ = ticker.tick() => progress.message(doing),
        }
    }
}

fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("no output")
        .to_owned()
}

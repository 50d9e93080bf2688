//! A child process of the supervisor: its log file, its pid file, and a clean stop.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::LocalError;

/// A running child whose output goes to `<data-dir>/logs/<name>.log`.
#[derive(Debug)]
pub struct ManagedProcess {
    what: &'static str,
    child: Child,
    pid_file: PathBuf,
    log: PathBuf,
}

impl ManagedProcess {
    /// Starts `command`, recording its pid under `run_dir` so a later start can clean up after a
    /// supervisor that was killed without stopping its children.
    pub fn spawn(
        what: &'static str,
        name: &str,
        mut command: Command,
        run_dir: &Path,
        logs_dir: &Path,
    ) -> Result<Self, LocalError> {
        let log = logs_dir.join(format!("{name}.log"));
        let log_file = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(LocalError::io("open", &log))?;
        let log_err = log_file.try_clone().map_err(LocalError::io("open", &log))?;
        command
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .kill_on_drop(true);
        let child = command.spawn().map_err(|source| LocalError::Io {
            action: "start",
            path: PathBuf::from(command.as_std().get_program()),
            source,
        })?;
        let pid_file = run_dir.join(format!("{name}.pid"));
        if let Some(pid) = child.id() {
            let stamp = format!("{pid} {}", start_time(pid).unwrap_or_default());
            // Written whole, then renamed: a reader (`down`, `status`, a test) never sees it half written.
            let partial = pid_file.with_extension("pid.partial");
            fs::write(&partial, stamp).map_err(LocalError::io("write", &partial))?;
            fs::rename(&partial, &pid_file).map_err(LocalError::io("rename", &partial))?;
        }
        Ok(Self {
            what,
            child,
            pid_file,
            log,
        })
    }

    pub fn what(&self) -> &'static str {
        self.what
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Resolves when the process exits on its own.
    pub async fn exited(&mut self) -> ExitStatus {
        loop {
            match self.child.wait().await {
                Ok(status) => return status,
                Err(error) => {
                    tracing::warn!(what = self.what, %error, "waiting for a child failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// The error to report when the process exited while it was expected to run.
    pub fn start_failure(&self, status: ExitStatus) -> LocalError {
        LocalError::StartFailed {
            what: self.what,
            status: describe(status),
            last_log_line: last_meaningful_line(&self.log),
            log: self.log.clone(),
        }
    }

    /// Asks the process to stop with SIGTERM, and kills it if it has not stopped within `grace`.
    pub async fn stop(mut self, grace: Duration) -> ExitStatus {
        if let Ok(Some(status)) = self.child.try_wait() {
            fs::remove_file(&self.pid_file).ok();
            return status;
        }
        if let Some(pid) = self.pid().and_then(|pid| i32::try_from(pid).ok()) {
            kill(Pid::from_raw(pid), Signal::SIGTERM).ok();
        }
        let status = if let Ok(status) = tokio::time::timeout(grace, self.exited()).await {
            status
        } else {
            tracing::warn!(what = self.what, ?grace, "did not stop after SIGTERM; killing it");
            self.child.start_kill().ok();
            self.exited().await
        };
        fs::remove_file(&self.pid_file).ok();
        status
    }
}

/// Stops processes left running by a supervisor that was killed (their pid files remain).
///
/// A pid file also records the process start time, so a recycled pid is never signalled.
pub async fn stop_leftovers(run_dir: &Path) {
    let Ok(entries) = fs::read_dir(run_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "pid") {
            continue;
        }
        let stamp = fs::read_to_string(&path).unwrap_or_default();
        let mut parts = stamp.split_whitespace();
        let (Some(pid), Some(started)) = (parts.next().and_then(|p| p.parse::<u32>().ok()), parts.next()) else {
            fs::remove_file(&path).ok();
            continue;
        };
        if start_time(pid).as_deref() == Some(started) {
            tracing::warn!(pid, file = %path.display(), "stopping a process left running by an earlier supervisor");
            let target = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
            kill(target, Signal::SIGTERM).ok();
            for _ in 0..100 {
                if start_time(pid).as_deref() != Some(started) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if start_time(pid).as_deref() == Some(started) {
                kill(target, Signal::SIGKILL).ok();
            }
        }
        fs::remove_file(&path).ok();
    }
}

/// The start time of a live process in clock ticks since boot (field 22 of /proc/<pid>/stat).
fn start_time(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; fields after it do not.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let state = after_name.split_whitespace().next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    after_name.split_whitespace().nth(19).map(str::to_owned)
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "unknown status".to_owned(),
    }
}

/// The last non-empty line of a log, to quote in a one-line error.
pub fn last_meaningful_line(log: &Path) -> String {
    let Ok(mut file) = File::open(log) else {
        return "no log written".to_owned();
    };
    let length = file.metadata().map(|m| m.len()).unwrap_or_default();
    file.seek(SeekFrom::Start(length.saturating_sub(16 * 1024))).ok();
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok();
    String::from_utf8_lossy(&tail)
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map_or_else(|| "no output".to_owned(), |line| line.chars().take(400).collect())
}

//! The pipeline's processors under `sealtrail up`: started as child processes, restarted when
//! they die.
//!
//! They are stateless by design (each rebuilds its state from Kafka and ClickHouse), so a
//! restart is the whole recovery; the backoff keeps a crash loop from spinning.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::{DataDir, LocalError, ManagedProcess};

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Overrides the first backoff, in milliseconds (tests restart processors many times).
const BACKOFF_ENV: &str = "SEALTRAIL_RESTART_BACKOFF_MS";
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A processor that ran this long before dying starts again at the first backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// One supervised processor.
#[derive(Debug)]
pub struct SupervisedProcessor {
    /// Its log and pid file name: the subcommand, with the instance number after the first.
    pub name: String,
    command: &'static str,
    what: &'static str,
    launcher: PathBuf,
    env: Vec<(String, String)>,
    running: Option<(ManagedProcess, Instant)>,
    restart_at: Option<Instant>,
    first_backoff: Duration,
    backoff: Duration,
    pub restarts: u32,
}

impl SupervisedProcessor {
    pub fn new(
        name: String,
        command: &'static str,
        what: &'static str,
        launcher: &Path,
        env: Vec<(String, String)>,
    ) -> Self {
        let first_backoff = std::env::var(BACKOFF_ENV)
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map_or(FIRST_BACKOFF, Duration::from_millis);
        Self {
            first_backoff,
            name,
            command,
            what,
            launcher: launcher.to_owned(),
            env,
            running: None,
            restart_at: None,
            backoff: first_backoff,
            restarts: 0,
        }
    }

    pub fn start(&mut self, data_dir: &DataDir) -> Result<(), LocalError> {
        let mut command = Command::new(&self.launcher);
        command.arg(self.command).envs(self.env.iter().map(|(k, v)| (k, v)));
        let process = ManagedProcess::spawn(
            self.what,
            &self.name,
            command,
            &data_dir.run_dir(),
            &data_dir.logs_dir(),
        )?;
        self.running = Some((process, Instant::now()));
        self.restart_at = None;
        Ok(())
    }

    /// Resolves when the running process exits (`Some(status)`) or, when none runs, when its
    /// restart is due (`None`).
    pub async fn next_event(&mut self) -> Option<ExitStatus> {
        match (self.running.as_mut(), self.restart_at) {
            (Some((process, _)), _) => Some(process.exited().await),
            (None, Some(at)) => {
                tokio::time::sleep_until(at.into()).await;
                None
            }
            (None, None) => std::future::pending().await,
        }
    }

    /// Records an exit and schedules the restart.
    pub fn died(&mut self, status: ExitStatus) {
        let uptime = self
            .running
            .take()
            .map(|(_, started)| started.elapsed())
            .unwrap_or_default();
        if uptime >= HEALTHY_AFTER {
            self.backoff = self.first_backoff;
        }
        tracing::warn!(processor = %self.name, %status, restart_in = ?self.backoff, "processor exited; restarting (its state is rebuilt from Kafka and ClickHouse)");
        self.restart_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        self.restarts += 1;
    }

    pub async fn stop(&mut self, grace: Duration) {
        if let Some((process, _)) = self.running.take() {
            let status = process.stop(grace).await;
            tracing::info!(processor = %self.name, %status, "stopped");
        }
        self.restart_at = None;
    }
}

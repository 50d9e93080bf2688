use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sealtrail_local::DataDir;

#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// The data directory the stack runs on.
    #[arg(long, env = "SEALTRAIL_DATA_DIR", default_value = ".sealtrail")]
    data_dir: PathBuf,
    /// How long to wait for a clean stop, in seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

pub async fn run(args: DownArgs) -> anyhow::Result<()> {
    if !args.data_dir.is_dir() {
        println!("nothing runs on {}: no such directory", args.data_dir.display());
        return Ok(());
    }
    let data_dir = DataDir::open(&args.data_dir)?;
    let Some(pid) = data_dir.running_supervisor()? else {
        println!("nothing runs on {}", data_dir.root().display());
        return Ok(());
    };
    kill(Pid::from_raw(pid), Signal::SIGTERM)?;
    eprintln!("asked sealtrail (pid {pid}) to stop; waiting for the broker and ClickHouse to shut down cleanly");
    let started = Instant::now();
    while data_dir.running_supervisor()?.is_some() {
        if started.elapsed() > Duration::from_secs(args.timeout) {
            bail!(
                "sealtrail (pid {pid}) did not stop within {}s; see {} and retry, or kill it",
                args.timeout,
                data_dir.logs_dir().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("stopped sealtrail on {}", data_dir.root().display());
    Ok(())
}

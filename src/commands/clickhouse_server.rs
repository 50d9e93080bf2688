use std::path::PathBuf;
use std::process::ExitCode;

use sealtrail_local::clickhouse_engine::{EngineServerConfig, exit_now, serve};

#[derive(Debug, clap::Args)]
pub struct ClickHouseServerArgs {
    /// The ClickHouse engine library (libchdb.so).
    #[arg(long)]
    library: PathBuf,
    /// Where ClickHouse keeps its data.
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long)]
    http_port: u16,
    #[arg(long)]
    tcp_port: u16,
    /// The main configuration file (users and access control).
    #[arg(long)]
    config_file: Option<PathBuf>,
    /// The password of the administrator (`sealtrail_admin`), which the launcher logs in as to let running
    /// inserts finish before stopping.
    #[arg(long)]
    admin_password_file: Option<PathBuf>,
}

/// Serves until a stop signal; returns only when the engine could not start.
pub fn run(args: &ClickHouseServerArgs) -> ExitCode {
    let reason = serve(&EngineServerConfig {
        library: args.library.clone(),
        data_dir: args.data_dir.clone(),
        http_port: args.http_port,
        tcp_port: args.tcp_port,
        config_file: args.config_file.clone(),
        admin_password_file: args.admin_password_file.clone(),
    });
    eprintln!("clickhouse-server: {}", reason.trim());
    // The engine may have left threads and static state behind; leave without running its
    // destructors, which can abort.
    exit_now(1)
}

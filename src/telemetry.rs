//! Logs (and, later, traces) of every sealtrail process.

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, clap::ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct TelemetryArgs {
    /// Log line format on stderr; the level comes from `RUST_LOG` (default: info).
    #[arg(long, global = true, env = "SEALTRAIL_LOG_FORMAT", value_enum, default_value_t)]
    log_format: LogFormat,
}

/// Installs the global subscriber.
pub fn init(args: &TelemetryArgs) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.with_target(false).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

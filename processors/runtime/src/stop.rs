use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Set when the process is asked to stop; long-running loops check it between units of work.
#[derive(Debug, Clone, Default)]
pub struct StopSignal(Arc<AtomicBool>);

impl StopSignal {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Sets the signal on SIGTERM, SIGINT or SIGHUP. Call from within a Tokio runtime.
    pub fn on_unix_signals(&self) {
        let signal = self.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal as unix_signal};
            let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
                unix_signal(SignalKind::terminate()),
                unix_signal(SignalKind::interrupt()),
                unix_signal(SignalKind::hangup()),
            ) else {
                tracing::error!("cannot install signal handlers; stop with SIGKILL");
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
                _ = hup.recv() => {}
            }
            tracing::info!("stop requested; finishing in-flight work");
            exit_if_still_running_after_grace();
            signal.stop();
        });
    }
}

/// How long a stopping process may take to finish its work in flight: `SEALTRAIL_STOP_GRACE_SECS`
/// (default 25, inside Kubernetes' default 30 s termination grace period).
pub fn stop_grace() -> Duration {
    std::env::var("SEALTRAIL_STOP_GRACE_SECS")
        .ok()
        .and_then(|secs| secs.trim().parse().ok())
        .map_or(Duration::from_secs(25), Duration::from_secs)
}

/// Bounds the stop: a process still running after the grace period exits with status 2. That is
/// safe: every processor rebuilds its state from Kafka (and ClickHouse) at start, and work not
/// committed is done again.
fn exit_if_still_running_after_grace() {
    let grace = stop_grace();
    std::thread::spawn(move || {
        std::thread::sleep(grace);
        tracing::error!(
            grace_s = grace.as_secs(),
            "still stopping after the grace period; exiting now (uncommitted work is redone at the next start)"
        );
        std::process::exit(2);
    });
}

/// A future that resolves on SIGTERM, SIGINT or SIGHUP, for services that wait on a future
/// rather than poll a [`StopSignal`]. The handlers are installed when this is called (within a
/// Tokio runtime), so call it once, at start, and keep the future.
pub fn termination() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal as unix_signal};
    let handlers = (
        unix_signal(SignalKind::terminate()),
        unix_signal(SignalKind::interrupt()),
        unix_signal(SignalKind::hangup()),
    );
    async move {
        if let (Ok(mut term), Ok(mut int), Ok(mut hup)) = handlers {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
                _ = hup.recv() => {}
            }
        } else {
            tracing::error!("cannot install the SIGTERM handler; only Ctrl-C stops cleanly");
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("stop requested; finishing in-flight work");
        exit_if_still_running_after_grace();
    }
}

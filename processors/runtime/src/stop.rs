use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
            signal.stop();
        });
    }
}

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
    }
}

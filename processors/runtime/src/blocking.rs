//! Running a blocking loop (a processor over librdkafka's blocking consumer, a partition read) from
//! async code, on a thread of its own: it drives async clients through the runtime handle, which a
//! runtime worker thread must not do.

/// Why a blocking loop gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum BlockingError {
    #[error("cannot start the processor thread: {0}")]
    Spawn(std::io::Error),
    #[error("the processor thread ended without an answer")]
    NoAnswer,
}

/// Runs `work` on a new thread and waits for its result without blocking the runtime.
pub async fn run_blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, BlockingError> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("processor".to_owned())
        .spawn(move || {
            sender.send(work()).ok();
        })
        .map_err(BlockingError::Spawn)?;
    receiver.await.map_err(|_| BlockingError::NoAnswer)
}

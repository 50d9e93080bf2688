//! Supervising the running stack: restarting processors that die, stopping on a signal or a failure.

use std::process::ExitStatus;

use sealtrail_local::{DataDir, SupervisedProcessor};
use tokio::signal::unix::{SignalKind, signal};

use super::Stack;

/// Waits until the stack is asked to stop (`Ok`) or one of its parts fails (`Err`). Processors
/// that die are restarted; the broker, ClickHouse or the registry dying stops everything.
pub(super) async fn supervise(stack: &mut Stack, data_dir: &DataDir, exit_on_stdin_close: bool) -> anyhow::Result<()> {
    let stdin_closed = async {
        if !exit_on_stdin_close {
            return std::future::pending::<()>().await;
        }
        // A plain thread, not the runtime's blocking pool: a read blocked on stdin must never
        // hold up the process's exit.
        let (closed, on_close) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut buffer = [0_u8; 256];
            let mut stdin = std::io::stdin().lock();
            while matches!(std::io::Read::read(&mut stdin, &mut buffer), Ok(read) if read > 0) {}
            closed.send(()).ok();
        });
        on_close.await.ok();
    };
    let mut stdin_closed = std::pin::pin!(stdin_closed);
    let mut stop = std::pin::pin!(stop_requested());
    loop {
        let (first, rest) = stack.processes.split_at_mut(1);
        let broker = &mut first[0];
        let clickhouse = &mut rest[0];
        let registry = &mut stack.registry.as_mut().expect("started").1;
        let event = tokio::select! {
            () = &mut stop => return Ok(()),
            () = &mut stdin_closed => return Ok(()),
            status = broker.exited() => return Err(died(broker.what(), status)),
            status = clickhouse.exited() => return Err(died(clickhouse.what(), status)),
            result = &mut *registry => {
                return Err(anyhow::anyhow!(
                    "the schema registry stopped unexpectedly ({result:?}); everything was stopped, run `sealtrail up` again"
                ));
            }
            event = processor_event(&mut stack.processors) => event,
        };
        match event {
            Supervised::Exited(index, status) => stack.processors[index].died(status),
            Supervised::RestartDue(index) => {
                if let Err(error) = stack.processors[index].start(data_dir) {
                    tracing::error!(processor = %stack.processors[index].name, %error, "restarting failed; trying again later");
                    stack.processors[index].died(ExitStatus::default());
                }
            }
        }
    }
}

enum Supervised {
    Exited(usize, ExitStatus),
    RestartDue(usize),
}

/// The next exit or due restart of a processor; never resolves without processors
/// (`--no-pipeline`).
async fn processor_event(processors: &mut [SupervisedProcessor]) -> Supervised {
    if processors.is_empty() {
        return std::future::pending().await;
    }
    let events = processors
        .iter_mut()
        .enumerate()
        .map(|(index, processor)| Box::pin(async move { (index, processor.next_event().await) }));
    let ((index, event), _, _) = futures::future::select_all(events).await;
    event.map_or(Supervised::RestartDue(index), |status| {
        Supervised::Exited(index, status)
    })
}

fn died(what: &str, status: ExitStatus) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} exited unexpectedly ({status}); everything was stopped and the data kept, run `sealtrail up` again"
    )
}

/// Resolves on Ctrl-C, SIGTERM or SIGHUP.
pub async fn stop_requested() {
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut hangup = signal(SignalKind::hangup()).expect("SIGHUP handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
        _ = hangup.recv() => {}
    }
}

//! The async runtime a command runs on, with Ctrl-C / SIGTERM wired to a
//! cancellation token: the first signal ends the current phase and writes
//! results, the second aborts.

use super::exit;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Run `work` on a new async runtime, with stop signals wired to the token
/// it is given.
pub fn with_signals(work: impl AsyncFnOnce(CancellationToken) -> ExitCode) -> ExitCode {
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let interrupt = CancellationToken::new();
        tokio::spawn(watch_signals(interrupt.clone()));
        work(interrupt).await
    })
}

/// The agents' runtime: local agents run in this process. The open-files
/// limit is raised first: every agent holds a connection to the controller.
pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    stampede_runtime::limits::raise_open_files();
    stampede_runtime::runtime().map_err(|e| {
        eprintln!("error: cannot start the async runtime: {e}");
        ExitCode::FAILURE
    })
}

/// First SIGINT/SIGTERM: end the current phase and write results. Second: abort.
async fn watch_signals(interrupt: CancellationToken) {
    let mut signals = stampede_runtime::signals::Shutdown::new();
    signals.recv().await;
    interrupt.cancel();
    signals.recv().await;
    eprintln!("aborted");
    std::process::exit(i32::from(exit::ABORTED));
}

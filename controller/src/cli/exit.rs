//! The one place a command's ending becomes the process exit code:
//! 0 passed, 1 the run could not complete, 2 bad plan or flag, 3 objectives
//! missed, 4 interrupted (results of what ran are written), 5 regressed
//! against a baseline (`compare --fail-on`, `run --baseline`), 130 aborted by
//! a second stop signal.

use crate::model::Status;
use std::process::ExitCode;

/// Exit code: aborted by a second stop signal.
pub const ABORTED: u8 = 130;

/// The exit code of each class of ending.
pub fn code(status: Status) -> ExitCode {
    ExitCode::from(match status {
        Status::Passed => 0,
        Status::RunFailed => 1,
        Status::BadInput => 2,
        Status::ObjectivesMissed => 3,
        Status::Interrupted => 4,
        Status::Regressed => 5,
    })
}

/// Print the error and return the exit code of its class.
pub fn error(e: &dyn std::fmt::Display, status: Status) -> ExitCode {
    eprintln!("error: {e}");
    code(status)
}

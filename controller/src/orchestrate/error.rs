//! The controller's error type and the exit codes it maps to: a bad plan or
//! flag (2) is told apart from a run that could not complete (1) and from a
//! run that completed but failed its service-level objectives (3).

use crate::orchestrate::runner::RunError;
use stampede_plan::PlanError;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the run could not complete.
pub const EXIT_RUN_FAILED: u8 = 1;
/// Exit code: invalid plan or command line.
pub const EXIT_BAD_INPUT: u8 = 2;
/// The run completed but a phase failed its service-level objectives.
pub const EXIT_SLO_FAILED: u8 = 3;
/// Exit code: aborted by a second stop signal.
pub const EXIT_ABORTED: u8 = 130;

/// Everything that can stop the controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The plan is invalid.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The gRPC listener could not be bound.
    #[error("cannot listen for agents on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The built-in simulator could not start.
    #[error("cannot start the built-in simulator on {addr}: {source}")]
    Simulator {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// A results file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// File or directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Results could not be recorded, read back or written.
    #[error(transparent)]
    Results(#[from] crate::results::ResultsError),
    /// The agents' endpoint cannot be served as configured.
    #[error(transparent)]
    Security(#[from] crate::orchestrate::security::SecurityError),
    /// A Kubernetes API call or configuration failed.
    #[error("kubernetes: {0}")]
    Kubernetes(#[from] crate::orchestrate::k8s::K8sError),
    /// The serving stack could not be deployed, reached or removed.
    #[error(transparent)]
    Serving(#[from] crate::orchestrate::serving::ServingError),
    /// The run loop failed.
    #[error(transparent)]
    Run(#[from] RunError),
}

impl ControllerError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ControllerError::Plan(_) | ControllerError::Security(_) => EXIT_BAD_INPUT,
            ControllerError::Kubernetes(e) if e.is_bad_input() => EXIT_BAD_INPUT,
            ControllerError::Serving(e) if e.is_bad_input() => EXIT_BAD_INPUT,
            // `controller report` on a missing or damaged run directory.
            ControllerError::Results(
                crate::results::ResultsError::NoRunDir(_)
                | crate::results::ResultsError::Plan(_)
                | crate::results::ResultsError::Manifest(_)
                | crate::results::ResultsError::RawLog(
                    crate::results::rawlog::RawLogError::Corrupt { .. },
                )
                | crate::results::ResultsError::Inconsistent { .. },
            ) => EXIT_BAD_INPUT,
            _ => EXIT_RUN_FAILED,
        }
    }
}

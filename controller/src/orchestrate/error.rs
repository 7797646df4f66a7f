//! Everything that can stop a run, and its class: a bad plan or flag is told
//! apart from a run that could not complete (`cli` turns the class into the
//! exit code).

use crate::model::Status;
use crate::orchestrate::runner::RunError;
use stampede_plan::PlanError;
use std::net::SocketAddr;
use std::path::PathBuf;

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
    Kubernetes(Box<crate::orchestrate::k8s::K8sError>),
    /// The serving stack could not be deployed, reached or removed.
    #[error(transparent)]
    Serving(#[from] crate::orchestrate::serving::ServingError),
    /// The run loop failed.
    #[error(transparent)]
    Run(#[from] RunError),
}

/// Boxed: a Kubernetes client error is large, and every result of a run
/// carries this type.
impl From<crate::orchestrate::k8s::K8sError> for ControllerError {
    fn from(e: crate::orchestrate::k8s::K8sError) -> Self {
        ControllerError::Kubernetes(Box::new(e))
    }
}

impl ControllerError {
    /// The class of this error: bad input, or a run that could not complete.
    pub fn status(&self) -> Status {
        match self {
            ControllerError::Plan(_) | ControllerError::Security(_) => Status::BadInput,
            ControllerError::Run(RunError::Interrupted) => Status::Interrupted,
            ControllerError::Kubernetes(e) if e.is_bad_input() => Status::BadInput,
            ControllerError::Serving(e) if e.is_bad_input() => Status::BadInput,
            // `controller report` on a missing or damaged run directory.
            ControllerError::Results(
                crate::results::ResultsError::NoRunDir(_)
                | crate::results::ResultsError::Plan(_)
                | crate::results::ResultsError::Manifest(_)
                | crate::results::ResultsError::RawLog(
                    crate::results::rawlog::RawLogError::Corrupt { .. },
                )
                | crate::results::ResultsError::Inconsistent { .. },
            ) => Status::BadInput,
            _ => Status::RunFailed,
        }
    }
}

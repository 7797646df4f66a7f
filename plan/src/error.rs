//! The one error type of plan loading and validation. Every variant names
//! the plan file; `Invalid` also names the key and the value as written, so
//! a refused plan says exactly what to change.

use std::path::PathBuf;

/// Errors loading or validating a plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The file could not be read.
    #[error("cannot read plan {path}: {source}")]
    Io {
        /// The plan file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the plan schema.
    #[error("invalid plan {path}: {message}")]
    Parse {
        /// The plan file.
        path: PathBuf,
        /// The parser's message (it names the key, line and column).
        message: String,
    },
    /// A key holds a value the plan cannot run with.
    #[error("invalid plan {path}: `{key}` = {value}: {reason}")]
    Invalid {
        /// The plan file.
        path: PathBuf,
        /// Dotted path of the key, e.g. `phase[1].rate`.
        key: String,
        /// The offending value as written (or `(missing)`).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

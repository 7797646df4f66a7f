//! The one error type of plan loading and validation. Every variant names
//! the plan file; `Invalid` also names the key and the value as written, so
//! a refused plan says exactly what to change. Whatever it quotes from the
//! plan is cut short when huge ([`crate::quote`]).

use crate::quote::{capped, excerpt, message};
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
    #[error("invalid plan {path}: {}", capped(.message))]
    Parse {
        /// The plan file.
        path: PathBuf,
        /// The parser's message (it names the key, line and column), with
        /// what it quotes already cut short ([`crate::quote::parse_error`]).
        message: String,
    },
    /// A key holds a value the plan cannot run with.
    #[error("invalid plan {path}: `{}` = {}: {}", excerpt(.key), excerpt(.value), message(.reason))]
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

impl PlanError {
    /// The TOML parser's error `e` on `text` read from `path` (`None`: a
    /// tree built from several files, which has no one text to point into).
    pub fn toml(path: &std::path::Path, text: Option<&str>, e: toml::de::Error) -> Self {
        PlanError::Parse {
            path: path.to_path_buf(),
            message: match text {
                Some(text) => crate::quote::parse_error(text, e),
                None => message(e.to_string().trim_end()).into_owned(),
            },
        }
    }
}

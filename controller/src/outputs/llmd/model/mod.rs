//! The llm-d Benchmark Report v0.2 as Rust types, written from the format's
//! field meanings, so that every report stampede writes is checked against
//! the format itself in every run (see [`parse`]), not only by tests that
//! find the published JSON Schema beside the repository.
//!
//! How the format maps to types:
//! - every object refuses keys it does not know (`deny_unknown_fields`),
//!   except the two the format declares open, whose other keys are kept
//!   unchecked: a `generic` stack component and `results.observability`.
//!   Statistics objects do not say either way in the published schema; here
//!   they are closed, so a report with extra keys there is refused, naming
//!   the key;
//! - required fields are plain; optional ones are `Option` and left out when
//!   `None` (the format's default for them is null); fields the format gives
//!   a default (`version`, `parallelism`, `stage`, `schema_version`, ...)
//!   take it when absent and are always written;
//! - fixed vocabularies (units, distributions, sources, roles) are enums;
//! - bounds the types cannot carry (at least 1, at least 0, greater than 0)
//!   are checked by [`Report::validate`].
//!
//! Every section of the format is modelled (scenario stack, time series,
//! observability, component health as well as what stampede writes), so a
//! valid report from another tool parses too, with the exceptions above.

pub mod check;
mod load;
mod observability;
mod performance;
mod stack;
mod stats;

pub use check::Violation;
pub use load::*;
pub use observability::*;
pub use performance::*;
pub use stack::*;
pub use stats::{Distribution, Number, SequenceLength, Statistics, Units};

use check::{Check, check_fields};
use serde::{Deserialize, Serialize};

/// Format version modelled and written.
pub const VERSION: &str = "0.2";

/// A benchmark report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Format version; only [`VERSION`] passes [`Report::validate`].
    #[serde(default = "version")]
    pub version: String,
    /// The run.
    pub run: Run,
    /// What was measured, and how.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenario: Option<Scenario>,
    /// Results.
    pub results: Results,
}

/// A run and its place among others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    /// This report's unique id.
    pub uid: String,
    /// Experiment id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eid: Option<String>,
    /// Cluster id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// Pod id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    /// When.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<RunTime>,
    /// Who.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Keywords.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keywords: Option<Vec<String>>,
}

/// When a run happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunTime {
    /// Start (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// End (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Duration (ISO 8601, `PT12.345S`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

/// The serving stack and the load put on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Stack components.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<Vec<Component>>,
    /// Workload generator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<Load>,
}

check_fields!(Scenario: stack, load);

/// A run's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Results {
    /// Request-level results.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_performance: Option<RequestPerformance>,
    /// What watching the stack saw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observability: Option<Observability>,
    /// Profiling results, any shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profiling: Option<serde_json::Value>,
    /// Component health.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component_health: Option<Vec<ComponentHealth>>,
}

check_fields!(Results: request_performance, observability);

impl Report {
    /// Check the bounds the types do not carry; the first broken one, with
    /// its JSON path and value.
    pub fn validate(&self) -> Result<(), Violation> {
        if self.version != VERSION {
            return Err(Violation {
                path: "version".into(),
                value: format!("{:?}", self.version),
                rule: "this model reads version \"0.2\" only",
            });
        }
        self.scenario.check("scenario")?;
        self.results.check("results")
    }
}

/// Why a text is not a valid report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Not JSON of the report's shape: an unknown or missing field, a wrong
    /// type or an unknown unit, at `path`.
    #[error("{path}: {message}")]
    Shape {
        /// JSON path (`.` for the report itself).
        path: String,
        /// What is wrong, with line and column.
        message: String,
    },
    /// The right shape, but a value out of bounds.
    #[error(transparent)]
    Bounds(#[from] Violation),
}

/// Parse `text` as a report and [validate](Report::validate) it.
pub fn parse(text: &str) -> Result<Report, ReportError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let report: Report =
        serde_path_to_error::deserialize(&mut de).map_err(|e| ReportError::Shape {
            path: e.path().to_string(),
            message: e.inner().to_string(),
        })?;
    de.end().map_err(|e| ReportError::Shape {
        path: ".".into(),
        message: e.to_string(),
    })?;
    report.validate()?;
    Ok(report)
}

fn version() -> String {
    VERSION.into()
}

/// Default `schema_version` of the load and component descriptions.
fn part_schema_version() -> String {
    "0.0.1".into()
}

fn one() -> u64 {
    1
}

fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests;

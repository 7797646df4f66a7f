//! A phase's results for one workload entry or one model: the same counts,
//! rates and distributions as the phase's, for a subset of its requests.

use crate::model::{MetricSummary, RequestCounts};
use serde::Serialize;
use std::collections::BTreeMap;

/// What a breakdown groups requests by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakdownBy {
    /// One `[[workload]]` entry.
    Workload,
    /// Every entry sending to one model.
    Model,
}

impl BreakdownBy {
    /// The name used in every output ("workload", "model").
    pub fn name(self) -> &'static str {
        match self {
            Self::Workload => "workload",
            Self::Model => "model",
        }
    }
}

/// One workload entry's or one model's share of a phase.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Breakdown {
    /// What the requests are grouped by.
    pub by: BreakdownBy,
    /// The entry's or the model's name.
    pub name: String,
    /// Requests counted (arrivals never sent have no entry: `skipped`,
    /// `expired` and `lost` are the phase's only).
    pub requests: RequestCounts,
    /// Failures by class.
    pub errors: BTreeMap<String, u64>,
    /// Successful requests per second over the phase's completion span.
    pub request_throughput: f64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens per second over the phase's completion span.
    pub output_token_throughput: f64,
    /// Distributions by metric name.
    pub metrics: BTreeMap<String, MetricSummary>,
}

impl Breakdown {
    /// The label outputs show it under, e.g. "model=llama-8b".
    pub fn label(&self) -> String {
        format!("{}={}", self.by.name(), self.name)
    }
}

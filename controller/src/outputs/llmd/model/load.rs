//! The workload generator's part of a report's scenario: who generated the
//! load, how (standardized, comparable across tools) and with which
//! configuration (native, each tool its own).

use super::Violation;
use super::check::{Check, at_least_one, check_fields, positive};
use super::stats::{Number, SequenceLength};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The workload generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// About this description.
    pub metadata: LoadMetadata,
    /// Configuration in the format's common terms.
    pub standardized: LoadStandardized,
    /// Configuration in the tool's own terms.
    pub native: Native,
}

check_fields!(Load: standardized);

/// About a load description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadMetadata {
    /// Version of this part's layout.
    #[serde(default = "super::part_schema_version")]
    pub schema_version: String,
    /// Configuration id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cfg_id: Option<String>,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Where prompts' tokens come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadSource {
    /// Generated.
    Random,
    /// Taken from a dataset.
    Sampled,
    /// Mixed or not known.
    Unknown,
}

/// A workload generator's configuration in the format's common terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadStandardized {
    /// Tool.
    pub tool: String,
    /// Its version.
    pub tool_version: String,
    /// Generators running in parallel (at least 1).
    #[serde(default = "super::one")]
    pub parallelism: u64,
    /// Where prompts come from.
    pub source: LoadSource,
    /// Stage of a multi-stage workload.
    #[serde(default)]
    pub stage: u64,
    /// Input length.
    pub input_seq_len: SequenceLength,
    /// Output length, when enforced or measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_seq_len: Option<SequenceLength>,
    /// Shared prompt prefixes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<Prefix>,
    /// Multi-turn conversations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multi_turn: Option<MultiTurn>,
    /// Offered rate, requests per second (greater than 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_qps: Option<f64>,
    /// Concurrent requests (at least 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Number>,
}

impl Check for LoadStandardized {
    fn check(&self, path: &str) -> Result<(), Violation> {
        at_least_one(path, "parallelism", self.parallelism as f64)?;
        let at = |key| super::check::field(path, key);
        self.input_seq_len.check(&at("input_seq_len"))?;
        self.output_seq_len.check(&at("output_seq_len"))?;
        self.prefix.check(&at("prefix"))?;
        self.multi_turn.check(&at("multi_turn"))?;
        positive(path, "rate_qps", self.rate_qps)?;
        at_least_one(path, "concurrency", self.concurrency.map(Number::as_f64))
    }
}

/// Prompts sharing prefixes, by group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prefix {
    /// Prefix length.
    pub prefix_len: SequenceLength,
    /// Groups (at least 1).
    pub num_groups: u64,
    /// Users per group (at least 1).
    pub num_users_per_group: u64,
    /// Distinct prefixes (at least 1).
    pub num_prefixes: u64,
}

impl Check for Prefix {
    fn check(&self, path: &str) -> Result<(), Violation> {
        self.prefix_len
            .check(&super::check::field(path, "prefix_len"))?;
        at_least_one(path, "num_groups", self.num_groups as f64)?;
        at_least_one(path, "num_users_per_group", self.num_users_per_group as f64)?;
        at_least_one(path, "num_prefixes", self.num_prefixes as f64)
    }
}

/// Multi-turn conversations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiTurn {
    /// Whether requests continue conversations.
    #[serde(default = "super::yes")]
    pub enabled: bool,
    /// Turns per conversation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_turns: Option<SequenceLength>,
}

check_fields!(MultiTurn: max_turns);

/// A tool's configuration in its own terms; the format leaves it open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Native {
    /// Command-line arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Map<String, Value>>,
    /// Environment variables.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envars: Option<Map<String, Value>>,
    /// Configuration, any shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
}

//! The serving stack's part of a report's scenario: its components (an
//! inference engine, or anything else as a generic component). stampede does
//! not describe the stack it measures; these types let a report from a tool
//! that does be read.

use super::Violation;
use super::check::{Check, at_least_one, check_fields, field};
use super::load::Native;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One component of the stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// About this description.
    pub metadata: ComponentMetadata,
    /// Configuration in the format's common terms, by kind.
    pub standardized: ComponentStandardized,
    /// Configuration in the component's own terms.
    pub native: Native,
}

check_fields!(Component: standardized);

/// About a component description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentMetadata {
    /// Version of this part's layout.
    #[serde(default = "super::part_schema_version")]
    pub schema_version: String,
    /// Label, unique in the stack.
    pub label: String,
    /// Configuration id.
    pub cfg_id: String,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A component's configuration, by its `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ComponentStandardized {
    /// Any component the format has no kind for.
    Generic(Generic),
    /// A model server.
    InferenceEngine(InferenceEngine),
}

impl Check for ComponentStandardized {
    fn check(&self, path: &str) -> Result<(), Violation> {
        match self {
            ComponentStandardized::Generic(_) => Ok(()),
            ComponentStandardized::InferenceEngine(e) => e.check(path),
        }
    }
}

/// A component of no particular kind. The format lets it carry any other
/// attributes, so this is the one object whose unknown keys are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generic {
    /// Tool.
    pub tool: String,
    /// Its version.
    pub tool_version: String,
    /// Any other attributes.
    #[serde(flatten)]
    pub attributes: Map<String, Value>,
}

/// Role of a model server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostType {
    /// Serves whole requests.
    Replica,
    /// Prefill of disaggregated serving.
    Prefill,
    /// Decode of disaggregated serving.
    Decode,
}

/// A model server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceEngine {
    /// Tool.
    pub tool: String,
    /// Its version.
    pub tool_version: String,
    /// Role.
    pub role: HostType,
    /// Replicas (at least 1).
    pub replicas: u64,
    /// Model served.
    pub model: EngineModel,
    /// Accelerators per replica.
    pub accelerator: Accelerator,
}

impl Check for InferenceEngine {
    fn check(&self, path: &str) -> Result<(), Violation> {
        at_least_one(path, "replicas", self.replicas as f64)?;
        self.accelerator.check(&field(path, "accelerator"))
    }
}

/// A served model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineModel {
    /// Name.
    pub name: String,
}

/// Accelerators of a replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accelerator {
    /// Model of accelerator.
    pub model: String,
    /// How many.
    pub count: u64,
    /// How the model is split across them.
    pub parallelism: Parallelism,
}

check_fields!(Accelerator: parallelism);

/// How a model is split across accelerators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parallelism {
    /// Tensor parallelism.
    #[serde(default = "super::one")]
    pub tp: u64,
    /// Data parallelism.
    #[serde(default = "super::one")]
    pub dp: u64,
    /// Local data parallelism.
    #[serde(default = "super::one")]
    pub dp_local: u64,
    /// Workers.
    #[serde(default = "super::one")]
    pub workers: u64,
    /// Expert parallelism (at least 1).
    #[serde(default = "super::one")]
    pub ep: u64,
    /// Pipeline parallelism (at least 1).
    #[serde(default = "super::one")]
    pub pp: u64,
}

impl Check for Parallelism {
    fn check(&self, path: &str) -> Result<(), Violation> {
        at_least_one(path, "ep", self.ep as f64)?;
        at_least_one(path, "pp", self.pp as f64)
    }
}

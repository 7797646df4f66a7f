//! The benchmark plan of stampede: parse → validate → run.
//!
//! A plan file is TOML. [`RawPlan`] mirrors the file exactly (unknown keys
//! are rejected by serde); [`RawPlan::validate`] turns it into a [`Plan`]
//! whose types make invalid plans unrepresentable — each [`Phase`] carries a
//! [`PhaseKind`] holding only its kind's keys. Every error names the file,
//! the key and the offending value, and is produced before any socket is
//! bound. Besides the plan itself, this crate holds everything a plan names:
//! workloads, datasets, traces, objectives, fault actions, Kubernetes and
//! serving settings, includes and sweeps.
//!
//! Only the controller links this crate. Agents and the simulator receive
//! what they need over the wire (stampede-common) and never see a plan; a
//! test (`tests/independence.rs`) keeps it that way.

pub mod base_url;
pub mod dataset;
pub mod duration;
mod error;
pub mod fault;
pub mod include;
pub mod kubernetes;
mod load;
mod model;
pub mod names;
pub mod percentiles;
mod phase;
pub mod quote;
mod raw;
pub mod security;
pub mod serving;
pub mod slo;
pub mod sweep;
pub mod trace;
mod validate;
pub mod workload;

pub use error::PlanError;
pub use load::{load, load_without_files, parse};
pub use model::{
    AUTO_REPORTS_PER_SECOND, AgentMode, Agents, Api, Cost, Endpoint, MAX_WINDOWS_PER_REPORT, Plan,
    Records, RequestSpec, SIMULATOR_MODEL, ServerMetrics, ShardWeights, SimModelSpec,
    SimulatorSpec, Target, Tracing,
};
pub use phase::{Arrival, Phase, PhaseKind, Search, Stress};
pub use raw::{
    RawAgents, RawCost, RawPhase, RawPlan, RawRecords, RawRequest, RawRun, RawServerMetrics,
    RawSimModel, RawSimulator, RawTarget, RawTracing, SimEngine,
};

//! The benchmark plan of stampede: the TOML schema as written, its
//! validation into typed phases, and everything a plan names — workloads,
//! datasets, traces, objectives, fault actions, Kubernetes and serving
//! settings, includes and sweeps.
//!
//! Only the controller links this crate. Agents and the simulator receive
//! what they need over the wire (stampede-common) and never see a plan; a
//! test (`tests/independence.rs`) keeps it that way.

pub mod dataset;
pub mod duration;
pub mod fault;
pub mod include;
pub mod kubernetes;
mod plan;
pub mod security;
pub mod serving;
pub mod slo;
pub mod sweep;
pub mod trace;
pub mod workload;

pub use plan::*;

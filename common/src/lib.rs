//! The wire crate of stampede: what the controller and the agents both speak
//! — the gRPC protocol types, the metric definitions, the histogram codec,
//! sharding, prompt words and the join token's rules.
//!
//! This crate depends on nothing else of ours; the agent and controller
//! binaries depend on it, never the reverse. The benchmark plan and its
//! validation live in stampede-plan, which only the controller links.

pub mod histogram;
pub mod metric;
pub mod prompt;
pub mod quantile;
pub mod security;
pub mod shard;

/// Generated protocol types (`stampede.v1`).
pub mod proto {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("stampede.v1");
}

/// Protocol revision spoken by this build; sent in `Hello.protocol_version`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Version of this stampede build.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Largest gRPC message either side accepts (bytes).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Fraction of requests traced when a plan's `run.tracing.sample_ratio` is
/// not given. It travels as `PhaseAssignment.trace_sample_ratio`; the agent's cost
/// benchmark measures its tracing overhead at this ratio.
pub const DEFAULT_TRACE_SAMPLE_RATIO: f64 = 0.01;

/// Most workload entries whose requests an agent records separately in each
/// window (`WindowReport.parts`): a workload with more entries gets totals
/// only, so a window's size stays bounded whatever the mix.
pub const MAX_WINDOW_PARTS: usize = 64;

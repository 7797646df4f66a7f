//! Shared vocabulary of stampede: the gRPC wire types, the benchmark plan and
//! its validation, the metric definitions and the histogram codec.
//!
//! This crate depends on nothing else of ours; the agent and controller
//! binaries depend on it, never the reverse.

pub mod dataset;
pub mod duration;
pub mod fault;
pub mod histogram;
pub mod include;
pub mod kubernetes;
pub mod metric;
pub mod plan;
pub mod prompt;
pub mod quantile;
pub mod security;
pub mod serving;
pub mod shard;
pub mod slo;
pub mod sweep;
pub mod trace;
pub mod workload;

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

//! Turning agents' windows into facts: exact merging, phase summaries,
//! objective verdicts, the stress search, fault recovery, repeat statistics,
//! the regression gate and cost. Pure functions over `model` data; no I/O beyond what a caller hands in.

pub mod breakdown;
pub mod cost;
pub mod gate;
pub mod inputs;
pub mod merge;
pub mod recovery;
pub mod repeats;
pub mod schedule;
pub mod server_metrics;
pub mod stress;
pub mod summary;
pub mod verdict;

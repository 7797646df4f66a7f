//! What a run's datasets and traces were: sizes, digests and counts.

use serde::{Deserialize, Serialize};

/// One dataset a run read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatasetInfo {
    /// Key of the workload entry, e.g. `workload[0]`.
    pub key: String,
    /// The entry's name.
    pub workload: String,
    /// The file as read.
    pub path: String,
    /// "jsonl" or "sharegpt".
    pub format: String,
    /// Valid records in the file.
    pub valid_records: usize,
    /// Records sent to agents (all valid ones, or the seeded sample).
    pub sampled_records: usize,
    /// Malformed records left out.
    pub skipped_records: usize,
    /// The first malformed records, as `file:line: reason`.
    pub skipped_examples: Vec<String>,
}

/// One trace a run replays.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TraceInfo {
    /// Key of the phase, e.g. `phase[2]`.
    pub key: String,
    /// The phase's name.
    pub phase: String,
    /// The file as read.
    pub path: String,
    /// Records read.
    pub records: usize,
    /// The replay speed-up.
    pub time_scale: f64,
    /// Scaled time of the last record, in seconds.
    pub span_s: f64,
    /// Records whose scaled time falls within the phase's duration (the
    /// ones sent).
    pub within_duration: usize,
}

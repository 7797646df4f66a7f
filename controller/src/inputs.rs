//! What a run read from files besides the plan — its datasets — and what it
//! left out of them. Recorded in the manifest when the run starts (a run
//! directory's plan copy sits away from those files, so a rebuilt report
//! cannot re-read them) and printed by `controller validate`, in `stats.txt`
//! and in `summary.json`: a skipped record is never silently lost.

use serde::{Deserialize, Serialize};
use stampede_common::plan::Plan;
use std::fmt::Write as _;

/// Malformed records named one by one in messages (the rest are counted).
const SHOWN_PROBLEMS: usize = 5;

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

/// The datasets of a validated plan (those whose files were read).
pub fn datasets(plan: &Plan) -> Vec<DatasetInfo> {
    plan.workload
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let d = e.dataset.as_ref()?.data.as_ref()?;
            Some(DatasetInfo {
                key: format!("workload[{i}]"),
                workload: e.name.clone(),
                path: d.path.display().to_string(),
                format: d.format.name().to_string(),
                valid_records: d.valid,
                sampled_records: d.records.len(),
                skipped_records: d.skipped,
                skipped_examples: d
                    .problems
                    .iter()
                    .map(|p| format!("{}:{}: {}", d.path.display(), p.line, p.reason))
                    .collect(),
            })
        })
        .collect()
}

/// Human lines about the datasets (empty without any).
pub fn text(datasets: &[DatasetInfo]) -> String {
    let mut s = String::new();
    for d in datasets {
        let _ = writeln!(
            s,
            "dataset   {} ({}): {} ({}), {} valid records, {} sent{}",
            d.key,
            d.workload,
            d.path,
            d.format,
            d.valid_records,
            d.sampled_records,
            if d.skipped_records > 0 {
                format!(", {} malformed records skipped", d.skipped_records)
            } else {
                String::new()
            }
        );
        for p in d.skipped_examples.iter().take(SHOWN_PROBLEMS) {
            let _ = writeln!(s, "  skipped {p}");
        }
        if d.skipped_records > SHOWN_PROBLEMS.min(d.skipped_examples.len()) {
            let _ = writeln!(
                s,
                "  ... {} more skipped",
                d.skipped_records - SHOWN_PROBLEMS.min(d.skipped_examples.len())
            );
        }
    }
    s
}

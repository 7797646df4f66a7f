//! llm-d Benchmark Report (v0.2), one per phase and one per breakdown of a
//! phase (workload entry, model), so llm-d tooling can read
//! stampede's results next to its own harnesses'.
//!
//! Each report is built through the typed [`model`], written, then read back
//! from disk and parsed into the model again with its bounds checked. A
//! report that fails is an error of the command (`controller run` or
//! `controller report`) naming the file and the JSON path: a guard that
//! stampede never leaves a report behind that llm-d's tools would refuse.

mod build;
pub mod model;

pub use build::{breakdown_report, phase_report};

use crate::analysis::breakdown::{self, EntryLabels};
use crate::results::{ResultsError, RunData, write_error};
use std::path::Path;

/// Directory (inside the run directory) holding the reports.
pub const DIR: &str = "llmd";

/// File name of phase `index`'s report.
pub fn file_name(index: usize, phase: &str) -> String {
    format!("benchmark_report_{index:02}_{}.json", safe(phase))
}

/// File name of the report of phase `index`'s breakdown `label` (e.g.
/// `model=llama`).
pub fn breakdown_file_name(index: usize, phase: &str, label: &str) -> String {
    format!(
        "benchmark_report_{index:02}_{}__{}.json",
        safe(phase),
        safe(label)
    )
}

/// `name` with every character but ASCII letters, digits, `-`, `_` and `.`
/// replaced by `_`.
fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Write one report per phase into `dir/llmd/`, each checked as read back.
pub fn write(dir: &Path, data: &RunData) -> Result<(), ResultsError> {
    let out = dir.join(DIR);
    std::fs::create_dir_all(&out).map_err(|e| write_error(&out, e))?;
    for (i, s) in data.summary.phases.iter().enumerate() {
        write_checked(&out.join(file_name(i, &s.name)), phase_report(data, i))?;
        let p = &data.phases[i];
        let labels = EntryLabels::of(&data.plan, &p.phase);
        let groups = breakdown::groups(&labels, &p.acc.total);
        for (b, (_, _, agg)) in s.breakdowns.iter().zip(&groups) {
            let path = out.join(breakdown_file_name(i, &s.name, &b.label()));
            write_checked(&path, breakdown_report(data, i, b, agg))?;
        }
    }
    Ok(())
}

/// Write `report` to `path` and check it as read back.
fn write_checked(
    path: &Path,
    report: Result<model::Report, serde_json::Error>,
) -> Result<(), ResultsError> {
    // Through a `Value`, whose keys are sorted: reports diff cleanly.
    let text = report
        .and_then(|report| serde_json::to_value(&report))
        .and_then(|value| serde_json::to_string_pretty(&value))
        .map_err(|e| write_error(path, e))?;
    std::fs::write(path, text + "\n").map_err(|e| write_error(path, e))?;
    check_written(path)
}

/// Read the report at `path` back and parse it into the model.
fn check_written(path: &Path) -> Result<(), ResultsError> {
    let text = std::fs::read_to_string(path).map_err(|e| write_error(path, e))?;
    model::parse(&text).map_err(|e| ResultsError::OutputCheck {
        path: path.to_path_buf(),
        message: format!(
            "not a valid llm-d Benchmark Report v{} as read back (a stampede bug): {e}",
            model::VERSION
        ),
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_reports_round_trip_through_their_text() {
        let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/report");
        let data = crate::results::rebuild(&golden).unwrap();
        for i in 0..data.summary.phases.len() {
            let report = phase_report(&data, i).unwrap();
            let text = serde_json::to_string_pretty(&report).unwrap();
            assert_eq!(model::parse(&text).unwrap(), report, "phase {i}");
        }
    }

    #[test]
    fn a_report_that_reads_back_wrong_names_file_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(0, "p"));
        let text = r#"{"run": {"uid": "u"}, "results": {"request_performance":
            {"aggregate": {"requests": {"total": 1, "input_length": {"units": "tokens", "mean": 1}}}}}}"#;
        std::fs::write(&path, text).unwrap();
        let e = check_written(&path).unwrap_err();
        assert!(matches!(&e, ResultsError::OutputCheck { path: p, .. } if *p == path));
        let message = e.to_string();
        assert!(
            message.contains("results.request_performance.aggregate.requests.input_length.units")
                && message.contains("unknown variant `tokens`"),
            "{message}"
        );
    }
}

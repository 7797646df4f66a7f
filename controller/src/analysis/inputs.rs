//! What a run read from files besides the plan — its datasets and replayed
//! traces — and what it left out of them. Recorded in the manifest when the run starts (a run
//! directory's plan copy sits away from those files, so a rebuilt report
//! cannot re-read them) and printed by `controller validate`, in `stats.txt`
//! and in `summary.json`: a skipped record is never silently lost.

use crate::model::{DatasetInfo, TraceInfo};
use stampede_plan::Plan;
use std::fmt::Write as _;

/// Malformed records named one by one in messages (the rest are counted).
const SHOWN_PROBLEMS: usize = 5;

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

/// The traces of a validated plan's replay phases (those whose files were read).
pub fn traces(plan: &Plan) -> Vec<TraceInfo> {
    plan.phases
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let (t, time_scale) = p.replayed()?;
            Some(TraceInfo {
                key: format!("phase[{i}]"),
                phase: p.name.clone(),
                path: t.path.display().to_string(),
                records: t.records.len(),
                time_scale,
                span_s: t.span_secs(time_scale),
                within_duration: t.records_within(time_scale, p.duration),
            })
        })
        .collect()
}

/// Human lines about the traces (empty without any).
pub fn trace_text(traces: &[TraceInfo]) -> String {
    let mut s = String::new();
    for t in traces {
        let _ = writeln!(
            s,
            "trace     {} ({}): {}, {} records over {:.3} s at time scale {}; {} within the phase's duration{}",
            t.key,
            t.phase,
            t.path,
            t.records,
            t.span_s,
            t.time_scale,
            t.within_duration,
            if t.within_duration < t.records {
                " (the rest are not sent)"
            } else {
                ""
            }
        );
    }
    s
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

//! Per-request records: a run with `[records] sample = 1.0` leaves one
//! Parquet row per completed request, counts equal to summary.json's; a
//! sample picks about its fraction, the same request numbers on a re-run
//! with the same seed; pandas reads the files (when installed).

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, UInt32Type, UInt64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use stampede_tests::{assert_reconciles, read_json, run_plan, workspace_root};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn plan(sample: f64, rate: f64) -> String {
    format!(
        r#"
[run]
name = "records"
window = "500ms"
seed = 42
[agents]
local = 2
[target.simulator]
ttft = "15ms"
itl = "2ms"
output_tokens = 8
[request]
max_tokens = 8
timeout = "5s"
[records]
sample = {sample}
[[phase]]
name = "one user"
kind = "baseline"
duration = "1s"
[[phase]]
name = "steady"
kind = "constant"
rate = {rate}
duration = "2s"
"#
    )
}

/// One phase file's rows: (request number, status, ttft ms).
struct Rows {
    requests: Vec<u64>,
    ok: usize,
    ttft: Vec<f64>,
    phase_index: BTreeSet<u32>,
}

fn read(path: &Path) -> Rows {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rows = Rows {
        requests: Vec::new(),
        ok: 0,
        ttft: Vec::new(),
        phase_index: BTreeSet::new(),
    };
    for batch in reader {
        let batch = batch.expect("batch");
        let col = |name: &str| batch.column_by_name(name).expect(name).clone();
        let requests = col("request");
        rows.requests
            .extend(requests.as_primitive::<UInt64Type>().values().iter());
        let phases = col("phase_index");
        rows.phase_index
            .extend(phases.as_primitive::<UInt32Type>().values().iter());
        let status = col("status");
        rows.ok += status
            .as_string::<i32>()
            .iter()
            .filter(|s| *s == Some("ok"))
            .count();
        let ttft = col("ttft_ms");
        rows.ttft
            .extend(ttft.as_primitive::<Float64Type>().iter().flatten());
    }
    rows
}

fn phase_file(out: &Path, i: usize) -> std::path::PathBuf {
    out.join("requests").join(format!("phase-{i}.parquet"))
}

#[test]
fn every_request_is_a_row_and_the_counts_match_the_summary() {
    let run = run_plan(&plan(1.0, 40.0), Duration::from_secs(120));
    assert_eq!(run.code, Some(0), "{}", run.output);
    let summary = read_json(&run.out.join("summary.json"));
    let phases = summary["phases"].as_array().expect("phases");
    assert_eq!(phases.len(), 2);
    for (i, phase) in phases.iter().enumerate() {
        let (sent, ok) = assert_reconciles(phase);
        let rows = read(&phase_file(&run.out, i));
        assert_eq!(rows.requests.len() as u64, sent, "phase {i} rows = sent");
        assert_eq!(rows.ok as u64, ok, "phase {i} ok rows");
        assert_eq!(rows.phase_index, BTreeSet::from([i as u32]));
        let unique: BTreeSet<_> = rows.requests.iter().collect();
        assert_eq!(unique.len(), rows.requests.len(), "one row per request");
        // Each request's TTFT lies within the histogram's bounds (HDR keeps
        // three significant digits).
        let m = &phase["metrics"]["ttft"];
        let (min, max) = (m["min"].as_f64().unwrap(), m["max"].as_f64().unwrap());
        let lo = rows.ttft.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = rows.ttft.iter().copied().fold(0.0, f64::max);
        assert!((lo - min).abs() <= min * 0.01 + 0.01, "min {lo} vs {min}");
        assert!((hi - max).abs() <= max * 0.01 + 0.01, "max {hi} vs {max}");
        assert_eq!(phase.get("records_dropped"), None, "none dropped");
    }
    pandas_reads(&run.out, phases);
}

/// The pandas example reads the same counts, when pandas and pyarrow are
/// installed (always in CI, which names its Python in `STAMPEDE_PYTHON`).
fn pandas_reads(out: &Path, phases: &[serde_json::Value]) {
    let named = std::env::var("STAMPEDE_PYTHON").ok();
    let python = named.clone().unwrap_or_else(|| "python3".into());
    let has = Command::new(&python)
        .args(["-c", "import pandas, pyarrow"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        assert!(
            named.is_none(),
            "STAMPEDE_PYTHON={python} has no pandas/pyarrow"
        );
        eprintln!("skipped: pandas not installed (python {python})");
        return;
    }
    let script = workspace_root().join("tests/python/records.py");
    let o = Command::new(&python)
        .arg(script)
        .arg(out)
        .output()
        .expect("python runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let counts: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON counts");
    for (i, phase) in phases.iter().enumerate() {
        let (sent, _) = assert_reconciles(phase);
        assert_eq!(counts[i.to_string()].as_u64(), Some(sent), "{counts}");
    }
}

#[test]
fn a_sample_is_its_fraction_and_the_same_on_a_rerun() {
    let picked = || {
        let run = run_plan(&plan(0.1, 200.0), Duration::from_secs(120));
        assert_eq!(run.code, Some(0), "{}", run.output);
        let summary = read_json(&run.out.join("summary.json"));
        let (sent, _) = assert_reconciles(&summary["phases"][1]);
        let rows = read(&phase_file(&run.out, 1));
        (sent, rows.requests.into_iter().collect::<BTreeSet<_>>())
    };
    let (sent, first) = picked();
    let share = first.len() as f64 / sent as f64;
    assert!((0.04..0.2).contains(&share), "{} of {sent}", first.len());
    let (_, again) = picked();
    assert_eq!(first, again, "the same seed samples the same requests");
}

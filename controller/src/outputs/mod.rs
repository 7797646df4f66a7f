//! Everything a run writes for people and tools: stats text, summary JSON,
//! CSV tables, charts, HdrHistogram logs, llm-d reports, fault tables,
//! comparisons, the regression gate and the HTML pages. Built from [`crate::results::RunData`] alone.

pub mod alert_rules;
pub mod charts;
pub mod compare;
pub mod faults_out;
pub mod gate;
pub mod hlog;
pub mod html;
pub mod llmd;
pub mod report;
pub mod tables;

use crate::results::{ResultsError, RunData, write_error};
use std::path::Path;

/// Write every output derived from `data` into `dir`.
pub fn write_all(dir: &Path, data: &RunData) -> Result<(), ResultsError> {
    report::write(dir, &data.summary).map_err(|e| write_error(dir, e))?;
    tables::write(dir, data).map_err(|e| write_error(&dir.join("*.csv"), e))?;
    faults_out::write_csv(dir, data)
        .map_err(|e| write_error(&dir.join(faults_out::CSV_FILE), e))?;
    hlog::write(dir, data).map_err(|(path, e)| write_error(&path, e))?;
    llmd::write(dir, data)?;
    charts::write(dir, data).map_err(|(path, e)| write_error(&path, e))?;
    // Last: the page links every file written before it.
    html::write_run(dir, data).map_err(|e| write_error(&dir.join(html::RUN_FILE), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::{START, run_dir};

    #[test]
    fn absurd_but_parseable_values_do_not_panic() {
        let start = START
            .replace("\"window_ms\":1000", &format!("\"window_ms\":{}", u64::MAX))
            .replace(
                "\"start_unix_nanos\":0",
                &format!("\"start_unix_nanos\":{}", i64::MIN),
            );
        let window = format!(
            r#"{{"record":"window","phase":0,"agent":"a","sequence":1,"window":{},"counters":{{"sent":1,"ok":0,"failed":0,"skipped":0,"output_tokens":0,"input_tokens":0,"usage_reported":0}},"errors":{{}},"cpu_micros":0,"histograms":{{}}}}"#,
            u32::MAX
        );
        let dir = run_dir(&format!("{start}\n{window}\n"));
        let data = crate::results::rebuild(dir.path()).unwrap();
        write_all(dir.path(), &data).unwrap();
    }
}

#[cfg(test)]
mod percentile_tests {
    use super::*;

    /// The committed golden run with `run.percentiles` set, rebuilt.
    fn golden_with(percentiles: &str) -> (tempfile::TempDir, RunData) {
        let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/report");
        let dir = tempfile::tempdir().unwrap();
        for f in ["manifest.json", "windows.jsonl"] {
            std::fs::copy(golden.join(f), dir.path().join(f)).unwrap();
        }
        let plan = std::fs::read_to_string(golden.join("plan.toml")).unwrap();
        let plan = plan.replacen(
            "[run]\n",
            &format!("[run]\npercentiles = {percentiles}\n"),
            1,
        );
        std::fs::write(dir.path().join("plan.toml"), plan).unwrap();
        let data = crate::results::rebuild(dir.path()).unwrap();
        write_all(dir.path(), &data).unwrap();
        (dir, data)
    }

    #[test]
    fn chosen_percentiles_are_the_ones_every_output_shows() {
        let (dir, data) = golden_with("[99.99, 75]");
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
        let summary: serde_json::Value = serde_json::from_str(&read("summary.json")).unwrap();
        let ttft = &summary["phases"][0]["metrics"]["ttft"];
        let keys: Vec<&str> = ttft
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        // (In serde_json's sorted order.)
        assert_eq!(
            keys,
            [
                "count", "max", "mean", "min", "p75", "p9999", "stddev", "unit"
            ]
        );
        // Each value is the merged histogram's own percentile.
        let h = data.phases[0]
            .acc
            .total
            .hist(stampede_common::metric::Metric::Ttft);
        let p75 = stampede_common::quantile::quantile_or_zero(h, 0.75) / 1e3;
        assert!((ttft["p75"].as_f64().unwrap() - p75).abs() < 1e-9);
        let stats = read("stats.txt");
        let header = stats.lines().find(|l| l.contains("metric")).unwrap();
        assert_eq!(
            header.split_whitespace().collect::<Vec<_>>(),
            ["metric", "unit", "count", "mean", "p75", "p99.99", "max"]
        );
        let phases = read("phases.csv");
        let cols: Vec<&str> = phases.lines().next().unwrap().split(',').collect();
        assert!(cols.contains(&"ttft_p9999_ms") && !cols.contains(&"ttft_p50_ms"));
        let row: Vec<&str> = phases.lines().nth(1).unwrap().split(',').collect();
        assert_eq!(row.len(), cols.len(), "{phases}");
        let windows = read("windows.csv");
        let header = windows.lines().next().unwrap();
        assert!(header.ends_with("tpot_p75_ms,tpot_p9999_ms"), "{header}");
        let compared = crate::outputs::compare::table(&["a".into()], &[data], 0.05);
        assert!(compared.contains("ttft p9999 (ms)"), "{compared}");
    }

    #[test]
    fn a_bad_choice_names_the_key_and_value() {
        let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/report");
        let plan = std::fs::read_to_string(golden.join("plan.toml")).unwrap();
        let plan = plan.replacen("[run]\n", "[run]\npercentiles = [50, 100]\n", 1);
        let path = Path::new("p.toml");
        let err = stampede_plan::parse(&plan, path)
            .and_then(|raw| raw.validate_without_files(path))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("run.percentiles") && err.contains("100"),
            "{err}"
        );
    }
}

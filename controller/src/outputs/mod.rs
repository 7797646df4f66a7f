//! Everything a run writes for people and tools: stats text, summary JSON,
//! CSV tables, charts, HdrHistogram logs, llm-d reports, fault tables,
//! comparisons, the regression gate and the HTML pages. Built from [`crate::results::RunData`] alone.

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

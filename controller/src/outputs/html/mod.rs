//! One self-contained HTML page per run (`report.html`), per sweep
//! (`sweep.html`) and per comparison (`compare --html FILE`): a file that
//! opens from disk with no network, its key tables readable without
//! JavaScript and its charts drawn by the vendored uPlot
//! (`controller/assets/uplot`).
//!
//! Built from the same in-memory results as every other output
//! ([`RunData`], the sweep's cell figures, the comparison's rows): data →
//! [`page`] (tables, charts as columnar JSON) → [`render`] (HTML).

pub mod compare;
pub mod page;
pub mod render;
mod run;
pub mod sweep;
#[cfg(test)]
mod tests;

use crate::results::RunData;
use std::path::Path;

/// File name of a run's page.
pub const RUN_FILE: &str = "report.html";

/// The page of a run; `files` are the run directory's other files, linked
/// from the page (relative paths).
pub fn run_page(data: &RunData, files: &[String]) -> String {
    render::page(&run::page(data, files))
}

/// Write `report.html` into the run directory `dir`, linking the files
/// already there.
pub fn write_run(dir: &Path, data: &RunData) -> std::io::Result<()> {
    let files = raw_files(dir)?;
    std::fs::write(dir.join(RUN_FILE), run_page(data, &files))
}

/// Files of a run directory (and its `requests/`), relative, sorted;
/// without the page itself.
fn raw_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    for sub in ["", "requests"] {
        let d = dir.join(sub);
        if !d.is_dir() {
            continue;
        }
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            if !e.file_type()?.is_file() {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            if sub.is_empty() && name == RUN_FILE {
                continue;
            }
            out.push(if sub.is_empty() {
                name
            } else {
                format!("{sub}/{name}")
            });
        }
    }
    out.sort();
    Ok(out)
}

//! `controller compare`: runs side by side against the first, as a table
//! and optionally a chart.

use super::exit;
use crate::model::Status;
use crate::orchestrate::error::ControllerError;
use crate::outputs::{charts, compare};
use crate::results;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Compare `runs` (the first is the reference).
pub fn command(runs: &[PathBuf], min_change: f64, png: Option<&Path>) -> ExitCode {
    if !(min_change.is_finite() && min_change >= 0.0) {
        let e = format!("--min-change {min_change}: must be a percentage ≥ 0");
        return exit::error(&e, Status::BadInput);
    }
    let mut data = Vec::with_capacity(runs.len());
    for dir in runs {
        match results::rebuild(dir) {
            Ok(d) => data.push(d),
            Err(e) => {
                let e = ControllerError::Results(e);
                return exit::error(&e, e.status());
            }
        }
    }
    let labels: Vec<String> = runs.iter().map(|p| p.display().to_string()).collect();
    print!("{}", compare::table(&labels, &data, min_change / 100.0));
    if let Some(path) = png {
        if let Err(e) = charts::write_compare(path, &labels, &data) {
            let e = format!("cannot write {}: {e}", path.display());
            return exit::error(&e, Status::RunFailed);
        }
        println!("\nchart in {}", path.display());
    }
    exit::code(Status::Passed)
}

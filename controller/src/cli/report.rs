//! `controller report`: regenerate every output of a run (or sweep)
//! directory from its raw files, without re-running.

use super::exit;
use crate::model::Status;
use crate::orchestrate::error::ControllerError;
use crate::outputs::report::stats_text;
use crate::{results, sweep};
use std::path::Path;
use std::process::ExitCode;

/// Rebuild `run_dir`'s outputs and print its summary.
pub fn command(run_dir: &Path) -> ExitCode {
    if run_dir.join(sweep::state::STATE_FILE).is_file() {
        return match sweep::report(run_dir) {
            Ok(text) => {
                print!("{text}");
                exit::code(Status::Passed)
            }
            Err(e) => exit::error(&e, e.status()),
        };
    }
    let done = results::rebuild(run_dir).and_then(|data| {
        crate::outputs::write_all(run_dir, &data)?;
        Ok(data)
    });
    match done {
        Ok(data) => {
            print!("{}", stats_text(&data.summary));
            println!();
            println!("results regenerated in {}", run_dir.display());
            exit::code(Status::Passed)
        }
        Err(e) => {
            let e = ControllerError::Results(e);
            exit::error(&e, e.status())
        }
    }
}

//! `controller compare`: runs side by side against the first, as a table
//! and optionally a chart and a page; with thresholds, a regression gate (exit 5) that
//! `controller run --baseline` shares.

use super::exit;
use crate::analysis::gate::{self, Named, threshold};
use crate::model::Status;
use crate::model::gate::{GateReport, Threshold};
use crate::orchestrate::error::ControllerError;
use crate::outputs::gate::{junit, markdown};
use crate::outputs::{charts, compare, html};
use crate::results;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The regression gate's flags (`compare` and `run --baseline`).
#[derive(Debug, clap::Args)]
pub struct GateFlags {
    /// Fail (exit 5) when a figure is worse than this against the baseline,
    /// e.g. 'ttft.p99>+10%', 'e2e.p50>+20ms', 'throughput<-5%',
    /// 'error_rate>+0.5pp'; repeat for several (docs/compare.md).
    #[arg(long = "fail-on", value_name = "METRIC>+N%|METRIC<-N%")]
    pub fail_on: Vec<String>,
    /// A TOML file of thresholds: fail_on = ["ttft.p99>+10%", ...]; a
    /// --fail-on on the same metric replaces the file's.
    #[arg(long, value_name = "FILE")]
    pub thresholds: Option<PathBuf>,
    /// Also write the gate's result as Markdown (e.g. for $GITHUB_STEP_SUMMARY).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Also write the gate's result as JUnit XML: one test case per gated
    /// metric per phase.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// A validated gate: its thresholds and where to write its files.
#[derive(Debug)]
pub struct Gate {
    thresholds: Vec<Threshold>,
    markdown: Option<PathBuf>,
    junit: Option<PathBuf>,
}

impl GateFlags {
    /// Whether any of the gate's flags was given.
    pub fn given(&self) -> bool {
        !self.fail_on.is_empty()
            || self.thresholds.is_some()
            || self.markdown.is_some()
            || self.junit.is_some()
    }

    /// The gate, parsed and validated (`None`: no thresholds, no gate).
    pub fn gate(&self) -> Result<Option<Gate>, String> {
        let file = match &self.thresholds {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                threshold::from_toml(&text, path).map_err(|e| e.to_string())?
            }
            None => Vec::new(),
        };
        let flags = threshold::from_flags(&self.fail_on).map_err(|e| e.to_string())?;
        let thresholds = threshold::merge(file, flags);
        if thresholds.is_empty() {
            if self.markdown.is_some() || self.junit.is_some() {
                return Err(
                    "--markdown and --junit write the regression gate's result: \
                            give thresholds with --fail-on or --thresholds"
                        .into(),
                );
            }
            return Ok(None);
        }
        Ok(Some(Gate {
            thresholds,
            markdown: self.markdown.clone(),
            junit: self.junit.clone(),
        }))
    }
}

impl Gate {
    /// Gate each candidate against the baseline: print the result, write
    /// the files asked for, and say how it ended (`Regressed` when any
    /// check failed; `RunFailed` when a file cannot be written).
    pub fn check(&self, baseline: Named, candidates: &[Named]) -> Status {
        let reports: Vec<GateReport> = candidates
            .iter()
            .map(|c| gate::evaluate(baseline, *c, &self.thresholds))
            .collect();
        for r in &reports {
            println!();
            print!("{}", crate::outputs::gate::text(r));
            for f in r.failures() {
                eprintln!("regression: {}", crate::outputs::gate::failure_text(f));
            }
        }
        let files = [
            (
                &self.markdown,
                markdown::render as fn(&[GateReport]) -> String,
            ),
            (&self.junit, junit::render),
        ];
        for (path, render) in files {
            let Some(path) = path else { continue };
            if let Err(e) = std::fs::write(path, render(&reports)) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return Status::RunFailed;
            }
        }
        if reports.iter().any(|r| r.failures().next().is_some()) {
            Status::Regressed
        } else {
            Status::Passed
        }
    }
}

/// A run directory read back for a comparison or a gate.
pub fn load(dir: &Path) -> Result<results::RunData, ControllerError> {
    results::rebuild(dir).map_err(ControllerError::Results)
}

/// The comparison's optional files.
#[derive(Debug, Clone, Copy)]
pub struct Files<'a> {
    /// The chart (`--png`).
    pub png: Option<&'a Path>,
    /// The page (`--html`).
    pub html: Option<&'a Path>,
}

/// `to` relative to the directory `from` (both resolved), with `/`
/// separators; `None` when either cannot be resolved.
fn relative(from: &Path, to: &Path) -> Option<String> {
    let (from, to) = (from.canonicalize().ok()?, to.canonicalize().ok()?);
    let (a, b): (Vec<_>, Vec<_>) = (from.components().collect(), to.components().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = vec!["..".to_string(); a.len() - common];
    parts.extend(
        b[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    Some(parts.join("/"))
}

/// Write the comparison page to `path`, linking each run's own page.
fn write_html(
    path: &Path,
    dirs: &[PathBuf],
    labels: &[String],
    data: &[results::RunData],
    min_change: f64,
) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let links: Vec<html::compare::RunLink> = dirs
        .iter()
        .zip(labels)
        .map(|(dir, label)| html::compare::RunLink {
            label: label.clone(),
            page: relative(&parent, &dir.join(html::RUN_FILE)),
        })
        .collect();
    std::fs::write(path, html::compare::page(&links, data, min_change))
}

/// Compare `runs` (the first is the reference), and gate them when thresholds are given.
pub fn command(runs: &[PathBuf], min_change: f64, files: Files<'_>, flags: &GateFlags) -> ExitCode {
    if !(min_change.is_finite() && min_change >= 0.0) {
        let e = format!("--min-change {min_change}: must be a percentage ≥ 0");
        return exit::error(&e, Status::BadInput);
    }
    let gate = match flags.gate() {
        Ok(g) => g,
        Err(e) => return exit::error(&e, Status::BadInput),
    };
    let mut data = Vec::with_capacity(runs.len());
    for dir in runs {
        match load(dir) {
            Ok(d) => data.push(d),
            Err(e) => return exit::error(&e, e.status()),
        }
    }
    let labels: Vec<String> = runs.iter().map(|p| p.display().to_string()).collect();
    print!("{}", compare::table(&labels, &data, min_change / 100.0));
    if let Some(path) = files.png {
        if let Err(e) = charts::write_compare(path, &labels, &data) {
            let e = format!("cannot write {}: {e}", path.display());
            return exit::error(&e, Status::RunFailed);
        }
        println!("\nchart in {}", path.display());
    }
    if let Some(path) = files.html {
        if let Err(e) = write_html(path, runs, &labels, &data, min_change / 100.0) {
            let e = format!("cannot write {}: {e}", path.display());
            return exit::error(&e, Status::RunFailed);
        }
        println!("\npage in {}", path.display());
    }
    let Some(gate) = gate else {
        return exit::code(Status::Passed);
    };
    let named: Vec<Named> = labels
        .iter()
        .zip(&data)
        .map(|(label, d)| Named {
            label,
            summary: &d.summary,
        })
        .collect();
    exit::code(gate.check(named[0], &named[1..]))
}

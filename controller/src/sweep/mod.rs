//! `controller run` on a sweep plan: every cell of the matrix, one after the
//! other, each a complete run into its own directory inside one sweep
//! directory, with a state file that lets an interrupted sweep resume
//! where it stopped and a summary across cells.
//!
//! Failure policy: a cell whose run cannot complete (an error) is recorded
//! as `failed` with its error and the sweep goes on, unless it was told to
//! stop at the first failure. A cell that completes but misses its
//! objectives is `complete`: that is a result, not a failure. A stop signal
//! ends the current cell early (its partial results are written, and it is
//! recorded `interrupted`) and runs no further cells. `--resume` reruns
//! every cell that is not `complete`.

pub mod state;
pub mod summary;

use crate::model::Status;
use crate::run::{self, RunOptions};
use stampede_plan::sweep::{self as plan_sweep, Sweep, SweepError};
use state::{CellStatus, STATE_FILE, StateError, SweepState};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use tokio_util::sync::CancellationToken;

/// Where a sweep starts from.
#[derive(Debug, Clone)]
pub enum Start {
    /// A new sweep of `plan`, into `out` (default `<run.output_dir>/<name>-<timestamp>`).
    Fresh {
        /// The plan file.
        plan: PathBuf,
        /// The sweep directory.
        out: Option<PathBuf>,
    },
    /// Resume a sweep: `from` is its directory, or its plan file (then the
    /// newest sweep of that plan under `run.output_dir`); `plan` overrides
    /// the plan file recorded in the state.
    Resume {
        /// Sweep directory or plan file.
        from: PathBuf,
        /// The plan file, when given apart.
        plan: Option<PathBuf>,
    },
}

/// Command-line settings of a sweep.
#[derive(Debug, Clone, Default)]
pub struct SweepOptions {
    /// gRPC listen address of every cell's run.
    pub listen: Option<SocketAddr>,
    /// Live Prometheus metrics address of every cell's run.
    pub metrics_listen: Option<SocketAddr>,
    /// Stop at the first failed cell (or the plan's `sweep.stop_on_failure`).
    pub stop_on_failure: bool,
}

/// Why a sweep could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum SweepRunError {
    /// The plan (or one of its cells) is invalid.
    #[error(transparent)]
    Plan(#[from] SweepError),
    /// The state file is missing, damaged, or no longer matches the plan.
    #[error(transparent)]
    State(#[from] StateError),
    /// A fresh sweep was pointed at a directory that already holds one.
    #[error(
        "{0} already holds a sweep ({STATE_FILE}); resume it with `controller run --resume {0}` or choose another --out"
    )]
    Exists(PathBuf),
    /// `--resume PLAN` found no sweep of that plan.
    #[error("no sweep of {plan} under {dir} to resume (no {name}-*/{STATE_FILE})")]
    NothingToResume {
        /// The plan.
        plan: PathBuf,
        /// Where sweeps of it would be.
        dir: PathBuf,
        /// The plan's run name.
        name: String,
    },
    /// `--resume` on a plan without `[sweep]`.
    #[error("{0} has no [sweep] table: --resume applies to sweeps")]
    NotASweep(PathBuf),
    /// A file or directory of the sweep could not be written.
    #[error("cannot write {path}: {message}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

impl SweepRunError {
    /// The class of this error: a sweep that could not be written, or bad input.
    pub fn status(&self) -> Status {
        match self {
            SweepRunError::Write { .. } | SweepRunError::State(StateError::Io { .. }) => {
                Status::RunFailed
            }
            _ => Status::BadInput,
        }
    }
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> SweepRunError + '_ {
    move |e| SweepRunError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// A sweep ready to run: expanded, validated, its directory and state settled.
#[derive(Debug)]
pub struct Prepared {
    /// The expanded sweep.
    pub sweep: Sweep,
    /// The sweep directory.
    pub dir: PathBuf,
    /// Its state (every cell pending for a fresh sweep).
    pub state: SweepState,
    /// Whether this resumes an earlier sweep.
    pub resumed: bool,
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Load a sweep plan and print what it expands to (`controller validate`).
pub fn describe(path: &Path) -> Result<String, SweepError> {
    let sweep = plan_sweep::load(path)?;
    let mut s = format!(
        "plan {} is a valid sweep: {} cell(s) ({}{})\n",
        path.display(),
        sweep.cells.len(),
        sweep.shape(),
        if sweep.excluded > 0 {
            format!(", {} excluded", sweep.excluded)
        } else {
            String::new()
        }
    );
    for c in &sweep.cells {
        let _ = writeln!(
            s,
            "  {}: {} phase(s), {} agent(s), report phase {}{}",
            c.slug,
            c.plan.phases.len(),
            c.plan.agents.count,
            c.report_phase,
            c.context
                .as_deref()
                .map(|x| format!(", context {x}"))
                .unwrap_or_default()
        );
    }
    Ok(s)
}

/// Expand and validate the plan, and settle the sweep directory and state.
pub fn prepare(start: Start) -> Result<Prepared, SweepRunError> {
    match start {
        Start::Fresh { plan, out } => {
            let (sweep, text) = load_sweep(&plan)?;
            check_cells(&sweep)?;
            let dir = out.unwrap_or_else(|| {
                let stamp: String = now().chars().filter(|c| !matches!(c, '-' | ':')).collect();
                sweep.output_dir().join(format!("{}-{stamp}", sweep.name()))
            });
            if dir.join(STATE_FILE).exists() {
                return Err(SweepRunError::Exists(dir));
            }
            std::fs::create_dir_all(&dir).map_err(write_err(&dir))?;
            let copy = dir.join("plan.toml");
            // The resolved plan: the directory must not depend on included fragments.
            std::fs::write(&copy, text).map_err(write_err(&copy))?;
            let state = SweepState::new(&sweep, &absolute(&plan), now());
            state.write(&dir)?;
            Ok(Prepared {
                sweep,
                dir,
                state,
                resumed: false,
            })
        }
        Start::Resume { from, plan } => {
            // `--resume PLAN` means that plan; `--resume DIR` the recorded one.
            let (dir, plan) = if from.is_dir() {
                (from, plan)
            } else {
                (newest_sweep_of(&from)?, Some(plan.unwrap_or(from)))
            };
            let old = SweepState::read(&dir)?;
            let plan = plan.unwrap_or_else(|| old.plan.clone());
            let (sweep, _) = load_sweep(&plan)?;
            check_cells(&sweep)?;
            let state = old.resume(&dir, &sweep, &absolute(&plan))?;
            state.write(&dir)?;
            Ok(Prepared {
                sweep,
                dir,
                state,
                resumed: true,
            })
        }
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Read a sweep plan with its includes resolved, and expand it: the sweep
/// and the resolved plan text.
fn load_sweep(plan: &Path) -> Result<(Sweep, String), SweepRunError> {
    let text = std::fs::read_to_string(plan)
        .map_err(|source| stampede_plan::PlanError::Io {
            path: plan.to_path_buf(),
            source,
        })
        .and_then(|text| stampede_plan::include::flatten(&text, plan))
        .map_err(SweepError::Plan)?;
    if !plan_sweep::is_sweep(&text) {
        return Err(SweepRunError::NotASweep(plan.to_path_buf()));
    }
    let sweep = plan_sweep::expand(&text, plan)?;
    Ok((sweep, text))
}

/// What a run checks before it starts anything, for every cell: before the
/// sweep's directory is made or its state written.
fn check_cells(sweep: &Sweep) -> Result<(), SweepRunError> {
    for cell in &sweep.cells {
        crate::run::check_local_key(&cell.plan).map_err(SweepError::Plan)?;
    }
    Ok(())
}

/// The newest `<output_dir>/<name>-*` directory holding a sweep state.
fn newest_sweep_of(plan: &Path) -> Result<PathBuf, SweepRunError> {
    let (sweep, _) = load_sweep(plan)?;
    let parent = sweep.output_dir().to_path_buf();
    let prefix = format!("{}-", sweep.name());
    let mut found: Vec<PathBuf> = std::fs::read_dir(&parent)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .filter(|p| p.join(STATE_FILE).is_file())
        .collect();
    found.sort();
    found.pop().ok_or_else(|| SweepRunError::NothingToResume {
        plan: plan.to_path_buf(),
        dir: parent,
        name: sweep.name().to_string(),
    })
}

/// How a sweep ended.
#[derive(Debug, Clone)]
pub struct SweepOutcome {
    /// The sweep directory.
    pub dir: PathBuf,
    /// Cells in the sweep.
    pub cells: usize,
    /// Complete cells (this time or before).
    pub complete: usize,
    /// Failed cells.
    pub failed: usize,
    /// Complete cells that missed an objective.
    pub slo_failed: usize,
    /// Stopped by a signal.
    pub interrupted: bool,
}

impl SweepOutcome {
    /// How the sweep ended: interrupted when a stop signal ended it, else
    /// failed when a cell failed or cells are left to run, else objectives
    /// missed when a cell missed one, else passed.
    pub fn status(&self) -> Status {
        if self.interrupted {
            Status::Interrupted
        } else if self.failed > 0 || self.complete < self.cells {
            Status::RunFailed
        } else if self.slo_failed > 0 {
            Status::ObjectivesMissed
        } else {
            Status::Passed
        }
    }

    /// The closing lines.
    pub fn text(&self) -> String {
        let mut s = format!(
            "sweep: {} of {} cell(s) complete, {} failed, {} missed objectives\n",
            self.complete, self.cells, self.failed, self.slo_failed
        );
        if self.complete < self.cells {
            let _ = writeln!(
                s,
                "{} cell(s) not complete{}; rerun them with: controller run --resume {}",
                self.cells - self.complete,
                if self.interrupted {
                    " (interrupted)"
                } else {
                    ""
                },
                self.dir.display()
            );
        }
        let _ = writeln!(
            s,
            "results in {} ({}, {}, {})",
            self.dir.display(),
            summary::CSV_FILE,
            summary::PNG_FILE,
            summary::HTML_FILE
        );
        s
    }
}

fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Run every cell that is not complete, in order.
pub async fn run(
    prepared: Prepared,
    opts: SweepOptions,
    interrupt: CancellationToken,
) -> Result<SweepOutcome, SweepRunError> {
    let Prepared {
        sweep,
        dir,
        mut state,
        resumed,
    } = prepared;
    if resumed {
        say(&format!(
            "resuming sweep {}: {} of {} cell(s) complete",
            dir.display(),
            state.count(CellStatus::Complete),
            state.cells.len()
        ));
    }
    let stop_on_failure = opts.stop_on_failure || sweep.stop_on_failure;
    let total = sweep.cells.len();
    let title = format!("Sweep {} — {}", sweep.name(), sweep.shape());
    say(&format!(
        "sweep {}: {total} cell(s) ({}) in {}",
        sweep.name(),
        sweep.shape(),
        dir.display()
    ));
    let mut stopped = false;
    // One serving stack (if cells have `[serving]`) for the whole sweep:
    // redeployed only when a cell's stack differs from the one up.
    let stack = crate::run::SharedStack::default();
    let cells_run: Result<(), SweepRunError> = async {
        for (i, cell) in sweep.cells.iter().enumerate() {
            let n = i + 1;
            let Some(at) = state.cells.iter().position(|c| c.slug == cell.slug) else {
                continue;
            };
            let record = &mut state.cells[at];
            if record.status == CellStatus::Complete {
                say(&format!(
                    "cell {n}/{total} {}: complete, skipped",
                    cell.slug
                ));
                continue;
            }
            if stopped || interrupt.is_cancelled() {
                continue;
            }
            let cell_dir = dir.join(&cell.slug);
            begin(
                record,
                &cell_dir,
                &format!("cell {n}/{total} {}", cell.slug),
            )?;
            state.write(&dir)?;
            say(&format!("cell {n}/{total} {}: starting", cell.slug));
            let text = format!(
                "# cell {} of sweep {} (plan {})\n{}",
                cell.slug,
                sweep.name(),
                state.plan.display(),
                cell.plan_text
            );
            let result = run::run(
                cell.plan.clone(),
                &text,
                RunOptions {
                    out: Some(cell_dir),
                    listen: opts.listen,
                    metrics_listen: opts.metrics_listen,
                    kube_client: None,
                    serving_probe_url: None,
                    shared_stack: Some(stack.clone()),
                },
                interrupt.clone(),
            )
            .await;
            let record = &mut state.cells[at];
            let (line, failed) = settle(record, result, &cell.report_phase, &interrupt);
            stopped = failed && stop_on_failure;
            let line = if stopped {
                format!("{line} (stopping the sweep: stop_on_failure)")
            } else {
                line
            };
            state.write(&dir)?;
            summary::write(&dir, &state, &title)
                .map_err(|(path, message)| SweepRunError::Write { path, message })?;
            say(&format!("cell {n}/{total} {}: {line}", cell.slug));
        }
        Ok(())
    }
    .await;
    // Whatever happened to the cells, the stack goes (unless `keep`).
    finish_stack(&stack, total).await;
    cells_run?;
    // Also when nothing was left to run: the summary covers every cell.
    summary::write(&dir, &state, &title)
        .map_err(|(path, message)| SweepRunError::Write { path, message })?;
    Ok(SweepOutcome {
        dir,
        cells: total,
        complete: state.count(CellStatus::Complete),
        failed: state.count(CellStatus::Failed),
        slo_failed: state
            .cells
            .iter()
            .filter(|c| c.status == CellStatus::Complete && c.slo_failed)
            .count(),
        interrupted: interrupt.is_cancelled(),
    })
}

/// Make a cell ready to (re)run: the results of an incomplete attempt go,
/// its record starts afresh.
fn begin(record: &mut state::CellState, cell_dir: &Path, name: &str) -> Result<(), SweepRunError> {
    if record.attempts > 0 && cell_dir.exists() {
        say(&format!(
            "{name}: removing the results of its incomplete attempt"
        ));
        std::fs::remove_dir_all(cell_dir).map_err(write_err(cell_dir))?;
    }
    record.status = CellStatus::Running;
    record.attempts += 1;
    record.started_at = Some(now());
    record.finished_at = None;
    record.error = None;
    record.slo_failed = false;
    record.metrics = None;
    Ok(())
}

/// Record how a cell's run ended; its line, and whether it failed.
fn settle(
    record: &mut state::CellState,
    result: Result<run::RunOutcome, crate::orchestrate::error::ControllerError>,
    report_phase: &str,
    interrupt: &CancellationToken,
) -> (String, bool) {
    record.finished_at = Some(now());
    match result {
        Ok(outcome) => {
            record.metrics = crate::model::sweep::CellMetrics::of(&outcome.summary, report_phase);
            if interrupt.is_cancelled() {
                record.status = CellStatus::Interrupted;
                let line = "interrupted (partial results kept until it is rerun)";
                (line.to_string(), false)
            } else {
                record.status = CellStatus::Complete;
                record.slo_failed = outcome.summary.slo_failed;
                (cell_line(record.metrics.as_ref(), record.slo_failed), false)
            }
        }
        Err(e) => {
            record.error = Some(e.to_string());
            if interrupt.is_cancelled() {
                record.status = CellStatus::Interrupted;
                (format!("interrupted: {e}"), false)
            } else {
                record.status = CellStatus::Failed;
                (format!("failed: {e}"), true)
            }
        }
    }
}

/// Tear down the sweep's serving stack (unless `keep`) and say how often it
/// was deployed.
async fn finish_stack(stack: &crate::run::SharedStack, total: usize) {
    let deploys = stack.deploys().await;
    match stack.finish().await {
        Ok(lines) => {
            for l in lines {
                say(&format!("serving: {l}"));
            }
        }
        Err(e) => say(&format!("serving: teardown failed: {e}")),
    }
    if deploys > 0 {
        say(&format!(
            "serving: {deploys} stack deployment(s) for {total} cell(s)"
        ));
    }
}

/// One line of key results for a completed cell.
fn cell_line(m: Option<&crate::model::sweep::CellMetrics>, slo_failed: bool) -> String {
    let Some(m) = m else {
        return "complete (its report phase did not run)".to_string();
    };
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1} ms"));
    format!(
        "complete: {:.1} req/s achieved, {:.1} ok/s, {:.0} tok/s, TTFT p99 {}, E2E p99 {}, errors {:.2}%{}",
        m.achieved_rate,
        m.request_throughput,
        m.output_token_throughput,
        ms(m.ttft_p99_ms),
        ms(m.e2e_p99_ms),
        m.error_rate * 100.0,
        if slo_failed {
            ", objectives missed"
        } else {
            ""
        }
    )
}

/// `controller report SWEEP_DIR`: rewrite `sweep.csv`, `sweep.png` and `sweep.html` from the state.
pub fn report(dir: &Path) -> Result<String, SweepRunError> {
    let state = SweepState::read(dir)?;
    let name = &state.name;
    let shape = state
        .axes
        .iter()
        .map(|a| format!("{} {}", a.values.len(), a.name))
        .collect::<Vec<_>>()
        .join(" × ");
    summary::write(dir, &state, &format!("Sweep {name} — {shape}"))
        .map_err(|(path, message)| SweepRunError::Write { path, message })?;
    let mut s = String::new();
    for c in &state.cells {
        let _ = writeln!(s, "{:<12} {}", c.status.name(), c.slug);
    }
    let _ = writeln!(
        s,
        "sweep summary regenerated in {} ({}, {}, {})",
        dir.display(),
        summary::CSV_FILE,
        summary::PNG_FILE,
        summary::HTML_FILE
    );
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = r#"
[target.simulator]
[[phase]]
kind = "concurrency"
users = 1
duration = "1s"
[sweep]
users = [1, 4]
model = ["a/b", "c"]
"#;

    #[test]
    fn report_rewrites_the_summary_from_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let sweep = plan_sweep::expand(PLAN, Path::new("p.toml")).unwrap();
        let mut state = SweepState::new(&sweep, Path::new("/p.toml"), now());
        state.cells[0].status = CellStatus::Complete;
        state.cells[0].metrics = Some(crate::model::sweep::CellMetrics {
            phase: "concurrency-0".into(),
            users: Some(1),
            requests: 9,
            ttft_p99_ms: Some(12.5),
            ..crate::model::sweep::CellMetrics::default()
        });
        state.write(dir.path()).unwrap();
        let text = report(dir.path()).unwrap();
        assert!(text.contains("complete     model=a_b,users=1"), "{text}");
        let csv = std::fs::read_to_string(dir.path().join(summary::CSV_FILE)).unwrap();
        assert_eq!(csv.lines().count(), 5, "{csv}");
        assert!(csv.starts_with("cell,model,users,"), "{csv}");
        let png = std::fs::read(dir.path().join(summary::PNG_FILE)).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
        // Not a sweep directory: named.
        let e = report(&dir.path().join("a_b")).unwrap_err();
        assert_eq!(e.status(), Status::BadInput);
        assert!(e.to_string().contains("not a sweep directory"), "{e}");
    }

    #[test]
    fn an_unset_api_key_for_local_agents_is_refused_before_the_sweep_directory_is_made() {
        const VAR: &str = "STAMPEDE_TEST_UNSET_SWEEP_API_KEY";
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("sweep.toml");
        let text = PLAN.replace(
            "[target.simulator]",
            &format!("[target]\napi_key_env = \"{VAR}\"\n[target.simulator]"),
        );
        std::fs::write(&plan, text).unwrap();
        let out = dir.path().join("out");
        let Err(e) = prepare(Start::Fresh {
            plan: plan.clone(),
            out: Some(out.clone()),
        }) else {
            panic!("the sweep was prepared");
        };
        assert_eq!(e.status(), Status::BadInput);
        let e = e.to_string();
        assert!(
            e.contains(&plan.display().to_string()) && e.contains("target.api_key_env"),
            "{e}"
        );
        assert!(!out.exists(), "the sweep directory was made: {e}");
    }

    #[test]
    fn status_reflects_failures_then_objectives() {
        let outcome = |complete, failed, slo_failed| SweepOutcome {
            dir: PathBuf::from("d"),
            cells: 4,
            complete,
            failed,
            slo_failed,
            interrupted: false,
        };
        assert_eq!(outcome(4, 0, 0).status(), Status::Passed);
        assert_eq!(outcome(4, 0, 1).status(), Status::ObjectivesMissed);
        assert_eq!(outcome(3, 1, 1).status(), Status::RunFailed);
        assert_eq!(outcome(2, 0, 0).status(), Status::RunFailed);
        let stopped = SweepOutcome {
            interrupted: true,
            ..outcome(2, 0, 0)
        };
        assert_eq!(stopped.status(), Status::Interrupted);
        assert!(outcome(2, 0, 0).text().contains("--resume d"));
    }
}

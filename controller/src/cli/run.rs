//! `controller run`: one plan, or a sweep of plans (fresh or resumed). The
//! plan (and a `--baseline` run with its thresholds) is parsed and validated
//! before anything starts.

use super::compare::{self, Gate, GateFlags};
use super::exit;
use super::runtime::with_signals;
use crate::analysis::gate::Named;
use crate::model::{RunSummary, Status};
use crate::outputs::report;
use crate::run::{self, RunOptions};
use crate::sweep;
use stampede_plan as plan;
use stampede_runtime::telemetry::{self, LogFormat};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `controller run`'s flags.
#[derive(Debug, clap::Args)]
pub struct Flags {
    /// The plan file (TOML); with --resume, the sweep's plan if it moved.
    #[arg(required_unless_present = "resume")]
    pub plan: Option<PathBuf>,
    /// Results directory [default: <run.output_dir>/<name>-<timestamp>].
    #[arg(long, conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Resume a sweep: its directory, or its plan (then the newest sweep
    /// of that plan under run.output_dir). Complete cells are skipped.
    #[arg(long, value_name = "SWEEP_DIR|PLAN")]
    pub resume: Option<PathBuf>,
    /// Stop a sweep at its first failed cell (as `sweep.stop_on_failure`).
    #[arg(long)]
    pub stop_on_failure: bool,
    /// gRPC address agents dial [default: the plan's agents.listen].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Serve live Prometheus metrics at http://ADDR/metrics during the run.
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// After the run, gate it against this run directory with the
    /// thresholds below (exit 5 on a regression; docs/compare.md).
    #[arg(long, value_name = "DIR")]
    pub baseline: Option<PathBuf>,
    #[command(flatten)]
    pub gate: GateFlags,
}

/// The run a new run is gated against, read and validated before it starts.
struct Baseline {
    label: String,
    summary: RunSummary,
    gate: Gate,
}

impl Baseline {
    /// From `--baseline` and the gate's flags; `None` when neither is given.
    fn load(dir: Option<&Path>, flags: &GateFlags) -> Result<Option<Baseline>, (String, Status)> {
        let bad = |e: &str| (e.to_string(), Status::BadInput);
        let gate = flags.gate().map_err(|e| bad(&e))?;
        let (dir, gate) = match (dir, gate) {
            (None, None) if !flags.given() => return Ok(None),
            (None, _) => {
                return Err(bad(
                    "--fail-on, --thresholds, --markdown and --junit need --baseline DIR",
                ));
            }
            (Some(dir), None) => {
                let e = format!(
                    "--baseline {}: give thresholds with --fail-on or --thresholds",
                    dir.display()
                );
                return Err(bad(&e));
            }
            (Some(dir), Some(gate)) => (dir, gate),
        };
        let data = compare::load(dir).map_err(|e| (e.to_string(), e.status()))?;
        Ok(Some(Baseline {
            label: dir.display().to_string(),
            summary: data.summary,
            gate,
        }))
    }

    /// Gate a finished run.
    fn check(&self, run_dir: &Path, summary: &RunSummary) -> Status {
        let label = run_dir.display().to_string();
        let baseline = Named {
            label: &self.label,
            summary: &self.summary,
        };
        self.gate.check(
            baseline,
            &[Named {
                label: &label,
                summary,
            }],
        )
    }
}

/// Run a plan, a sweep, or resume a sweep.
pub fn command(flags: Flags, log_format: LogFormat) -> ExitCode {
    let opts = sweep::SweepOptions {
        listen: flags.listen,
        metrics_listen: flags.metrics_listen,
        stop_on_failure: flags.stop_on_failure,
    };
    let gated = flags.baseline.is_some() || flags.gate.given();
    let sweep_gated = || {
        telemetry::init(log_format);
        let e = "--baseline and the gate's flags gate a single run, not a sweep";
        exit::error(&e, Status::BadInput)
    };
    match (flags.resume, flags.plan) {
        (Some(_), _) if gated => sweep_gated(),
        (Some(from), plan) => {
            telemetry::init(log_format);
            sweep_command(sweep::Start::Resume { from, plan }, opts)
        }
        (None, Some(plan)) if is_sweep(&plan) => {
            if gated {
                return sweep_gated();
            }
            telemetry::init(log_format);
            sweep_command(
                sweep::Start::Fresh {
                    plan,
                    out: flags.out,
                },
                opts,
            )
        }
        (None, Some(plan)) => run_command(
            plan,
            (flags.baseline.as_deref(), &flags.gate),
            RunOptions {
                out: flags.out,
                listen: flags.listen,
                metrics_listen: flags.metrics_listen,
                kube_client: None,
                serving_probe_url: None,
                shared_stack: None,
            },
            log_format,
        ),
        // clap requires the plan unless --resume is given.
        (None, None) => exit::error(&"give a plan file, or --resume SWEEP_DIR", Status::BadInput),
    }
}

/// Does the file (with its includes) hold a sweep plan? (Unreadable or non-TOML files,
/// and bad includes, are reported by the plain plan loader.)
pub fn is_sweep(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .and_then(|t| {
            stampede_plan::include::flatten(&t, path)
                .map_err(|e| std::io::Error::other(e.to_string()))
        })
        .is_ok_and(|t| stampede_plan::sweep::is_sweep(&t))
}

fn run_command(
    path: PathBuf,
    (baseline, gate): (Option<&Path>, &GateFlags),
    opts: RunOptions,
    log_format: LogFormat,
) -> ExitCode {
    // Parse and validate before anything is started.
    let validated = std::fs::read_to_string(&path)
        .map_err(|source| plan::PlanError::Io {
            path: path.clone(),
            source,
        })
        // A run keeps the resolved plan: its directory must not depend on included files.
        .and_then(|text| stampede_plan::include::flatten(&text, &path))
        .and_then(|text| Ok((plan::parse(&text, &path)?.validate(&path)?, text)));
    let (plan, text) = match validated {
        Ok(v) => v,
        Err(e) => {
            telemetry::init(log_format);
            return exit::error(&e, Status::BadInput);
        }
    };
    let baseline = match Baseline::load(baseline, gate) {
        Ok(b) => b,
        Err((e, status)) => {
            telemetry::init(log_format);
            return exit::error(&e, status);
        }
    };
    with_signals(async move |interrupt| {
        // The plan decides whether the run is traced (the exporter is built
        // inside the runtime: its gRPC channel needs one).
        let service = plan
            .tracing
            .filter(|_| !telemetry::sdk_disabled())
            .map(|_| "stampede-controller");
        let telemetry = match telemetry::init_traced(log_format, service) {
            Ok(t) => t,
            Err(e) => return exit::error(&e, Status::BadInput),
        };
        let outcome = run::run(plan, &text, opts, interrupt).await;
        // Local agents' spans go through this process's exporter too.
        telemetry.shutdown().await;
        match outcome {
            Ok(outcome) => {
                println!();
                print!("{}", report::stats_text(&outcome.summary));
                println!();
                println!("results in {}", outcome.run_dir.display());
                exit::code(finish(&outcome, baseline.as_ref()))
            }
            Err(e) => exit::error(&e, e.status()),
        }
    })
}

/// How a completed run ended: interrupted runs are not gated; a results
/// file that cannot be written, then missed objectives, then a regression
/// take precedence in that order.
fn finish(outcome: &run::RunOutcome, baseline: Option<&Baseline>) -> Status {
    let summary = &outcome.summary;
    if summary.interrupted {
        eprintln!("interrupted: the results cover what ran before the stop");
        if baseline.is_some() {
            eprintln!("not gated against the baseline: the run was interrupted");
        }
        return Status::Interrupted;
    }
    let gated = baseline.map_or(Status::Passed, |b| b.check(&outcome.run_dir, summary));
    if gated == Status::RunFailed {
        return gated;
    }
    if summary.slo_failed {
        eprintln!("service-level objectives failed (see stats.txt)");
        return Status::ObjectivesMissed;
    }
    gated
}

fn sweep_command(start: sweep::Start, opts: sweep::SweepOptions) -> ExitCode {
    // Every cell is expanded and validated before anything starts.
    let prepared = match sweep::prepare(start) {
        Ok(p) => p,
        Err(e) => return exit::error(&e, e.status()),
    };
    with_signals(
        async move |interrupt| match sweep::run(prepared, opts, interrupt).await {
            Ok(outcome) => {
                println!();
                print!("{}", outcome.text());
                exit::code(outcome.status())
            }
            Err(e) => exit::error(&e, e.status()),
        },
    )
}

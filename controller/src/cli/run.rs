//! `controller run`: one plan, or a sweep of plans (fresh or resumed). The
//! plan is parsed and validated before anything starts.

use super::exit;
use super::runtime::with_signals;
use crate::model::Status;
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
}

/// Run a plan, a sweep, or resume a sweep.
pub fn command(flags: Flags, log_format: LogFormat) -> ExitCode {
    let opts = sweep::SweepOptions {
        listen: flags.listen,
        metrics_listen: flags.metrics_listen,
        stop_on_failure: flags.stop_on_failure,
    };
    match (flags.resume, flags.plan) {
        (Some(from), plan) => {
            telemetry::init(log_format);
            sweep_command(sweep::Start::Resume { from, plan }, opts)
        }
        (None, Some(plan)) if is_sweep(&plan) => {
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

fn run_command(path: PathBuf, opts: RunOptions, log_format: LogFormat) -> ExitCode {
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
                if outcome.summary.interrupted {
                    eprintln!("interrupted: the results cover what ran before the stop");
                    exit::code(Status::Interrupted)
                } else if outcome.summary.slo_failed {
                    eprintln!("service-level objectives failed (see stats.txt)");
                    exit::code(Status::ObjectivesMissed)
                } else {
                    exit::code(Status::Passed)
                }
            }
            Err(e) => exit::error(&e, e.status()),
        }
    })
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

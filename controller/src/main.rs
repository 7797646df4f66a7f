//! `controller`: run or check a stampede benchmark plan.

use clap::{Parser, Subcommand};
use stampede_agent::telemetry::{self, LogFormat};
use stampede_controller::orchestrate::error::{
    ControllerError, EXIT_ABORTED, EXIT_BAD_INPUT, EXIT_OK, EXIT_RUN_FAILED, EXIT_SLO_FAILED,
};
use stampede_controller::orchestrate::{certs, k8s};
use stampede_controller::outputs::report;
use stampede_controller::run::{self, RunOptions};
use stampede_controller::{results, sweep};
use stampede_plan as plan;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Distributed load generator and benchmark harness for LLM inference serving.
#[derive(Debug, Parser)]
#[command(name = "controller", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format (logs go to stderr; progress and summaries to stdout).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Plain)]
    log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a benchmark plan and write a results directory (a sweep plan: a
    /// sweep directory with one results directory per cell).
    Run {
        /// The plan file (TOML); with --resume, the sweep's plan if it moved.
        #[arg(required_unless_present = "resume")]
        plan: Option<PathBuf>,
        /// Results directory [default: <run.output_dir>/<name>-<timestamp>].
        #[arg(long, conflicts_with = "resume")]
        out: Option<PathBuf>,
        /// Resume a sweep: its directory, or its plan (then the newest sweep
        /// of that plan under run.output_dir). Complete cells are skipped.
        #[arg(long, value_name = "SWEEP_DIR|PLAN")]
        resume: Option<PathBuf>,
        /// Stop a sweep at its first failed cell (as `sweep.stop_on_failure`).
        #[arg(long)]
        stop_on_failure: bool,
        /// gRPC address agents dial [default: the plan's agents.listen].
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Serve live Prometheus metrics at http://ADDR/metrics during the run.
        #[arg(long)]
        metrics_listen: Option<SocketAddr>,
    },
    /// Check a plan without running it.
    Validate {
        /// The plan file (TOML).
        plan: PathBuf,
    },
    /// Regenerate every output of a run directory from its raw files
    /// (plan.toml, manifest.json, windows.jsonl) without re-running.
    Report {
        /// The run directory.
        run_dir: PathBuf,
    },
    /// Generate a development CA, controller and agent certificates and a
    /// join token for mTLS between agents and the controller.
    Certs {
        /// Directory to write into.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// DNS name or IP address agents dial the controller by; repeat for
        /// several [default: localhost and 127.0.0.1].
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Also write secrets.yaml with Kubernetes Secrets NAME-controller and NAME-agent.
        #[arg(long, value_name = "NAME")]
        k8s_secret: Option<String>,
        /// Namespace of the Kubernetes Secrets.
        #[arg(long, default_value = "stampede")]
        namespace: String,
        /// Replace existing files (agents trusting the old CA are then refused).
        #[arg(long)]
        force: bool,
    },
    /// Deploy agents on Kubernetes: apply the agent DaemonSet, the controller
    /// Service and (with a plan) the plan ConfigMap; the mTLS Secret must exist.
    Deploy {
        /// A plan whose [kubernetes] table and agents.listen port to use.
        plan: Option<PathBuf>,
        #[command(flatten)]
        k8s: K8sFlags,
        /// Agent image [default: kubernetes.agent_image, or stampede/agent:<version>].
        #[arg(long)]
        image: Option<String>,
        /// URL agents dial [default: https://stampede-controller.<namespace>.svc:<port>].
        #[arg(long)]
        controller_address: Option<String>,
    },
    /// Delete the objects `deploy` created and any `[serving]` stack's
    /// Deployment and Service (only with the app.kubernetes.io/managed-by=stampede
    /// label); Secrets and Helm releases stay.
    Teardown {
        /// A plan whose [kubernetes] table to use.
        plan: Option<PathBuf>,
        #[command(flatten)]
        k8s: K8sFlags,
    },
    /// Compare runs phase by phase against the first: values, deltas and a
    /// better / worse / within-noise call per metric.
    Compare {
        /// Run directories; the first is the reference.
        #[arg(required = true, num_args = 2..)]
        runs: Vec<PathBuf>,
        /// Smallest relative change (percent) called better or worse.
        #[arg(long, default_value_t = 5.0)]
        min_change: f64,
        /// Also draw the comparison as a PNG chart into this file.
        #[arg(long)]
        png: Option<PathBuf>,
    },
}

/// Where on Kubernetes: flags over the plan's [kubernetes] table.
#[derive(Debug, clap::Args)]
struct K8sFlags {
    /// kubeconfig context [default: kubernetes.context, or the current context].
    #[arg(long)]
    context: Option<String>,
    /// Namespace [default: kubernetes.namespace, or stampede].
    #[arg(long)]
    namespace: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any reqwest client is built (the /v1/models lookup, local agents).
    let _ = rustls::crypto::ring::default_provider().install_default();
    if !matches!(cli.command, Command::Run { .. }) {
        telemetry::init(cli.log_format);
    }
    match cli.command {
        Command::Validate { plan: path } if is_sweep(&path) => {
            match stampede_controller::sweep::describe(&path) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::from(EXIT_OK)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(EXIT_BAD_INPUT)
                }
            }
        }
        Command::Validate { plan: path } => match plan::load(&path).and_then(|p| {
            let words = match &p.target.tokenizer {
                Some(t) => Some(stampede_controller::orchestrate::tokenizer::one_token_words(t)?),
                None => None,
            };
            Ok((p, words))
        }) {
            Ok((p, words)) => {
                let mode = match p.agents.mode {
                    plan::AgentMode::Local => "local",
                    plan::AgentMode::Remote => "remote",
                };
                println!(
                    "plan {} is valid: {} phase(s), {} {mode} agent(s)",
                    path.display(),
                    p.phases.len(),
                    p.agents.count,
                );
                use stampede_controller::analysis::inputs;
                print!("{}", inputs::text(&inputs::datasets(&p)));
                print!("{}", inputs::trace_text(&inputs::traces(&p)));
                if let Some(k) = &p.kubernetes {
                    println!("{}", k8s::command::summary(k));
                }
                if let Some(s) = &p.serving {
                    println!("{}", stampede_controller::orchestrate::serving::summary(s));
                }
                if let (Some(t), Some(w)) = (&p.target.tokenizer, words) {
                    println!(
                        "tokenizer {}: prompts from {} one-token words",
                        t.display(),
                        w.len()
                    );
                }
                ExitCode::from(EXIT_OK)
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_BAD_INPUT)
            }
        },
        Command::Run {
            plan: path,
            out,
            resume,
            stop_on_failure,
            listen,
            metrics_listen,
        } => {
            let opts = sweep::SweepOptions {
                listen,
                metrics_listen,
                stop_on_failure,
            };
            match (resume, path) {
                (Some(from), plan) => {
                    telemetry::init(cli.log_format);
                    sweep_command(sweep::Start::Resume { from, plan }, opts)
                }
                (None, Some(plan)) if is_sweep(&plan) => {
                    telemetry::init(cli.log_format);
                    sweep_command(sweep::Start::Fresh { plan, out }, opts)
                }
                (None, Some(plan)) => run_command(
                    plan,
                    RunOptions {
                        out,
                        listen,
                        metrics_listen,
                        kube_client: None,
                        serving_probe_url: None,
                        shared_stack: None,
                    },
                    cli.log_format,
                ),
                // clap requires the plan unless --resume is given.
                (None, None) => {
                    eprintln!("error: give a plan file, or --resume SWEEP_DIR");
                    ExitCode::from(EXIT_BAD_INPUT)
                }
            }
        }
        Command::Report { run_dir } => report_command(&run_dir),
        Command::Certs {
            out,
            hosts,
            k8s_secret,
            namespace,
            force,
        } => certs_command(&certs::CertsOptions {
            out,
            hosts,
            k8s_secret,
            namespace,
            force,
        }),
        Command::Deploy {
            plan,
            k8s,
            image,
            controller_address,
        } => k8s_command(
            plan.as_deref(),
            k8s::command::Overrides {
                context: k8s.context,
                namespace: k8s.namespace,
                agent_image: image,
                controller_address,
            },
            true,
        ),
        Command::Teardown { plan, k8s } => k8s_command(
            plan.as_deref(),
            k8s::command::Overrides {
                context: k8s.context,
                namespace: k8s.namespace,
                ..Default::default()
            },
            false,
        ),
        Command::Compare {
            runs,
            min_change,
            png,
        } => compare_command(&runs, min_change, png.as_deref()),
    }
}

fn compare_command(runs: &[PathBuf], min_change: f64, png: Option<&std::path::Path>) -> ExitCode {
    if !(min_change.is_finite() && min_change >= 0.0) {
        eprintln!("error: --min-change {min_change}: must be a percentage ≥ 0");
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let mut data = Vec::with_capacity(runs.len());
    for dir in runs {
        match results::rebuild(dir) {
            Ok(d) => data.push(d),
            Err(e) => return report_error(&ControllerError::Results(e)),
        }
    }
    let labels: Vec<String> = runs.iter().map(|p| p.display().to_string()).collect();
    print!(
        "{}",
        stampede_controller::outputs::compare::table(&labels, &data, min_change / 100.0)
    );
    if let Some(path) = png {
        if let Err(e) = stampede_controller::outputs::charts::write_compare(path, &labels, &data) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(EXIT_RUN_FAILED);
        }
        println!("\nchart in {}", path.display());
    }
    ExitCode::from(EXIT_OK)
}

fn certs_command(opts: &certs::CertsOptions) -> ExitCode {
    match certs::run(opts) {
        Ok(files) => {
            for f in files {
                println!("wrote {}", f.display());
            }
            println!(
                "plan: [agents] tls = {{ ca = \"ca.pem\", cert = \"controller.pem\", key = \"controller.key\" }}, join_token_file = \"join-token\" (paths relative to the plan)"
            );
            println!(
                "agent: --ca ca.pem --cert agent.pem --key agent.key --join-token-file join-token"
            );
            ExitCode::from(EXIT_OK)
        }
        Err(e @ (certs::CertsError::Generate { .. } | certs::CertsError::Write { .. })) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_RUN_FAILED)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn report_command(run_dir: &std::path::Path) -> ExitCode {
    if run_dir.join(sweep::state::STATE_FILE).is_file() {
        return match sweep::report(run_dir) {
            Ok(text) => {
                print!("{text}");
                ExitCode::from(EXIT_OK)
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(e.exit_code())
            }
        };
    }
    let done = results::rebuild(run_dir).and_then(|data| {
        stampede_controller::outputs::write_all(run_dir, &data)?;
        Ok(data)
    });
    match done {
        Ok(data) => {
            print!("{}", report::stats_text(&data.summary));
            println!();
            println!("results regenerated in {}", run_dir.display());
            ExitCode::from(EXIT_OK)
        }
        Err(e) => report_error(&ControllerError::Results(e)),
    }
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
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
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
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_BAD_INPUT);
            }
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
                if outcome.summary.slo_failed {
                    eprintln!("service-level objectives failed (see stats.txt)");
                    ExitCode::from(EXIT_SLO_FAILED)
                } else {
                    ExitCode::from(EXIT_OK)
                }
            }
            Err(e) => report_error(&e),
        }
    })
}

/// Run `work` on a new async runtime, with Ctrl-C / SIGTERM wired to the
/// token it is given (see [`watch_signals`]).
fn with_signals(work: impl AsyncFnOnce(CancellationToken) -> ExitCode) -> ExitCode {
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let interrupt = CancellationToken::new();
        tokio::spawn(watch_signals(interrupt.clone()));
        work(interrupt).await
    })
}

/// `controller deploy` (`deploy`) or `controller teardown`.
fn k8s_command(
    plan: Option<&std::path::Path>,
    flags: k8s::command::Overrides,
    deploy: bool,
) -> ExitCode {
    let ready = k8s::command::settings(plan, &flags)
        .map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        })
        .and_then(|s| Ok((s, runtime()?)));
    let (settings, runtime) = match ready {
        Ok(v) => v,
        Err(code) => return code,
    };
    // The kube client must be built inside the runtime.
    runtime.block_on(async {
        let done = if deploy {
            k8s::command::run_deploy(&settings)
                .await
                .map(|r| r.text(&settings.kubernetes))
        } else {
            k8s::command::run_teardown(&settings).await
        };
        match done {
            Ok(text) => {
                print!("{text}");
                ExitCode::from(EXIT_OK)
            }
            Err(e) => report_error(&e),
        }
    })
}

/// The agents' runtime: local agents run in this process.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    stampede_agent::runtime().map_err(|e| {
        eprintln!("error: cannot start the async runtime: {e}");
        ExitCode::FAILURE
    })
}

/// Does the file (with its includes) hold a sweep plan? (Unreadable or non-TOML files,
/// and bad includes, are reported by the plain plan loader.)
fn is_sweep(path: &std::path::Path) -> bool {
    std::fs::read_to_string(path)
        .and_then(|t| {
            stampede_plan::include::flatten(&t, path)
                .map_err(|e| std::io::Error::other(e.to_string()))
        })
        .is_ok_and(|t| stampede_plan::sweep::is_sweep(&t))
}

fn sweep_command(start: sweep::Start, opts: sweep::SweepOptions) -> ExitCode {
    // Every cell is expanded and validated before anything starts.
    let prepared = match sweep::prepare(start) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    with_signals(
        async move |interrupt| match sweep::run(prepared, opts, interrupt).await {
            Ok(outcome) => {
                println!();
                print!("{}", outcome.text());
                ExitCode::from(outcome.exit_code())
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(e.exit_code())
            }
        },
    )
}

fn report_error(e: &ControllerError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(e.exit_code())
}

/// First SIGINT/SIGTERM: end the current phase and write results. Second: abort.
async fn watch_signals(interrupt: CancellationToken) {
    let mut signals = stampede_agent::signals::Shutdown::new();
    signals.recv().await;
    interrupt.cancel();
    signals.recv().await;
    eprintln!("aborted");
    std::process::exit(i32::from(EXIT_ABORTED));
}

//! `controller`: run or check a stampede benchmark plan.

use clap::{Parser, Subcommand};
use stampede_agent::telemetry::{self, LogFormat};
use stampede_common::plan;
use stampede_controller::error::{
    ControllerError, EXIT_ABORTED, EXIT_BAD_INPUT, EXIT_OK, EXIT_RUN_FAILED, EXIT_SLO_FAILED,
};
use stampede_controller::run::{self, RunOptions};
use stampede_controller::{certs, report, results};
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
    /// Run a benchmark plan and write a results directory.
    Run {
        /// The plan file (TOML).
        plan: PathBuf,
        /// Results directory [default: <run.output_dir>/<name>-<timestamp>].
        #[arg(long)]
        out: Option<PathBuf>,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any reqwest client is built (the /v1/models lookup, local agents).
    let _ = rustls::crypto::ring::default_provider().install_default();
    if !matches!(cli.command, Command::Run { .. }) {
        telemetry::init(cli.log_format);
    }
    match cli.command {
        Command::Validate { plan: path } => match plan::load(&path).and_then(|p| {
            let words = match &p.target.tokenizer {
                Some(t) => Some(stampede_controller::tokenizer::one_token_words(t)?),
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
                use stampede_controller::inputs;
                print!("{}", inputs::text(&inputs::datasets(&p)));
                print!("{}", inputs::trace_text(&inputs::traces(&p)));
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
            listen,
            metrics_listen,
        } => run_command(
            path,
            RunOptions {
                out,
                listen,
                metrics_listen,
            },
            cli.log_format,
        ),
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
        stampede_controller::compare::table(&labels, &data, min_change / 100.0)
    );
    if let Some(path) = png {
        if let Err(e) = stampede_controller::charts::write_compare(path, &labels, &data) {
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
    let done = results::rebuild(run_dir).and_then(|data| {
        results::write_all(run_dir, &data)?;
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
        .and_then(|text| Ok((plan::parse(&text, &path)?.validate(&path)?, text)));
    let (plan, text) = match validated {
        Ok(v) => v,
        Err(e) => {
            telemetry::init(log_format);
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
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
        let interrupt = CancellationToken::new();
        tokio::spawn(watch_signals(interrupt.clone()));
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

fn report_error(e: &ControllerError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(e.exit_code())
}

/// First SIGINT/SIGTERM: end the current phase and write results. Second: abort.
async fn watch_signals(interrupt: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let next = async |term: &mut Option<tokio::signal::unix::Signal>| {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            Some(()) = async { match term { Some(t) => t.recv().await, None => std::future::pending().await } } => {}
        }
    };
    next(&mut term).await;
    interrupt.cancel();
    next(&mut term).await;
    eprintln!("aborted");
    std::process::exit(i32::from(EXIT_ABORTED));
}

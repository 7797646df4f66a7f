//! The `controller` command line: parse, start logging, dispatch to one
//! subcommand (one file each), and turn how it ended into the exit code
//! ([`exit`]).

mod certs;
mod compare;
mod exit;
mod k8s;
mod monitoring;
mod report;
mod run;
mod runtime;
mod validate;

use clap::{Parser, Subcommand};
use stampede_runtime::telemetry::{self, LogFormat};
use std::path::PathBuf;
use std::process::ExitCode;

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
    Run(run::Flags),
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
    /// better / worse / within-noise call per metric; with thresholds, fail
    /// (exit 5) when a run regressed against the first.
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
        /// Also write the comparison as a self-contained HTML page into this file.
        #[arg(long)]
        html: Option<PathBuf>,
        #[command(flatten)]
        gate: compare::GateFlags,
    },
    /// Monitoring next to a run: alerting rules from a plan's objectives.
    #[command(subcommand)]
    Monitoring(monitoring::Monitoring),
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

/// Parse the command line, run the subcommand, return its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any reqwest client is built (the /v1/models lookup, local agents).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A run starts logging itself: its plan decides whether it is traced.
    if !matches!(cli.command, Command::Run(_)) {
        telemetry::init(cli.log_format);
    }
    match cli.command {
        Command::Validate { plan } => validate::command(&plan),
        Command::Run(flags) => run::command(flags, cli.log_format),
        Command::Report { run_dir } => report::command(&run_dir),
        Command::Certs {
            out,
            hosts,
            k8s_secret,
            namespace,
            force,
        } => certs::command(&crate::orchestrate::certs::CertsOptions {
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
        } => k8s::command(
            plan.as_deref(),
            k8s.overrides(image, controller_address),
            true,
        ),
        Command::Teardown { plan, k8s } => {
            k8s::command(plan.as_deref(), k8s.overrides(None, None), false)
        }
        Command::Monitoring(what) => monitoring::command(&what),
        Command::Compare {
            runs,
            min_change,
            png,
            html,
            gate,
        } => compare::command(
            &runs,
            min_change,
            compare::Files {
                png: png.as_deref(),
                html: html.as_deref(),
            },
            &gate,
        ),
    }
}

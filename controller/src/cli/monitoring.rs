//! `controller monitoring rules`: Prometheus alerting rules that mirror a
//! plan's objectives, for the monitoring component next to a run
//! (docs/observability.md).

use super::exit;
use crate::model::Status;
use crate::outputs::alert_rules::{self, RuleOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// What `controller monitoring` makes.
#[derive(Debug, clap::Subcommand)]
pub enum Monitoring {
    /// Write alerting rules with one alert per objective of each phase of a
    /// plan: a Prometheus Operator PrometheusRule, or with --plain a rule
    /// file for Prometheus's rule_files (and `promtool check rules`).
    Rules(RulesFlags),
}

/// `controller monitoring rules` flags.
#[derive(Debug, clap::Args)]
pub struct RulesFlags {
    /// The plan file (TOML).
    plan: PathBuf,
    /// Write here instead of to stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// A plain Prometheus rule file instead of a PrometheusRule object.
    #[arg(long)]
    plain: bool,
    /// Trailing window each objective is held over (the range of rate());
    /// at least four scrape intervals.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    window: Duration,
    /// How long an objective must stay missed before its alert fires.
    #[arg(long = "for", default_value = "0s", value_parser = humantime::parse_duration)]
    hold: Duration,
    /// Namespace of the PrometheusRule [default: kubernetes.namespace, or stampede].
    #[arg(long)]
    namespace: Option<String>,
}

/// Run a `controller monitoring` subcommand.
pub fn command(what: &Monitoring) -> ExitCode {
    let Monitoring::Rules(flags) = what;
    match rules(flags) {
        Ok(()) => exit::code(Status::Passed),
        Err(e) => exit::error(&e, Status::BadInput),
    }
}

fn rules(flags: &RulesFlags) -> anyhow::Result<()> {
    if super::run::is_sweep(&flags.plan) {
        anyhow::bail!(
            "{} is a sweep plan: write the rules from the plan.toml of one of its cells \
             (each cell is a run of its own)",
            flags.plan.display()
        );
    }
    // Only the objectives matter: a plan made for a cluster names TLS files
    // that only its pods mount.
    let plan = crate::results::load_plan_for_report(&flags.plan)?;
    let opts = RuleOptions {
        window: flags.window,
        hold: flags.hold,
    };
    let text = if flags.plain {
        alert_rules::rule_file_yaml(&plan, &opts)
    } else {
        let namespace = match &flags.namespace {
            Some(n) => n.clone(),
            None => plan_namespace(&flags.plan)?,
        };
        alert_rules::prometheus_rule_yaml(&plan, &opts, &namespace)
    }
    .map_err(|e| anyhow::anyhow!("{}: {e}", flags.plan.display()))?;
    match &flags.output {
        Some(path) => write(path, &text),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// The plan's `kubernetes.namespace`, or the default.
fn plan_namespace(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let raw = stampede_plan::parse(&text, path)?;
    Ok(raw
        .kubernetes
        .and_then(|k| k.namespace)
        .unwrap_or_else(|| stampede_plan::kubernetes::DEFAULT_NAMESPACE.to_string()))
}

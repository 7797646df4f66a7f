//! Prometheus alerting rules that mirror a plan's objectives, over the
//! controller's live metrics (`controller run --metrics-listen`): while a run
//! goes on, Prometheus sees the same objectives the final verdict checks,
//! evaluated over a trailing window instead of the whole phase.
//!
//! Each objective of each phase becomes two rules in one group: a recording
//! rule `stampede:objective_observed` holding the observed value (seconds for
//! latencies, a fraction for `error_rate`), and an alert
//! `StampedeObjectiveMissed` when that value breaks the objective. Written by
//! `controller monitoring rules` as a Prometheus Operator `PrometheusRule` or
//! as a plain rule file (`rule_files`, `promtool check rules`).

use serde::Serialize;
use stampede_common::metric::Metric;
use stampede_plan::slo::{Op, Slo, Stat, Subject};
use stampede_plan::{Phase, Plan};
use std::collections::BTreeMap;
use std::time::Duration;

/// The recording rule every objective's observed value is written to.
pub const OBSERVED: &str = "stampede:objective_observed";
/// The alert of an objective missed.
pub const ALERT: &str = "StampedeObjectiveMissed";

/// How the rules evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleOptions {
    /// Range of `rate()`: the trailing window an objective is held over.
    pub window: Duration,
    /// How long an objective must stay missed before the alert fires.
    pub hold: Duration,
}

/// Why rules could not be made for a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    /// An objective whose statistic the live metrics cannot give.
    #[error("phase {phase:?}: objective \"{objective}\": {why}")]
    Unsupported {
        /// The phase's name.
        phase: String,
        /// The objective as written.
        objective: String,
        /// Why, and what to write instead.
        why: String,
    },
    /// No phase has an objective.
    #[error("plan {plan:?} has no objectives (run.slo or a phase's slo): nothing to alert on")]
    NoObjectives {
        /// The plan's name.
        plan: String,
    },
    /// A window or hold that Prometheus cannot use.
    #[error("{what} must be at least 1ms, not {value:?}")]
    BadDuration {
        /// Which option.
        what: &'static str,
        /// The value given.
        value: Duration,
    },
    /// YAML serialization failed.
    #[error("cannot write the rules as YAML: {0}")]
    Yaml(String),
}

/// A Prometheus rule file: what `rule_files` loads and `promtool check rules` reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleFile {
    /// Rule groups.
    pub groups: Vec<Group>,
}

/// A group of rules, evaluated in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Recording rules first, then the alerts reading them.
    pub rules: Vec<Rule>,
}

/// One recording or alerting rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// Recording rule: the series written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// Alerting rule: the alert's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// The PromQL expression.
    pub expr: String,
    /// Alerting rule: how long the expression must hold before firing.
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    pub hold: Option<String>,
    /// Labels added to the result.
    pub labels: BTreeMap<String, String>,
    /// Alerting rule: summary and description.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The rules for every objective of every phase of `plan`.
pub fn rules(plan: &Plan, opts: &RuleOptions) -> Result<RuleFile, RulesError> {
    if opts.window.as_millis() == 0 {
        return Err(RulesError::BadDuration {
            what: "the window",
            value: opts.window,
        });
    }
    if !opts.hold.is_zero() && opts.hold.as_millis() == 0 {
        return Err(RulesError::BadDuration {
            what: "the hold (for)",
            value: opts.hold,
        });
    }
    let mut recorded = Vec::new();
    let mut alerts = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for phase in &plan.phases {
        for slo in &phase.slo {
            if !seen.insert((phase.name.as_str(), slo.text.as_str())) {
                continue;
            }
            let observed = observed_expr(plan, phase, slo, opts.window)?;
            let labels = objective_labels(plan, slo);
            recorded.push(Rule {
                record: Some(OBSERVED.to_string()),
                alert: None,
                expr: observed,
                hold: None,
                labels: labels.clone(),
                annotations: BTreeMap::new(),
            });
            alerts.push(alert_rule(plan, phase, slo, labels, opts));
        }
    }
    if recorded.is_empty() {
        return Err(RulesError::NoObjectives {
            plan: plan.name.clone(),
        });
    }
    recorded.extend(alerts);
    Ok(RuleFile {
        groups: vec![Group {
            name: format!("stampede-objectives-{}", plan.name),
            rules: recorded,
        }],
    })
}

/// The rules as a plain Prometheus rule file (YAML).
pub fn rule_file_yaml(plan: &Plan, opts: &RuleOptions) -> Result<String, RulesError> {
    let file = rules(plan, opts)?;
    let yaml = serde_yaml::to_string(&file).map_err(|e| RulesError::Yaml(e.to_string()))?;
    Ok(header(plan) + &yaml)
}

/// The rules as a Prometheus Operator `PrometheusRule` in `namespace` (YAML).
pub fn prometheus_rule_yaml(
    plan: &Plan,
    opts: &RuleOptions,
    namespace: &str,
) -> Result<String, RulesError> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Object<'a> {
        api_version: &'static str,
        kind: &'static str,
        metadata: Metadata<'a>,
        spec: RuleFile,
    }
    #[derive(Serialize)]
    struct Metadata<'a> {
        name: String,
        namespace: &'a str,
        labels: BTreeMap<&'static str, &'static str>,
    }
    let object = Object {
        api_version: "monitoring.coreos.com/v1",
        kind: "PrometheusRule",
        metadata: Metadata {
            name: format!("stampede-objectives-{}", plan.name.to_ascii_lowercase()),
            namespace,
            labels: BTreeMap::from([
                ("app.kubernetes.io/name", "stampede"),
                ("app.kubernetes.io/component", "monitoring"),
            ]),
        },
        spec: rules(plan, opts)?,
    };
    let yaml = serde_yaml::to_string(&object).map_err(|e| RulesError::Yaml(e.to_string()))?;
    Ok(header(plan) + &yaml)
}

fn header(plan: &Plan) -> String {
    format!(
        "# Generated by `controller monitoring rules` from {}: one alert per\n\
         # objective of each phase (docs/observability.md). Regenerate when the plan changes.\n",
        plan.source.display()
    )
}

/// `run=~"<plan name>-.*",phase="<phase>"`: the phase's series of this plan's runs.
fn selector(plan: &Plan, phase: &Phase) -> String {
    let run = format!("{}-.*", regex_escape(&plan.name));
    format!(
        "run=~\"{}\",phase=\"{}\"",
        promql_escape(&run),
        promql_escape(&phase.name)
    )
}

/// `sum by (run, phase) (rate(<series>{<sel>}[<window>]))`.
fn summed_rate(series: &str, sel: &str, window: &str, extra_by: &str) -> String {
    format!("sum by (run, phase{extra_by}) (rate({series}{{{sel}}}[{window}]))")
}

/// The PromQL giving what `slo` measures, per run and phase.
fn observed_expr(
    plan: &Plan,
    phase: &Phase,
    slo: &Slo,
    window: Duration,
) -> Result<String, RulesError> {
    let sel = selector(plan, phase);
    let w = prom_duration(window);
    let unsupported = |why: String| RulesError::Unsupported {
        phase: phase.name.clone(),
        objective: slo.text.clone(),
        why,
    };
    match slo.subject {
        Subject::ErrorRate => Ok(error_ratio(&sel, &w)),
        Subject::Latency { metric, stat } => {
            let family = latency_family(metric).ok_or_else(|| {
                unsupported(format!(
                    "the live metrics have no {} histogram (write the objective on ttft, itl, \
                     e2e, tpot or schedule_lag)",
                    metric.name()
                ))
            })?;
            match stat {
                // `p99.9` parses to 0.9990000000000001: write what was meant.
                Stat::Quantile(q) => Ok(format!(
                    "histogram_quantile({}, {})",
                    (q * 1e9).round() / 1e9,
                    summed_rate(&format!("{family}_bucket"), &sel, &w, ", le")
                )),
                Stat::Mean => Ok(format!(
                    "{}\n/\n{}",
                    summed_rate(&format!("{family}_sum"), &sel, &w, ""),
                    summed_rate(&format!("{family}_count"), &sel, &w, "")
                )),
                Stat::Max => Err(unsupported(
                    "a maximum cannot be read from Prometheus histograms (write a high \
                     percentile instead, e.g. p99.9)"
                        .into(),
                )),
            }
        }
    }
}

/// failed / (ok + failed), as the plan defines `error_rate`; a missing
/// counter (no failure yet, or no success) counts as zero.
fn error_ratio(sel: &str, w: &str) -> String {
    let failed = summed_rate("stampede_controller_requests_failed_total", sel, w, "");
    let ok = summed_rate("stampede_controller_requests_ok_total", sel, w, "");
    let failed_or_0 = format!("({failed} or 0 * {ok})");
    let ok_or_0 = format!("({ok} or 0 * {failed})");
    format!("{failed_or_0}\n/\n({ok_or_0} + {failed_or_0})")
}

/// The controller's live histogram of a latency metric, if it has one.
fn latency_family(metric: Metric) -> Option<&'static str> {
    match metric {
        Metric::Ttft => Some("stampede_controller_ttft_seconds"),
        Metric::Itl => Some("stampede_controller_itl_seconds"),
        Metric::E2e => Some("stampede_controller_e2e_seconds"),
        Metric::Tpot => Some("stampede_controller_tpot_seconds"),
        Metric::ScheduleLag => Some("stampede_controller_schedule_lag_seconds"),
        Metric::Ntpot | Metric::OutputTokens | Metric::InputTokens => None,
    }
}

fn objective_labels(plan: &Plan, slo: &Slo) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("objective".to_string(), slo.text.clone()),
        ("plan".to_string(), plan.name.clone()),
    ])
}

/// The alert: the observed value breaks the objective.
fn alert_rule(
    plan: &Plan,
    phase: &Phase,
    slo: &Slo,
    mut labels: BTreeMap<String, String>,
    opts: &RuleOptions,
) -> Rule {
    let (threshold, unit) = match slo.subject {
        Subject::ErrorRate => (slo.threshold, ""),
        Subject::Latency { .. } => (slo.threshold / 1e3, "s"),
    };
    let expr = format!(
        "{OBSERVED}{{objective=\"{}\",plan=\"{}\",phase=\"{}\"}} {} {threshold}",
        promql_escape(&slo.text),
        promql_escape(&plan.name),
        promql_escape(&phase.name),
        broken(slo.op),
    );
    // A stress phase's objectives end its search: a step missing them is
    // the knee the phase looks for, not a failure of the run.
    let stress = matches!(phase.kind, stampede_plan::PhaseKind::Stress(_));
    labels.insert(
        "severity".to_string(),
        if stress { "info" } else { "warning" }.to_string(),
    );
    let window = prom_duration(opts.window);
    let annotations = BTreeMap::from([
        (
            "summary".to_string(),
            format!(
                "Run {{{{ $labels.run }}}}, phase {{{{ $labels.phase }}}}: objective \"{}\" missed",
                slo.text
            ),
        ),
        (
            "description".to_string(),
            format!(
                "Over the last {window}, {{{{ $labels.phase }}}} measured {{{{ $value | humanize }}}}{unit} \
                 against \"{}\"{}.",
                slo.text,
                if stress {
                    " (a stress phase: the first step that misses it is the knee)"
                } else {
                    ""
                }
            ),
        ),
    ]);
    Rule {
        record: None,
        alert: Some(ALERT.to_string()),
        expr,
        hold: (!opts.hold.is_zero()).then(|| prom_duration(opts.hold)),
        labels,
        annotations,
    }
}

/// The comparison under which `observed op threshold` does not hold.
fn broken(op: Op) -> &'static str {
    match op {
        Op::Lt => ">=",
        Op::Le => ">",
        Op::Gt => "<=",
        Op::Ge => "<",
    }
}

/// A duration as Prometheus writes one: whole seconds, else milliseconds.
fn prom_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// `s` inside a PromQL double-quoted string.
fn promql_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `s` matched literally by an RE2 regular expression.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;

//! The regression gate's decision: is a candidate run worse than a baseline
//! beyond a threshold, and beyond noise?
//!
//! Phases are matched by name; a phase's figure is the mean over its repeats.
//! A check regresses when the change in the worse direction exceeds the
//! threshold **and**, when both runs have at least 2 repeats of the phase,
//! Welch's t-test on the repeats' values puts the difference beyond noise
//! (95%, two-sided). With fewer repeats the noise between runs cannot be
//! estimated, and the threshold alone decides. A phase or figure the
//! candidate lacks fails the gate; one the baseline lacks is reported only.

pub mod threshold;

use crate::analysis::repeats::{mean_var, welch};
use crate::model::gate::{
    Amount, GateCheck, GateMetric, GateReport, Outcome, Sample, Stat, Threshold,
};
use crate::model::{MetricSummary, PhaseSummary, RunSummary};

/// A run to gate, with the name it is reported by.
#[derive(Debug, Clone, Copy)]
pub struct Named<'a> {
    /// As given on the command line.
    pub label: &'a str,
    /// Its summary.
    pub summary: &'a RunSummary,
}

/// Check every threshold on every phase of `baseline` and `candidate`.
pub fn evaluate(baseline: Named, candidate: Named, thresholds: &[Threshold]) -> GateReport {
    let (base, cand) = (
        with_breakdowns(baseline.summary),
        with_breakdowns(candidate.summary),
    );
    let (mut names, mut stress): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    for p in base.iter().chain(&cand) {
        // A stress phase's steps differ by design; its knee is compared instead.
        let list = if p.step.is_some() {
            &mut stress
        } else {
            &mut names
        };
        if !list.contains(&p.name.as_str()) {
            list.push(&p.name);
        }
    }
    let not_gated = stress
        .iter()
        .filter(|n| !names.contains(n))
        .map(|n| format!("{n}: a stress phase (compare its knee)"))
        .collect();
    let checks = names
        .iter()
        .flat_map(|name| {
            let (a, b) = (repeats(&base, name), repeats(&cand, name));
            thresholds
                .iter()
                .map(move |t| check(name, *t, &a, &b))
                .collect::<Vec<_>>()
        })
        .collect();
    GateReport {
        baseline: baseline.label.to_string(),
        candidate: candidate.label.to_string(),
        checks,
        not_gated,
    }
}

/// The phases of `run`, each followed by its breakdowns as phases named
/// e.g. "steady · model=llama": a breakdown is gated like a phase.
fn with_breakdowns(run: &RunSummary) -> Vec<PhaseSummary> {
    let mut out = Vec::with_capacity(run.phases.len());
    for p in &run.phases {
        out.push(p.clone());
        out.extend(p.breakdowns.iter().map(|b| PhaseSummary {
            name: format!("{} · {}", p.name, b.label()),
            ..crate::analysis::breakdown::as_phase(p, b)
        }));
    }
    out
}

/// Every repeat of phase `name` in `phases` (stress steps aside).
fn repeats<'a>(phases: &'a [PhaseSummary], name: &str) -> Vec<&'a PhaseSummary> {
    phases
        .iter()
        .filter(|p| p.name == name && p.step.is_none())
        .collect()
}

/// The figure of each repeat; `None` when there is no repeat or one lacks it.
fn values(phases: &[&PhaseSummary], metric: GateMetric) -> Option<Vec<f64>> {
    if phases.is_empty() {
        return None;
    }
    phases.iter().map(|p| figure(p, metric)).collect()
}

/// One phase's figure: latencies in ms, error rate as a fraction.
pub fn figure(p: &PhaseSummary, metric: GateMetric) -> Option<f64> {
    match metric {
        GateMetric::Latency(name, stat) => p.metrics.get(name).map(|m| statistic(m, stat)),
        GateMetric::Throughput => Some(p.request_throughput),
        GateMetric::OutputThroughput => Some(p.output_token_throughput),
        GateMetric::Goodput => p.goodput,
        GateMetric::ErrorRate => {
            let done = p.requests.ok + p.requests.failed;
            (done > 0).then(|| p.requests.failed as f64 / done as f64)
        }
    }
}

fn statistic(m: &MetricSummary, stat: Stat) -> f64 {
    match stat {
        Stat::Mean => m.mean,
        Stat::P50 => m.p50,
        Stat::P90 => m.p90,
        Stat::P95 => m.p95,
        Stat::P99 => m.p99,
        Stat::P999 => m.p999,
        Stat::Max => m.max,
    }
}

/// One threshold on one phase, from each run's repeats.
fn check(phase: &str, t: Threshold, a: &[&PhaseSummary], b: &[&PhaseSummary]) -> GateCheck {
    let (va, vb) = (values(a, t.metric), values(b, t.metric));
    let sample = |v: &Vec<f64>| Sample {
        mean: mean_var(v).0,
        repeats: v.len(),
    };
    let mut c = GateCheck {
        phase: phase.to_string(),
        threshold: t,
        baseline: va.as_ref().map(sample),
        candidate: vb.as_ref().map(sample),
        change: None,
        noise: None,
        outcome: Outcome::Passed,
    };
    let (Some(va), Some(vb)) = (va, vb) else {
        c.outcome = if c.baseline.is_none() {
            Outcome::MissingInBaseline
        } else {
            Outcome::MissingInCandidate
        };
        return c;
    };
    let (ma, mb) = (mean_var(&va).0, mean_var(&vb).0);
    let change = change(t, ma, mb);
    let worse_by = if t.metric.higher_is_worse() {
        change
    } else {
        -change
    };
    let limit = match t.amount {
        Amount::Percent(v) | Amount::Absolute(v) => v,
    };
    c.change = Some(change);
    c.noise = (va.len() >= 2 && vb.len() >= 2).then(|| welch(&va, &vb));
    c.outcome = match c.noise {
        _ if worse_by <= limit => Outcome::Passed,
        Some(w) if !w.beyond_noise() => Outcome::WithinNoise,
        _ => Outcome::Regressed,
    };
    c
}

/// `b` against `a` in the threshold's unit: percent of `a`, or the
/// difference (error rates in percentage points).
pub fn change(t: Threshold, a: f64, b: f64) -> f64 {
    match t.amount {
        Amount::Percent(_) if a == 0.0 => {
            if b == a {
                0.0
            } else {
                (b - a).signum() * f64::INFINITY
            }
        }
        Amount::Percent(_) => 100.0 * (b - a) / a.abs(),
        Amount::Absolute(_) if t.metric == GateMetric::ErrorRate => 100.0 * (b - a),
        Amount::Absolute(_) => b - a,
    }
}

#[cfg(test)]
mod tests;

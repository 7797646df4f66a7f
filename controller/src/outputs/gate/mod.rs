//! The regression gate's result for people and CI: the text `compare` and
//! `run --baseline` print, a Markdown summary (GitHub job summaries) and JUnit
//! XML, all from the same cells so they never disagree.

pub mod junit;
pub mod markdown;

use crate::model::gate::{Amount, GateCheck, GateMetric, GateReport, Sample, Welch};
use std::fmt::Write as _;

/// A value as printed, in the metric's unit (error rates in %).
pub fn value_text(metric: GateMetric, v: f64) -> String {
    match metric {
        GateMetric::Latency(..) => format!("{v:.2} ms"),
        GateMetric::ErrorRate => format!("{:.2}%", 100.0 * v),
        _ => format!("{v:.2}/s"),
    }
}

/// A run's figure: its value, and the repeats averaged when more than one.
pub fn sample_text(metric: GateMetric, s: Option<Sample>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s.repeats > 1 => {
            format!("{} (mean of {})", value_text(metric, s.mean), s.repeats)
        }
        Some(s) => value_text(metric, s.mean),
    }
}

/// The change in the threshold's unit, signed.
pub fn change_text(c: &GateCheck) -> String {
    let Some(v) = c.change else {
        return "-".into();
    };
    let metric = c.threshold.metric;
    match c.threshold.amount {
        Amount::Percent(_) => format!("{v:+.1}%"),
        Amount::Absolute(_) => match metric.unit() {
            "/s" => format!("{v:+.2}/s"),
            unit => format!("{v:+.2} {unit}"),
        },
    }
}

/// The noise test's finding.
pub fn noise_text(noise: Option<Welch>) -> String {
    match noise {
        None => "not estimated".into(),
        Some(w) => format!(
            "{} (Welch t = {:.2}, df {:.1})",
            if w.beyond_noise() { "beyond" } else { "within" },
            w.t,
            w.df
        ),
    }
}

/// One line per failed check, e.g. `ttft.p99>+10% in steady: +270.7%`.
pub fn failure_text(c: &GateCheck) -> String {
    let detail = match c.change {
        Some(_) => change_text(c),
        None => c.outcome.as_str().to_string(),
    };
    format!("{} in phase {}: {detail}", c.threshold, c.phase)
}

/// The sentence under the table when some check had no noise estimate.
pub const NOISE_UNKNOWN: &str = "noise could not be estimated where a run has fewer than 2 \
     repeats of the phase (run.repeat); the threshold alone decided there";

/// The cells of one check: phase, threshold, baseline, candidate, change, noise, result.
pub fn cells(c: &GateCheck) -> [String; 7] {
    let metric = c.threshold.metric;
    [
        c.phase.clone(),
        c.threshold.to_string(),
        sample_text(metric, c.baseline),
        sample_text(metric, c.candidate),
        change_text(c),
        noise_text(c.noise),
        c.outcome.as_str().to_string(),
    ]
}

/// Column titles of [`cells`].
pub const HEADER: [&str; 7] = [
    "phase",
    "threshold",
    "baseline",
    "candidate",
    "change",
    "noise",
    "result",
];

/// The gate's result as printed by `compare` and `run --baseline`.
pub fn text(r: &GateReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "gate: {} against baseline {}", r.candidate, r.baseline);
    let rows: Vec<[String; 7]> = r.checks.iter().map(cells).collect();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header = HEADER.map(String::from);
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::from(" ");
        for (cell, w) in row.iter().zip(widths) {
            let _ = write!(line, " {cell:<w$}");
        }
        let _ = writeln!(s, "{}", line.trim_end());
    }
    for n in &r.not_gated {
        let _ = writeln!(s, "  not gated: {n}");
    }
    if r.noise_unknown() {
        let _ = writeln!(s, "  {NOISE_UNKNOWN}");
    }
    let failures: Vec<String> = r.failures().map(failure_text).collect();
    if failures.is_empty() {
        let _ = writeln!(s, "gate: passed ({} checks)", r.checks.len());
    } else {
        let _ = writeln!(s, "gate: REGRESSED: {}", failures.join("; "));
    }
    s
}

#[cfg(test)]
mod tests;

//! `controller compare RUN_A RUN_B ...`: the "did this change make it better
//! or worse?" table — vLLM standalone vs llm-d, one GPU type vs another.
//!
//! Phases are matched by name (and repeat). Every run after the first is compared with
//! the first. A difference is called **better** or **worse** only when it is
//! both larger than `min_change` (relative) and outside the noise: the 95%
//! confidence intervals of the two values do not overlap. Latency
//! percentiles get a distribution-free interval from the order statistics
//! of the merged histogram (the ranks n·q ± 1.96·√(n·q·(1−q))); rates get a
//! Poisson interval on the underlying count. Anything else is **within noise**.

use crate::model::PhaseSummary;
use crate::results::{PhaseData, RunData};
use hdrhistogram::Histogram;
use stampede_common::metric::Metric;
use stampede_common::quantile::quantile_or_zero;
use std::fmt::Write as _;

/// z-score of a two-sided 95% interval.
const Z95: f64 = 1.96;

/// A value with its 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Point value.
    pub value: f64,
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

/// The verdict on one metric of one phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Clearly better than the reference run.
    Better,
    /// Clearly worse than the reference run.
    Worse,
    /// Not distinguishable from the reference run.
    WithinNoise,
}

impl Call {
    /// As printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Call::Better => "better",
            Call::Worse => "worse",
            Call::WithinNoise => "within noise",
        }
    }
}

/// Quantile `q` of `h` in ms, with its order-statistic 95% interval.
pub fn quantile(h: &Histogram<u64>, q: f64) -> Option<Estimate> {
    if h.is_empty() {
        return None;
    }
    let n = h.len() as f64;
    let half = Z95 * (q * (1.0 - q) / n).sqrt();
    let at = |q: f64| quantile_or_zero(h, q) / 1e3;
    Some(Estimate {
        value: at(q),
        lo: at(q - half),
        hi: at(q + half),
    })
}

/// `count / seconds` with a Poisson 95% interval on the count.
pub fn rate(count: u64, seconds: f64) -> Option<Estimate> {
    if seconds <= 0.0 {
        return None;
    }
    let c = count as f64;
    let half = Z95 * c.sqrt();
    Some(Estimate {
        value: c / seconds,
        lo: (c - half).max(0.0) / seconds,
        hi: (c + half) / seconds,
    })
}

/// Judge `b` against the reference `a`.
pub fn call(a: Estimate, b: Estimate, higher_is_better: bool, min_change: f64) -> Call {
    let rel = if a.value != 0.0 {
        (b.value - a.value) / a.value.abs()
    } else {
        0.0
    };
    let separated_up = b.lo > a.hi;
    let separated_down = b.hi < a.lo;
    let up = separated_up && rel >= min_change;
    let down = separated_down && -rel >= min_change;
    match (up, down, higher_is_better) {
        (true, _, true) | (_, true, false) => Call::Better,
        (true, _, false) | (_, true, true) => Call::Worse,
        _ => Call::WithinNoise,
    }
}

/// A compared row: name, whether higher is better, and how to get it.
struct Row {
    name: &'static str,
    higher_is_better: bool,
    get: fn(&PhaseSummary, &PhaseData) -> Option<Estimate>,
}

const ROWS: [Row; 9] = [
    Row {
        name: "ttft p50 (ms)",
        higher_is_better: false,
        get: |_, d| quantile(d.acc.total.hist(Metric::Ttft), 0.5),
    },
    Row {
        name: "ttft p90 (ms)",
        higher_is_better: false,
        get: |_, d| quantile(d.acc.total.hist(Metric::Ttft), 0.9),
    },
    Row {
        name: "ttft p99 (ms)",
        higher_is_better: false,
        get: |_, d| quantile(d.acc.total.hist(Metric::Ttft), 0.99),
    },
    Row {
        name: "itl p50 (ms)",
        higher_is_better: false,
        get: |_, d| quantile(d.acc.total.hist(Metric::Itl), 0.5),
    },
    Row {
        name: "itl p99 (ms)",
        higher_is_better: false,
        get: |_, d| quantile(d.acc.total.hist(Metric::Itl), 0.99),
    },
    Row {
        name: "e2e p50 (ms)",
        higher_is_better: false,
        get: |_, d| quantile(d.acc.total.hist(Metric::E2e), 0.5),
    },
    Row {
        name: "e2e p99 (ms)",
        higher_is_better: false,
        get: |_, d| quantile(d.acc.total.hist(Metric::E2e), 0.99),
    },
    Row {
        name: "ok req/s",
        higher_is_better: true,
        get: |s, _| rate(s.requests.ok, s.finished_s),
    },
    Row {
        name: "output tok/s",
        higher_is_better: true,
        // Tokens per request are near constant within a phase: the
        // interval of the request count, scaled.
        get: |s, _| {
            let r = rate(s.requests.ok, s.finished_s)?;
            let scale = if r.value > 0.0 {
                s.output_token_throughput / r.value
            } else {
                0.0
            };
            Some(Estimate {
                value: s.output_token_throughput,
                lo: r.lo * scale,
                hi: r.hi * scale,
            })
        },
    },
];

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// One run's value of a compared metric, judged against the reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Compared {
    /// The value, with its interval.
    pub value: Estimate,
    /// Against the reference's value, when it has one: the change in percent
    /// (`None` when the reference is 0) and the call.
    pub against: Option<(Option<f64>, Call)>,
}

/// One compared metric of one phase.
#[derive(Debug, Clone, PartialEq)]
pub struct RowResult {
    /// Metric, e.g. "ttft p99 (ms)".
    pub name: &'static str,
    /// The reference run's value.
    pub reference: Option<Estimate>,
    /// Each other run's, in order (`None`: no such phase or no data).
    pub others: Vec<Option<Compared>>,
}

/// One phase of the reference run, compared.
#[derive(Debug, Clone)]
pub struct PhaseComparison<'a> {
    /// The reference run's phase.
    pub phase: &'a PhaseSummary,
    /// Its metrics.
    pub rows: Vec<RowResult>,
}

/// Every phase of the first run (the reference) against the same phase
/// (name and repeat) of each other run: what the table and the page show.
pub fn compare(runs: &[RunData], min_change: f64) -> Vec<PhaseComparison<'_>> {
    let Some(reference) = runs.first() else {
        return Vec::new();
    };
    let row = |row: &Row, ia: usize, sa: &PhaseSummary| {
        let a = (row.get)(sa, &reference.phases[ia]);
        let others = runs
            .iter()
            .skip(1)
            .map(|other| {
                let ib = other
                    .summary
                    .phases
                    .iter()
                    .position(|p| p.name == sa.name && p.repeat == sa.repeat)?;
                let b = (row.get)(&other.summary.phases[ib], &other.phases[ib])?;
                Some(Compared {
                    value: b,
                    against: a.map(|a| {
                        let change =
                            (a.value != 0.0).then(|| 100.0 * (b.value - a.value) / a.value.abs());
                        (change, call(a, b, row.higher_is_better, min_change))
                    }),
                })
            })
            .collect();
        RowResult {
            name: row.name,
            reference: a,
            others,
        }
    };
    reference
        .summary
        .phases
        .iter()
        .enumerate()
        .map(|(ia, sa)| PhaseComparison {
            phase: sa,
            rows: ROWS.iter().map(|r| row(r, ia, sa)).collect(),
        })
        .collect()
}

/// A compared value as the table prints it: value, change and call.
pub fn cell_text(c: Option<&Compared>) -> String {
    match c {
        None => "(no such phase or no data)".to_string(),
        Some(Compared {
            value,
            against: Some((change, call)),
        }) => {
            let delta = change.map_or_else(|| "n/a".to_string(), |c| format!("{c:+.1}%"));
            format!("{} {delta} {}", fmt(value.value), call.as_str())
        }
        Some(Compared {
            value,
            against: None,
        }) => fmt(value.value),
    }
}

/// A value as the table prints it.
pub fn value_text(e: Option<Estimate>) -> String {
    e.map_or_else(|| "-".to_string(), |e| fmt(e.value))
}

/// The comparison table of `runs` (labelled by `labels`) against the first.
pub fn table(labels: &[String], runs: &[RunData], min_change: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "reference: {}",
        labels.first().map_or("", String::as_str)
    );
    for (l, r) in labels.iter().zip(runs).skip(1) {
        let _ = writeln!(
            s,
            "compared:  {l} ({} → {})",
            r.summary.target.url, r.summary.target.model
        );
    }
    let _ = writeln!(
        s,
        "calls: better/worse only when the change exceeds {:.0}% and the 95% intervals do not overlap",
        min_change * 100.0
    );
    let Some(reference) = runs.first() else {
        return s;
    };
    for pc in compare(runs, min_change) {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "phase {} ({})",
            pc.phase.label(reference.summary.repeat),
            pc.phase.kind
        );
        let mut header = format!("  {:<16}{:>12}", "metric", "reference");
        for l in labels.iter().skip(1) {
            let short: String = l
                .chars()
                .rev()
                .take(24)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let _ = write!(header, "  {short:>38}");
        }
        let _ = writeln!(s, "{header}");
        for row in &pc.rows {
            let mut line = format!("  {:<16}{:>12}", row.name, value_text(row.reference));
            for other in &row.others {
                let _ = write!(line, "  {:>38}", cell_text(other.as_ref()));
            }
            let _ = writeln!(s, "{line}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use stampede_common::histogram::new_histogram;

    fn hist(values: impl Iterator<Item = u64>) -> Histogram<u64> {
        let mut h = new_histogram();
        for v in values {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn clearly_faster_is_better_and_equal_is_noise() {
        let slow = hist((0..1000).map(|i| 40_000 + i * 10));
        let fast = hist((0..1000).map(|i| 10_000 + i * 10));
        let same = hist((0..1000).map(|i| 40_000 + (999 - i) * 10));
        let (a, b, c) = (
            quantile(&slow, 0.5).unwrap(),
            quantile(&fast, 0.5).unwrap(),
            quantile(&same, 0.5).unwrap(),
        );
        assert_eq!(call(a, b, false, 0.05), Call::Better);
        assert_eq!(call(b, a, false, 0.05), Call::Worse);
        assert_eq!(call(a, c, false, 0.05), Call::WithinNoise);
    }

    #[test]
    fn few_samples_or_small_changes_are_noise() {
        // Three samples each: intervals span everything.
        let a = quantile(&hist([10_000, 20_000, 30_000].into_iter()), 0.99).unwrap();
        let b = quantile(&hist([11_000, 21_000, 31_000].into_iter()), 0.99).unwrap();
        assert_eq!(call(a, b, false, 0.05), Call::WithinNoise);
        // Separated but below the minimum change.
        let a = rate(1_000_000, 100.0).unwrap();
        let b = rate(1_020_000, 100.0).unwrap();
        assert_eq!(call(a, b, true, 0.05), Call::WithinNoise);
        assert_eq!(call(a, b, true, 0.01), Call::Better);
    }
}

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

use crate::analysis::breakdown;
use crate::analysis::merge::Aggregate;
use crate::model::PhaseSummary;
use crate::results::RunData;
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

/// What a compared row measures.
#[derive(Debug, Clone, Copy)]
enum Figure {
    /// A percentile (0-100) of a latency.
    Latency(Metric, f64),
    /// Successful requests per second.
    OkRate,
    /// Output tokens per second.
    TokenRate,
}

/// A compared row: name, whether higher is better, and what it measures.
struct Row {
    name: String,
    higher_is_better: bool,
    figure: Figure,
}

/// Latency percentiles compared unless the reference run's plan chose its own.
const DEFAULT_ROWS: [(Metric, &[f64]); 3] = [
    (Metric::Ttft, &[50.0, 90.0, 99.0]),
    (Metric::Itl, &[50.0, 99.0]),
    (Metric::E2e, &[50.0, 99.0]),
];

/// The rows compared: TTFT, ITL and E2E percentiles (the plan's `chosen`
/// ones for each, else [`DEFAULT_ROWS`]), then the request and token rates.
fn rows(chosen: Option<&[f64]>) -> Vec<Row> {
    let mut out: Vec<Row> = DEFAULT_ROWS
        .iter()
        .flat_map(|(m, default)| {
            chosen.unwrap_or(default).iter().map(move |p| Row {
                name: format!("{} {} (ms)", m.name(), stampede_plan::percentiles::name(*p)),
                higher_is_better: false,
                figure: Figure::Latency(*m, *p),
            })
        })
        .collect();
    out.push(Row {
        name: "ok req/s".into(),
        higher_is_better: true,
        figure: Figure::OkRate,
    });
    out.push(Row {
        name: "output tok/s".into(),
        higher_is_better: true,
        figure: Figure::TokenRate,
    });
    out
}

impl Row {
    fn get(&self, s: &PhaseSummary, d: &Aggregate) -> Option<Estimate> {
        match self.figure {
            Figure::Latency(m, p) => quantile(d.hist(m), p / 100.0),
            Figure::OkRate => rate(s.requests.ok, s.finished_s),
            // Tokens per request are near constant within a phase: the
            // interval of the request count, scaled.
            Figure::TokenRate => {
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
            }
        }
    }
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A phase, or one breakdown of a phase, as compared.
struct View {
    /// (phase name, repeat, breakdown label or ""): what matches across runs.
    key: (String, u32, String),
    /// The heading of its table.
    title: String,
    /// The phase's label, and the breakdown's.
    label: String,
    summary: PhaseSummary,
    agg: Aggregate,
}

/// Every phase of `run`, each followed by its breakdowns.
fn views(run: &RunData) -> Vec<View> {
    let mut out = Vec::new();
    for (s, p) in run.summary.phases.iter().zip(&run.phases) {
        let label = s.label(run.summary.repeat);
        let title = format!("{label} ({})", s.kind);
        let labels = breakdown::EntryLabels::of(&run.plan, &p.phase);
        let groups = breakdown::groups(&labels, &p.acc.total);
        out.push(View {
            key: (s.name.clone(), s.repeat, String::new()),
            title: title.clone(),
            label: label.clone(),
            summary: s.clone(),
            agg: p.acc.total.clone(),
        });
        for (b, (_, _, agg)) in s.breakdowns.iter().zip(groups) {
            out.push(View {
                key: (s.name.clone(), s.repeat, b.label()),
                title: format!("{title} · {}", b.label()),
                label: format!("{label} · {}", b.label()),
                summary: breakdown::as_phase(s, b),
                agg,
            });
        }
    }
    out
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
    pub name: String,
    /// The reference run's value.
    pub reference: Option<Estimate>,
    /// Each other run's, in order (`None`: no such phase or no data).
    pub others: Vec<Option<Compared>>,
}

/// One phase of the reference run, or one breakdown of it, compared.
#[derive(Debug, Clone)]
pub struct PhaseComparison {
    /// Its heading, e.g. "steady (constant)" or "steady (constant) · model=llama".
    pub title: String,
    /// The phase's label (with its repeat), and the breakdown's, if any.
    pub label: String,
    /// The breakdown compared (e.g. "model=llama"); `None` for the whole phase.
    pub breakdown: Option<String>,
    /// Its metrics.
    pub rows: Vec<RowResult>,
}

/// Every phase of the first run (the reference), each followed by its
/// breakdowns, against the same phase (name and repeat) and breakdown of
/// each other run: what the table and the page show.
pub fn compare(runs: &[RunData], min_change: f64) -> Vec<PhaseComparison> {
    let views: Vec<Vec<View>> = runs.iter().map(views).collect();
    let Some((reference, others)) = views.split_first() else {
        return Vec::new();
    };
    let rows = rows(runs[0].plan.percentiles.as_deref());
    let result = |row: &Row, va: &View| {
        let a = row.get(&va.summary, &va.agg);
        let others = others
            .iter()
            .map(|other| {
                let vb = other.iter().find(|vb| vb.key == va.key)?;
                let b = row.get(&vb.summary, &vb.agg)?;
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
            name: row.name.clone(),
            reference: a,
            others,
        }
    };
    reference
        .iter()
        .map(|va| PhaseComparison {
            title: va.title.clone(),
            label: va.label.clone(),
            breakdown: (!va.key.2.is_empty()).then(|| va.key.2.clone()),
            rows: rows.iter().map(|r| result(r, va)).collect(),
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
    for pc in compare(runs, min_change) {
        let _ = writeln!(s);
        let _ = writeln!(s, "phase {}", pc.title);
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

//! The run page's charts across phases: latency percentiles and throughput
//! against load (where does latency bend, does the system keep up?), and the
//! whole latency distributions per phase.

use crate::analysis::breakdown;
use crate::outputs::charts::by_load;
use crate::outputs::html::page::{Chart, Section, Series, XScale};
use crate::results::RunData;
use stampede_common::metric::Metric;
use stampede_common::quantile::quantile;

/// A percentile of a metric summary.
type Percentile = fn(&crate::model::MetricSummary) -> f64;

/// Percentiles drawn against load: label, metric, percentile.
const VS_LOAD: [(&str, &str, Percentile); 6] = [
    ("TTFT p50", "ttft", |m| m.p50),
    ("TTFT p99", "ttft", |m| m.p99),
    ("ITL p50", "itl", |m| m.p50),
    ("ITL p99", "itl", |m| m.p99),
    ("E2E p50", "e2e", |m| m.p50),
    ("E2E p99", "e2e", |m| m.p99),
];

const LOAD_AXIS: &str = "load (req/s: offered; achieved for closed loops)";

/// Latency percentiles and throughput against each phase's load.
pub(super) fn vs_load(data: &RunData) -> Section {
    let phases = by_load(data);
    let s = |i: usize| &data.summary.phases[i];
    let x: Vec<f64> = phases.iter().map(|p| p.0).collect();
    let mut latency = Chart::new(
        "chart-latency-load",
        "Latency percentiles vs load",
        LOAD_AXIS,
        "ms (log)",
        XScale::Linear,
    );
    latency.y_log = true;
    latency.points = true;
    latency.x.clone_from(&x);
    latency.series = VS_LOAD
        .iter()
        .map(|(label, metric, q)| {
            let values = phases
                .iter()
                .map(|(_, i)| s(*i).metrics.get(*metric).filter(|m| m.count > 0).map(q))
                .collect();
            Series::new(*label, values)
        })
        .collect();
    latency
        .series
        .retain(|s| s.values.iter().any(Option::is_some));
    let mut rate = Chart::new(
        "chart-throughput-load",
        "Throughput vs load",
        LOAD_AXIS,
        "requests/s",
        XScale::Linear,
    );
    rate.points = true;
    rate.x.clone_from(&x);
    let mut ideal = Series::new(
        "ideal: sent = offered",
        x.iter().map(|v| Some(*v)).collect(),
    );
    ideal.dash = true;
    rate.series = vec![
        ideal,
        Series::new(
            "sent/s",
            phases
                .iter()
                .map(|(_, i)| Some(s(*i).achieved_rate))
                .collect(),
        ),
        Series::new(
            "ok/s",
            phases
                .iter()
                .map(|(_, i)| Some(s(*i).request_throughput))
                .collect(),
        ),
    ];
    let mut tokens = Chart::new(
        "chart-tokens-load",
        "Output tokens/s vs load",
        LOAD_AXIS,
        "output tokens/s",
        XScale::Linear,
    );
    tokens.points = true;
    tokens.x = x;
    tokens.series = vec![Series::new(
        "output tokens/s",
        phases
            .iter()
            .map(|(_, i)| Some(s(*i).output_token_throughput))
            .collect(),
    )];
    Section {
        id: "load".into(),
        heading: "Against load".into(),
        note: Some("One point per phase with requests, sorted by load.".into()),
        charts: [latency, rate, tokens]
            .into_iter()
            .filter(Chart::has_data)
            .collect(),
        ..Section::default()
    }
}

/// Positions on the "nines" axis: every 0.05 from p0 to p99.99 and a bit.
fn nines() -> Vec<f64> {
    (0..=90).map(|i| f64::from(i) * 0.05).collect()
}

/// Most breakdown series a distribution chart adds to its phases'.
const MAX_BREAKDOWN_SERIES: usize = 8;

/// Per-phase latency distributions (CDFs on a percentile axis), one chart
/// per metric, one series per phase with samples, then one per model (or
/// workload entry) of a phase with breakdowns.
pub(super) fn distributions(data: &RunData) -> Section {
    let x = nines();
    let charts = [
        (Metric::Ttft, "TTFT"),
        (Metric::Itl, "ITL"),
        (Metric::E2e, "E2E"),
    ]
    .into_iter()
    .map(|(metric, name)| {
        let mut c = Chart::new(
            &format!("chart-cdf-{}", metric.name()),
            &format!("{name} distribution by phase"),
            "percentile",
            &format!("{name} (ms, log)"),
            XScale::Nines,
        );
        c.y_log = true;
        c.x.clone_from(&x);
        let cdf = |label: String, h: &hdrhistogram::Histogram<u64>| {
            let values = x
                .iter()
                .map(|v| quantile(h, 1.0 - 10f64.powf(-v)).map(|us| us / 1e3))
                .collect();
            Series::new(label, values)
        };
        let repeat = data.summary.repeat;
        let mut breakdowns = Vec::new();
        for (p, s) in data.phases.iter().zip(&data.summary.phases) {
            if !p.acc.total.hist(metric).is_empty() {
                c.series
                    .push(cdf(s.label(repeat), p.acc.total.hist(metric)));
            }
            let labels = breakdown::EntryLabels::of(&data.plan, &p.phase);
            for (by, name, agg) in breakdown::charted(&labels, &p.acc.total) {
                if !agg.hist(metric).is_empty() {
                    let label = format!("{} {}={name}", s.label(repeat), by.name());
                    breakdowns.push(cdf(label, agg.hist(metric)));
                }
            }
        }
        c.series
            .extend(breakdowns.into_iter().take(MAX_BREAKDOWN_SERIES));
        c
    })
    .filter(Chart::has_data)
    .collect();
    Section {
        id: "distributions".into(),
        heading: "Latency distributions".into(),
        note: Some(
            "Each phase's whole distribution: the percentile axis spreads the tail \
             (p90, p99, p99.9 evenly spaced)."
                .into(),
        ),
        charts,
        ..Section::default()
    }
}

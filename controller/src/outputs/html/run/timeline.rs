//! The run page's time series: per-window rates, latency and errors across
//! the whole run, with each phase shaded and labelled and the fault
//! episodes and actions marked. One x array per chart (seconds since the
//! first phase started, rounded to the millisecond) and one value per window
//! per series: a 1-hour soak at 1 s windows is 3,600 numbers per series.

use crate::analysis::merge::Aggregate;
use crate::outputs::charts::offset_s;
use crate::outputs::html::page::{Band, Chart, Mark, Section, Series, XScale, round_s};
use crate::results::RunData;
use stampede_common::metric::Metric;
use stampede_common::quantile::quantile;
use std::collections::BTreeSet;

/// One point in time: a window of a phase, or a gap between phases.
struct Row<'a> {
    x: f64,
    /// (the window's results, window length in s, offered rate), `None` in a gap.
    at: Option<(&'a Aggregate, f64, Option<f64>)>,
}

/// Every window of the run in time order, with a gap row between phases so
/// lines break there.
fn rows(data: &RunData) -> Vec<Row<'_>> {
    let mut rows: Vec<Row<'_>> = Vec::new();
    let mut order: Vec<usize> = (0..data.phases.len()).collect();
    order.sort_by(|a, b| {
        offset_s(data, &data.phases[*a]).total_cmp(&offset_s(data, &data.phases[*b]))
    });
    for i in order {
        let (p, s) = (&data.phases[i], &data.summary.phases[i]);
        let t0 = offset_s(data, p);
        let secs = p.window.as_secs_f64();
        if let Some(last) = rows.last() {
            rows.push(Row {
                x: round_s(last.x.max(t0 - secs / 2.0)),
                at: None,
            });
        }
        for (w, (agg, _)) in &p.acc.windows {
            let mid = (f64::from(*w) + 0.5) * secs;
            // (An absurd window length has no instant: no offered rate.)
            let offered = s.step.map(|st| st.rate).or_else(|| {
                std::time::Duration::try_from_secs_f64(mid.max(0.0))
                    .ok()
                    .and_then(|t| p.phase.offered_rate_at(t))
            });
            rows.push(Row {
                x: round_s(t0 + mid),
                at: Some((agg, secs, offered)),
            });
        }
    }
    rows.sort_by(|a, b| a.x.total_cmp(&b.x));
    rows
}

/// A series of `f` over the rows.
fn series(rows: &[Row<'_>], label: &str, f: impl Fn(&Aggregate, f64) -> Option<f64>) -> Series {
    Series::new(
        label,
        rows.iter()
            .map(|r| r.at.and_then(|(a, secs, _)| f(a, secs)))
            .collect(),
    )
}

/// Quantile `q` of metric `m` in a window, in ms.
fn ms(a: &Aggregate, m: Metric, q: f64) -> Option<f64> {
    quantile(a.hist(m), q).map(|us| us / 1e3)
}

/// Phases shaded and labelled, fault episodes shaded, fault actions marked.
fn bands_and_marks(data: &RunData) -> (Vec<Band>, Vec<Mark>) {
    let (mut bands, mut marks) = (Vec::new(), Vec::new());
    for (p, s) in data.phases.iter().zip(&data.summary.phases) {
        let t0 = offset_s(data, p);
        let secs = p.window.as_secs_f64();
        let end = p
            .acc
            .windows
            .keys()
            .next_back()
            .map_or(s.finished_s, |w| (f64::from(*w) + 1.0) * secs);
        bands.push(Band {
            from: round_s(t0),
            to: round_s(t0 + end),
            label: s.label(data.summary.repeat),
            kind: "phase",
        });
        let Some(f) = &s.faults else { continue };
        for e in &f.episodes {
            let to = e
                .recovered_at_s
                .unwrap_or((f64::from(e.windows.1) + 1.0) * secs);
            bands.push(Band {
                from: round_s(t0 + e.fault_at_s),
                to: round_s(t0 + to),
                label: "fault episode".into(),
                kind: "fault",
            });
        }
        for a in f.actions.iter().filter(|a| a.error.is_none()) {
            let Some(t) = a.fired_at_s else { continue };
            marks.push(Mark {
                at: round_s(t0 + t),
                label: a.action.clone(),
                kind: if a.restores { "fault_off" } else { "fault_on" },
            });
        }
    }
    (bands, marks)
}

/// The time-series section.
pub(super) fn section(data: &RunData) -> Section {
    let rows = rows(data);
    let (bands, marks) = bands_and_marks(data);
    let x: Vec<f64> = rows.iter().map(|r| r.x).collect();
    let chart = |id: &str, title: &str, y: &str, series: Vec<Series>| {
        let mut c = Chart::new(
            id,
            title,
            "time since the first phase started (s)",
            y,
            XScale::Seconds,
        );
        c.x.clone_from(&x);
        c.series = series;
        c.bands.clone_from(&bands);
        c.marks.clone_from(&marks);
        c
    };
    let mut offered = Series::new(
        "offered/s",
        rows.iter().map(|r| r.at.and_then(|a| a.2)).collect(),
    );
    offered.dash = true;
    let requests = chart(
        "chart-requests-time",
        "Requests over time",
        "requests/s",
        vec![
            offered,
            series(&rows, "sent/s", |a, s| Some(a.counters.sent as f64 / s)),
            series(&rows, "ok/s", |a, s| Some(a.counters.ok as f64 / s)),
            series(&rows, "failed/s", |a, s| Some(a.counters.failed as f64 / s)),
        ],
    );
    let mut latency = chart(
        "chart-latency-time",
        "Latency over time",
        "ms (log)",
        vec![
            series(&rows, "TTFT p50", |a, _| ms(a, Metric::Ttft, 0.5)),
            series(&rows, "TTFT p99", |a, _| ms(a, Metric::Ttft, 0.99)),
            series(&rows, "E2E p99", |a, _| ms(a, Metric::E2e, 0.99)),
        ],
    );
    latency.y_log = true;
    let tokens = chart(
        "chart-tokens-time",
        "Output tokens/s over time",
        "output tokens/s",
        vec![series(&rows, "output tokens/s", |a, s| {
            Some(a.counters.output_tokens as f64 / s)
        })],
    );
    let classes: BTreeSet<&String> = data
        .summary
        .phases
        .iter()
        .flat_map(|p| p.errors.keys())
        .collect();
    let errors = chart(
        "chart-errors-time",
        "Errors over time, by class",
        "failed/s",
        classes
            .iter()
            .map(|c| {
                series(&rows, c, |a, s| {
                    Some(a.errors.get(*c).copied().unwrap_or(0) as f64 / s)
                })
            })
            .collect(),
    );
    Section {
        id: "time".into(),
        heading: "Over time".into(),
        note: Some(
            "Per window; phases shaded and labelled, fault episodes in red, \
             fault actions as dashed lines. Drag to zoom, double-click to reset."
                .into(),
        ),
        charts: [requests, latency, tokens, errors]
            .into_iter()
            .filter(Chart::has_data)
            .collect(),
        ..Section::default()
    }
}

//! `latency_analysis.png`: TTFT/ITL/E2E percentiles against load across
//! phases (where does latency bend?), and per-phase latency CDFs (what does
//! the whole distribution look like, tail included?), with one line per
//! model (or workload entry) of a phase that has several. A run with fault
//! actions shows TTFT over time, around its fault episodes, instead of the
//! ITL CDF.

use super::{FONT, by_load, color, empty_panel, err, grid, log_range, range, title};
use crate::analysis::breakdown;
use crate::results::RunData;
use plotters::prelude::*;
use stampede_common::metric::Metric;
use stampede_common::quantile::{quantile, quantile_or_zero};
use std::path::Path;

/// Percentiles drawn against load, with marker shapes told apart in the legend.
const VS_LOAD: [(Metric, f64, &str); 6] = [
    (Metric::Ttft, 0.5, "TTFT p50"),
    (Metric::Ttft, 0.99, "TTFT p99"),
    (Metric::Itl, 0.5, "ITL p50"),
    (Metric::Itl, 0.99, "ITL p99"),
    (Metric::E2e, 0.5, "E2E p50"),
    (Metric::E2e, 0.99, "E2E p99"),
];

/// Quantiles sampled for a CDF line: fine near the tail.
fn cdf_quantiles() -> Vec<f64> {
    let mut q: Vec<f64> = (0..=98).map(|i| f64::from(i) / 100.0).collect();
    q.extend([0.99, 0.995, 0.999, 0.9999, 1.0]);
    q
}

pub(super) fn draw(path: &Path, data: &RunData) -> Result<(), String> {
    let root = BitMapBackend::new(path, super::SIZE).into_drawing_area();
    let panels = grid(&root, &title(data, "Latency"))?;
    vs_load(&panels[0], data)?;
    cdf(&panels[1], data, Metric::Ttft, "TTFT distribution by phase")?;
    if data.summary.phases.iter().any(|p| p.faults.is_some()) {
        // A recovery run: TTFT over time, around its fault episodes.
        super::throughput::over_time(
            &panels[2],
            data,
            "TTFT over time",
            "TTFT (ms)",
            &[
                ("TTFT p50", |a, _| ttft_at(a, 0.5)),
                ("TTFT p99", |a, _| ttft_at(a, 0.99)),
            ],
            false,
        )?;
    } else {
        cdf(&panels[2], data, Metric::Itl, "ITL distribution by phase")?;
    }
    cdf(
        &panels[3],
        data,
        Metric::E2e,
        "E2E latency distribution by phase",
    )?;
    root.present().map_err(err)
}

/// A window's TTFT quantile `q` in ms (`None`: no successful request).
fn ttft_at(a: &crate::analysis::merge::Aggregate, q: f64) -> Option<f64> {
    let h = a.hist(Metric::Ttft);
    quantile(h, q).map(|v| v / 1e3)
}

fn vs_load(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    data: &RunData,
) -> Result<(), String> {
    let caption = "Latency percentiles vs load";
    let phases = by_load(data);
    let series: Vec<(&str, Vec<(f64, f64)>)> = VS_LOAD
        .iter()
        .map(|(m, q, label)| {
            let points = phases
                .iter()
                .filter_map(|(load, i)| {
                    let h = data.phases[*i].acc.total.hist(*m);
                    quantile(h, *q).map(|v| (*load, v / 1e3))
                })
                .collect();
            (*label, points)
        })
        .filter(|(_, p): &(&str, Vec<(f64, f64)>)| !p.is_empty())
        .collect();
    if series.is_empty() {
        return empty_panel(area, caption);
    }
    let all = || series.iter().flat_map(|(_, p)| p.iter().copied());
    let mut chart = super::panel(area, caption)
        .build_cartesian_2d(
            range(all().map(|p| p.0), true),
            log_range(all().map(|p| p.1)).log_scale(),
        )
        .map_err(err)?;
    super::mesh(
        &mut chart,
        "load (req/s: offered; achieved for closed-loop phases)",
        "latency (ms, log scale)",
    )?;
    for (k, (label, points)) in series.iter().enumerate() {
        super::line_with_markers(&mut chart, points.clone(), color(k), label)?;
    }
    super::legend(&mut chart)
}

/// Most breakdown lines a CDF panel adds to its phases' lines.
const MAX_BREAKDOWN_LINES: usize = 8;

/// The CDF lines of `metric`: one per phase with values, then one per
/// breakdown of a phase (by model, else by workload entry), at most
/// [`MAX_BREAKDOWN_LINES`] of those.
fn cdf_lines(data: &RunData, metric: Metric) -> Vec<(String, Vec<(f64, f64)>)> {
    let qs = cdf_quantiles();
    let points = |h: &hdrhistogram::Histogram<u64>| -> Vec<(f64, f64)> {
        qs.iter()
            .map(|q| ((quantile_or_zero(h, *q) / 1e3).max(1e-3), q * 100.0))
            .collect()
    };
    let repeat = data.summary.repeat;
    let mut lines: Vec<_> = (0..data.phases.len())
        .filter(|i| !data.phases[*i].acc.total.hist(metric).is_empty())
        .map(|i| {
            let label = data.summary.phases[i].label(repeat);
            (label, points(data.phases[i].acc.total.hist(metric)))
        })
        .collect();
    let mut extra = Vec::new();
    for (i, p) in data.phases.iter().enumerate() {
        let labels = breakdown::EntryLabels::of(&data.plan, &p.phase);
        for (by, name, agg) in breakdown::charted(&labels, &p.acc.total) {
            let h = agg.hist(metric);
            if !h.is_empty() {
                let label = format!(
                    "{} {}={name}",
                    data.summary.phases[i].label(repeat),
                    by.name()
                );
                extra.push((label, points(h)));
            }
        }
    }
    lines.extend(extra.into_iter().take(MAX_BREAKDOWN_LINES));
    lines
}

fn cdf(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    data: &RunData,
    metric: Metric,
    caption: &str,
) -> Result<(), String> {
    let lines = cdf_lines(data, metric);
    if lines.is_empty() {
        return empty_panel(area, caption);
    }
    let mut chart = super::panel(area, caption)
        .build_cartesian_2d(
            log_range(lines.iter().flat_map(|(_, p)| p.iter().map(|p| p.0))).log_scale(),
            0.0..100.0,
        )
        .map_err(err)?;
    super::mesh(
        &mut chart,
        format!("{} (ms, log scale)", metric.name().to_uppercase()),
        "percentile (%)",
    )?;
    for (i, (label, points)) in lines.into_iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(2)))
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err)
}

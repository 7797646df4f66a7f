//! The `controller compare --png FILE` chart: the reference run's phases on
//! the x axis, one colour per run, p50 (solid) and p99 (dashed) of TTFT,
//! ITL and E2E, and output tokens/s — the side-by-side table at a glance.

use super::{FONT, color, err, label, legend, log_range, range};
use crate::model::PhaseSummary;
use crate::results::RunData;
use plotters::prelude::*;
use stampede_common::metric::Metric;
use stampede_common::quantile::quantile;
use std::path::Path;

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// One drawn line: run index, quantile, points (phase position, ms).
type Line = (usize, f64, Vec<(f64, f64)>);

/// The position in `run` of the phase matching the reference phase `p`.
fn matching(run: &RunData, p: &PhaseSummary) -> Option<usize> {
    run.summary
        .phases
        .iter()
        .position(|q| q.name == p.name && q.repeat == p.repeat)
}

pub(super) fn draw(path: &Path, labels: &[String], runs: &[RunData]) -> Result<(), String> {
    let Some(reference) = runs.first() else {
        return Err("no runs to compare".into());
    };
    let root = BitMapBackend::new(path, super::SIZE).into_drawing_area();
    let panels = super::grid(&root, "Comparison by phase (reference: first run)")?;
    for (area, metric) in panels.iter().zip([Metric::Ttft, Metric::Itl, Metric::E2e]) {
        latency(area, labels, runs, reference, metric)?;
    }
    tokens(&panels[3], labels, runs, reference)?;
    root.present().map_err(err)
}

fn phase_names(reference: &RunData) -> Vec<String> {
    reference
        .summary
        .phases
        .iter()
        .map(|p| p.label(reference.summary.repeat))
        .collect()
}

fn x_axis(reference: &RunData) -> std::ops::Range<f64> {
    -0.5..(reference.summary.phases.len() as f64 - 0.5)
}

fn latency(
    area: &Area<'_>,
    labels: &[String],
    runs: &[RunData],
    reference: &RunData,
    metric: Metric,
) -> Result<(), String> {
    let names = phase_names(reference);
    let mut lines: Vec<Line> = Vec::new();
    for (r, run) in runs.iter().enumerate() {
        for q in [0.5, 0.99] {
            let pts = reference
                .summary
                .phases
                .iter()
                .enumerate()
                .filter_map(|(x, p)| {
                    let i = matching(run, p)?;
                    let h = run.phases[i].acc.total.hist(metric);
                    quantile(h, q).map(|v| (x as f64, v / 1e3))
                })
                .collect::<Vec<_>>();
            if !pts.is_empty() {
                lines.push((r, q, pts));
            }
        }
    }
    let caption = format!(
        "{} p50 (solid) and p99 (dashed)",
        metric.name().to_uppercase()
    );
    if lines.is_empty() {
        return super::empty_panel(area, &caption);
    }
    let mut chart = super::panel(area, caption)
        .build_cartesian_2d(
            x_axis(reference),
            log_range(lines.iter().flat_map(|l| l.2.iter().map(|p| p.1))).log_scale(),
        )
        .map_err(err)?;
    let fmt_x = |x: &f64| phase_label(&names, *x);
    chart
        .configure_mesh()
        .x_labels(names.len().max(2))
        .x_label_formatter(&fmt_x)
        .y_label_formatter(&label)
        .x_desc("phase")
        .y_desc(format!("{} (ms, log scale)", metric.name().to_uppercase()))
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .draw()
        .map_err(err)?;
    for (r, q, pts) in lines {
        let c = color(r);
        if q < 0.9 {
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                .map_err(err)?
                .label(short(&labels[r]))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3))
                });
        } else {
            chart
                .draw_series(DashedLineSeries::new(pts.clone(), 8, 6, c.stroke_width(2)))
                .map_err(err)?;
        }
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 5, c.filled())))
            .map_err(err)?;
    }
    legend(&mut chart)
}

fn tokens(
    area: &Area<'_>,
    labels: &[String],
    runs: &[RunData],
    reference: &RunData,
) -> Result<(), String> {
    let names = phase_names(reference);
    let lines: Vec<(usize, Vec<(f64, f64)>)> = runs
        .iter()
        .enumerate()
        .map(|(r, run)| {
            let pts = reference
                .summary
                .phases
                .iter()
                .enumerate()
                .filter_map(|(x, p)| {
                    let i = matching(run, p)?;
                    Some((x as f64, run.summary.phases[i].output_token_throughput))
                })
                .collect();
            (r, pts)
        })
        .collect();
    let mut chart = super::panel(area, "Output tokens/s")
        .build_cartesian_2d(
            x_axis(reference),
            range(lines.iter().flat_map(|l| l.1.iter().map(|p| p.1)), true),
        )
        .map_err(err)?;
    let fmt_x = |x: &f64| phase_label(&names, *x);
    chart
        .configure_mesh()
        .x_labels(names.len().max(2))
        .x_label_formatter(&fmt_x)
        .y_label_formatter(&label)
        .x_desc("phase")
        .y_desc("output tokens/s")
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .draw()
        .map_err(err)?;
    for (r, pts) in lines {
        let c = color(r);
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(err)?
            .label(short(&labels[r]))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 5, c.filled())))
            .map_err(err)?;
    }
    legend(&mut chart)
}

/// The phase name at an integer x position, nothing between phases.
fn phase_label(names: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() > 1e-6 || i < 0.0 {
        return String::new();
    }
    names.get(i as usize).cloned().unwrap_or_default()
}

/// The last 40 characters of a run label (directory paths get long).
fn short(label: &str) -> String {
    let chars: Vec<char> = label.chars().collect();
    let start = chars.len().saturating_sub(40);
    chars[start..].iter().collect()
}

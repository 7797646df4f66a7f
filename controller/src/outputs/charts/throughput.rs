//! `throughput_analysis.png`: does the system keep up (achieved vs offered
//! rate, output tokens/s against load) and does it stay steady over time
//! (per-window request and token rates across the run)?

use super::{by_load, color, empty_panel, err, grid, offset_s, range, title};
use crate::results::RunData;
use plotters::prelude::*;
use std::path::Path;

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

pub(super) fn draw(path: &Path, data: &RunData) -> Result<(), String> {
    let root = BitMapBackend::new(path, super::SIZE).into_drawing_area();
    let panels = grid(&root, &title(data, "Throughput"))?;
    rate_vs_load(&panels[0], data)?;
    tokens_vs_load(&panels[1], data)?;
    over_time(
        &panels[2],
        data,
        "Request rate over time",
        "requests/s",
        &[
            ("sent/s", |a, s| Some(a.counters.sent as f64 / s)),
            ("ok/s", |a, s| Some(a.counters.ok as f64 / s)),
        ],
        true,
    )?;
    over_time(
        &panels[3],
        data,
        "Output tokens/s over time",
        "output tokens/s",
        &[("output tokens/s", |a, s| {
            Some(a.counters.output_tokens as f64 / s)
        })],
        false,
    )?;
    root.present().map_err(err)
}

/// A labelled line with markers.
fn rate_vs_load(area: &Area<'_>, data: &RunData) -> Result<(), String> {
    let caption = "Achieved vs offered rate";
    let phases = by_load(data);
    if phases.is_empty() {
        return empty_panel(area, caption);
    }
    let s = |i: usize| &data.summary.phases[i];
    let achieved: Vec<(f64, f64)> = phases
        .iter()
        .map(|(l, i)| (*l, s(*i).achieved_rate))
        .collect();
    let ok: Vec<(f64, f64)> = phases
        .iter()
        .map(|(l, i)| (*l, s(*i).request_throughput))
        .collect();
    let x = range(phases.iter().map(|p| p.0), true);
    let y = range(achieved.iter().chain(&ok).map(|p| p.1).chain([x.end]), true);
    let mut chart = super::panel(area, caption)
        .build_cartesian_2d(x.clone(), y)
        .map_err(err)?;
    super::mesh(
        &mut chart,
        "load (req/s: offered; achieved for closed-loop phases)",
        "requests/s",
    )?;
    let grey = RGBColor(150, 150, 150);
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, 0.0), (x.end, x.end)],
            grey.stroke_width(1),
        ))
        .map_err(err)?
        .label("ideal: achieved = offered")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], grey.stroke_width(2)));
    super::line_with_markers(&mut chart, achieved, color(0), "achieved (sent/s)")?;
    super::line_with_markers(&mut chart, ok, color(1), "completed OK/s")?;
    super::legend(&mut chart)
}

fn tokens_vs_load(area: &Area<'_>, data: &RunData) -> Result<(), String> {
    let caption = "Output token throughput vs load";
    let phases = by_load(data);
    if phases.is_empty() {
        return empty_panel(area, caption);
    }
    let points: Vec<(f64, f64)> = phases
        .iter()
        .map(|(l, i)| (*l, data.summary.phases[*i].output_token_throughput))
        .collect();
    let mut chart = super::panel(area, caption)
        .build_cartesian_2d(
            range(points.iter().map(|p| p.0), true),
            range(points.iter().map(|p| p.1), true),
        )
        .map_err(err)?;
    super::mesh(
        &mut chart,
        "load (req/s: offered; achieved for closed-loop phases)",
        "output tokens/s",
    )?;
    super::line_with_markers(&mut chart, points, color(2), "output tokens/s")?;
    super::legend(&mut chart)
}

/// A per-window value: (window's merged results, window length in s) →
/// value (`None`: nothing to plot in that window).
pub(super) type PerWindow = fn(&crate::analysis::merge::Aggregate, f64) -> Option<f64>;

/// A panel of per-window values over the run's time, with the offered rate
/// when `offered`, and the fault episodes marked.
pub(super) fn over_time(
    area: &Area<'_>,
    data: &RunData,
    caption: &str,
    y_desc: &str,
    values: &[(&str, PerWindow)],
    offered: bool,
) -> Result<(), String> {
    // One segment per phase and value, so gaps between phases stay gaps.
    let mut segments: Vec<(usize, Vec<(f64, f64)>)> = Vec::new();
    let mut offered_lines: Vec<Vec<(f64, f64)>> = Vec::new();
    for p in &data.phases {
        let t0 = offset_s(data, p);
        let secs = p.window.as_secs_f64();
        for (k, (_, f)) in values.iter().enumerate() {
            let pts: Vec<(f64, f64)> = p
                .acc
                .windows
                .iter()
                .filter_map(|(w, (agg, _))| {
                    f(agg, secs).map(|v| (t0 + (f64::from(*w) + 0.5) * secs, v))
                })
                .collect();
            if !pts.is_empty() {
                segments.push((k, pts));
            }
        }
        if let (true, Some(rate)) = (offered, p.phase.offered_rate()) {
            offered_lines.push(vec![
                (t0, rate),
                (t0 + p.phase.duration.as_secs_f64(), rate),
            ]);
        }
    }
    if segments.is_empty() {
        return empty_panel(area, caption);
    }
    let pts = || segments.iter().flat_map(|(_, p)| p.iter().copied());
    let y = range(
        pts()
            .map(|p| p.1)
            .chain(offered_lines.iter().flatten().map(|p| p.1)),
        true,
    );
    let mut chart = super::panel(area, caption)
        .build_cartesian_2d(range(pts().map(|p| p.0), true), y.clone())
        .map_err(err)?;
    super::mesh(&mut chart, "time since the first phase started (s)", y_desc)?;
    fault_marks(&mut chart, data, &y)?;
    let grey = RGBColor(120, 120, 120);
    for (n, line) in offered_lines.into_iter().enumerate() {
        let s = chart
            .draw_series(DashedLineSeries::new(line, 8, 6, grey.stroke_width(2)))
            .map_err(err)?;
        if n == 0 {
            s.label("offered rate").legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], grey.stroke_width(2))
            });
        }
    }
    let mut labelled = vec![false; values.len()];
    for (k, points) in segments {
        let c = color(k);
        let s = chart
            .draw_series(LineSeries::new(points, c.stroke_width(2)))
            .map_err(err)?;
        if !labelled[k] {
            labelled[k] = true;
            s.label(values[k].0).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3))
            });
        }
    }
    super::legend(&mut chart)
}

/// Fault episodes shaded (fault instant to recovery, or to the episode's
/// last window), and every fired action as a vertical line: red when it
/// injects, green when it restores.
fn fault_marks<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    data: &RunData,
    y: &std::ops::Range<f64>,
) -> Result<(), String> {
    let shade = RGBColor(214, 39, 40).mix(0.12);
    let (on, off) = (RGBColor(214, 39, 40), RGBColor(44, 160, 44));
    let mut labelled = [false; 3];
    for (p, s) in data.phases.iter().zip(&data.summary.phases) {
        let Some(f) = &s.faults else { continue };
        let t0 = offset_s(data, p);
        let secs = p.window.as_secs_f64();
        for e in &f.episodes {
            let end = e
                .recovered_at_s
                .unwrap_or((f64::from(e.windows.1) + 1.0) * secs);
            let r = chart
                .draw_series([Rectangle::new(
                    [(t0 + e.fault_at_s, y.start), (t0 + end, y.end)],
                    shade.filled(),
                )])
                .map_err(err)?;
            if !std::mem::replace(&mut labelled[0], true) {
                r.label("fault episode").legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 24, y + 6)], shade.filled())
                });
            }
        }
        for a in &f.actions {
            let Some(t) = a.fired_at_s.filter(|_| a.error.is_none()) else {
                continue;
            };
            let (c, k, text) = if a.restores {
                (off, 2, "fault off")
            } else {
                (on, 1, "fault on")
            };
            let l = chart
                .draw_series(DashedLineSeries::new(
                    [(t0 + t, y.start), (t0 + t, y.end)],
                    6,
                    4,
                    c.stroke_width(2),
                ))
                .map_err(err)?;
            if !std::mem::replace(&mut labelled[k], true) {
                l.label(text).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(2))
                });
            }
        }
    }
    Ok(())
}

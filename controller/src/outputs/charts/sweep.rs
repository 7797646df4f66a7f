//! `sweep.png`: a sweep's cells side by side. x is the load level (or, with
//! no load axis, the last axis's values); one line per combination of the
//! other axes; panels: TTFT p99, E2E p99, output tokens/s and successful
//! requests/s — where each configuration's latency turns up and its
//! throughput flattens.

use super::{FONT, color, err, label, log_range, range};
use crate::model::sweep::{CellMetrics, ChartData};
use plotters::prelude::*;
use std::path::Path;

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// One drawn line: colour index, legend label, points (x, y).
type Line<'a> = (usize, &'a str, Vec<(f64, f64)>);

/// One panel: caption, y description, log scale, the value drawn (also the
/// charts of `sweep.html`).
pub(in crate::outputs) struct Panel {
    pub(in crate::outputs) caption: &'static str,
    pub(in crate::outputs) y_desc: &'static str,
    pub(in crate::outputs) log: bool,
    pub(in crate::outputs) value: fn(&CellMetrics) -> Option<f64>,
}

pub(in crate::outputs) const PANELS: [Panel; 4] = [
    Panel {
        caption: "TTFT p99",
        y_desc: "TTFT p99 (ms, log scale)",
        log: true,
        value: |m| m.ttft_p99_ms,
    },
    Panel {
        caption: "E2E p99",
        y_desc: "E2E p99 (ms, log scale)",
        log: true,
        value: |m| m.e2e_p99_ms,
    },
    Panel {
        caption: "Output tokens/s",
        y_desc: "output tokens/s",
        log: false,
        value: |m| Some(m.output_token_throughput),
    },
    Panel {
        caption: "Successful requests/s",
        y_desc: "requests/s",
        log: false,
        value: |m| Some(m.request_throughput),
    },
];

pub(super) fn draw(path: &Path, title: &str, data: &ChartData) -> Result<(), String> {
    let root = BitMapBackend::new(path, super::SIZE).into_drawing_area();
    let panels = super::grid(&root, title)?;
    for (area, panel) in panels.iter().zip(&PANELS) {
        draw_panel(area, data, panel)?;
    }
    root.present().map_err(err)
}

fn draw_panel(area: &Area<'_>, data: &ChartData, panel: &Panel) -> Result<(), String> {
    let lines: Vec<Line<'_>> = data
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let pts = s
                .points
                .iter()
                .filter_map(|(x, m)| (panel.value)(m).map(|y| (*x, y)))
                .filter(|(_, y)| y.is_finite() && (!panel.log || *y > 0.0))
                .collect::<Vec<_>>();
            (i, s.label.as_str(), pts)
        })
        .filter(|l| !l.2.is_empty())
        .collect();
    if lines.is_empty() {
        return super::empty_panel(area, panel.caption);
    }
    let xs = || lines.iter().flat_map(|l| l.2.iter().map(|p| p.0));
    let x_range = if data.x_load {
        range(xs(), true)
    } else {
        -0.5..(data.x_labels.len().max(1) as f64 - 0.5)
    };
    let ys = || lines.iter().flat_map(|l| l.2.iter().map(|p| p.1));
    let x_desc = x_desc(data);
    let fmt_x = |x: &f64| {
        if data.x_load {
            label(x)
        } else {
            let i = x.round();
            if (x - i).abs() > 1e-6 || i < 0.0 {
                String::new()
            } else {
                data.x_labels.get(i as usize).cloned().unwrap_or_default()
            }
        }
    };
    let x_labels = if data.x_load {
        10
    } else {
        data.x_labels.len().max(2)
    };
    let mesh = Mesh {
        x_labels,
        x_desc,
        y_desc: panel.y_desc,
        fmt_x: &fmt_x,
    };
    let mut builder = super::panel(area, panel.caption);
    if panel.log {
        let chart = builder
            .build_cartesian_2d(x_range, log_range(ys()).log_scale())
            .map_err(err)?;
        finish(chart, &lines, &mesh)
    } else {
        let chart = builder
            .build_cartesian_2d(x_range, range(ys(), true))
            .map_err(err)?;
        finish(chart, &lines, &mesh)
    }
}

/// The x axis's description: a load axis with its unit, or the axis's name.
pub(in crate::outputs) fn x_desc(data: &ChartData) -> String {
    if data.x_load {
        match data.x_name.as_str() {
            "rate" => "offered rate (requests/s)".to_string(),
            "users" => "users".to_string(),
            other => other.to_string(),
        }
    } else {
        data.x_name.clone()
    }
}

/// How the axes of a panel are labelled.
struct Mesh<'a> {
    x_labels: usize,
    x_desc: String,
    y_desc: &'a str,
    fmt_x: &'a dyn Fn(&f64) -> String,
}

/// Draw the mesh, the lines and the legend on a chart with either y scale.
fn finish<'a, Y>(
    mut chart: ChartContext<
        'a,
        BitMapBackend<'a>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, Y>,
    >,
    lines: &[Line<'_>],
    mesh: &Mesh<'_>,
) -> Result<(), String>
where
    Y: plotters::coord::ranged1d::Ranged<ValueType = f64>
        + plotters::coord::ranged1d::ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_labels(mesh.x_labels)
        .x_label_formatter(mesh.fmt_x)
        .y_label_formatter(&label)
        .x_desc(mesh.x_desc.as_str())
        .y_desc(mesh.y_desc)
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .draw()
        .map_err(err)?;
    for (i, name, pts) in lines {
        super::line_with_markers(&mut chart, pts.clone(), color(*i), name)?;
    }
    super::legend(&mut chart)
}

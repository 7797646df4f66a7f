//! `sweep.html`: a sweep's cells side by side, from the same table and
//! chart data as `sweep.csv` and `sweep.png`. Each completed cell links to
//! its own `report.html`.

use super::page::{Cell, Chart, Finding, Page, Section, Series, Table, Tone, XScale, round};
use crate::model::sweep::ChartData;
use crate::outputs::charts::sweep::{PANELS, x_desc};

/// File name of a sweep's page.
pub const FILE: &str = "sweep.html";

/// What the sweep layer hands over: the table of `sweep.csv` (unquoted) and
/// where each cell's page is.
#[derive(Debug, Clone, Default)]
pub struct Input {
    /// Page title, e.g. "Sweep name — 2 cluster × 3 rate".
    pub title: String,
    /// Column headings.
    pub header: Vec<String>,
    /// One row per cell: its fields, its status, whether it missed its
    /// objectives, and its page (relative) when it has one.
    pub cells: Vec<CellRow>,
}

/// One cell of the sweep.
#[derive(Debug, Clone, Default)]
pub struct CellRow {
    /// Fields aligned with the header.
    pub fields: Vec<String>,
    /// Status name ("complete", "failed", ...).
    pub status: String,
    /// The cell missed an objective.
    pub slo_failed: bool,
    /// Its `report.html`, relative to the sweep directory.
    pub page: Option<String>,
}

/// The page of a sweep.
pub fn page(input: &Input, chart: &ChartData) -> String {
    super::render::page(&Page {
        title: input.title.clone(),
        subtitle: format!("{} cells", input.cells.len()),
        findings: findings(input),
        sections: vec![cells(input), charts(chart)],
    })
}

fn findings(input: &Input) -> Vec<Finding> {
    let count = |status: &str| input.cells.iter().filter(|c| c.status == status).count();
    let (complete, failed) = (count("complete"), count("failed"));
    let missed = input.cells.iter().filter(|c| c.slo_failed).count();
    let mut out = vec![Finding {
        tone: Tone::of(complete == input.cells.len()),
        label: "Cells".into(),
        text: format!(
            "{complete} of {} complete, {failed} failed",
            input.cells.len()
        ),
    }];
    if missed > 0 {
        out.push(Finding {
            tone: Tone::Bad,
            label: "Objectives missed".into(),
            text: format!("in {missed} cell(s)"),
        });
    }
    out
}

fn cells(input: &Input) -> Section {
    let rows = input
        .cells
        .iter()
        .map(|c| {
            c.fields
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let mut cell = Cell::text(f);
                    if i == 0 {
                        cell.href.clone_from(&c.page);
                    }
                    match (input.header.get(i).map(String::as_str), f.as_str()) {
                        (Some("status"), "failed") | (Some("slo"), "fail") => cell.tone = Tone::Bad,
                        (Some("slo"), "pass") => cell.tone = Tone::Good,
                        _ => {}
                    }
                    cell
                })
                .collect()
        })
        .collect();
    Section {
        id: "cells".into(),
        heading: "Cells".into(),
        note: Some("Key results of each cell's report phase (latencies in ms); a cell's name opens its page.".into()),
        tables: vec![Table {
            caption: String::new(),
            columns: input.header.clone(),
            rows,
        }],
        ..Section::default()
    }
}

/// The four panels of `sweep.png`: x is the load (or the last axis's
/// values), one line per combination of the other axes.
fn charts(data: &ChartData) -> Section {
    let mut x: Vec<f64> = data
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    x.sort_by(f64::total_cmp);
    x.dedup();
    let charts = PANELS
        .iter()
        .enumerate()
        .map(|(i, panel)| {
            let mut c = Chart::new(
                &format!("chart-sweep-{i}"),
                panel.caption,
                &x_desc(data),
                panel.y_desc,
                if data.x_load {
                    XScale::Linear
                } else {
                    XScale::Category
                },
            );
            c.y_log = panel.log;
            c.points = true;
            c.x_labels.clone_from(&data.x_labels);
            c.x = x.iter().map(|v| round(*v)).collect();
            c.series = data
                .series
                .iter()
                .map(|s| {
                    let values = x
                        .iter()
                        .map(|at| {
                            s.points
                                .iter()
                                .find(|p| p.0 == *at)
                                .and_then(|p| (panel.value)(&p.1))
                        })
                        .collect();
                    let label = if s.label.is_empty() {
                        "cells"
                    } else {
                        &s.label
                    };
                    Series::new(label, values)
                })
                .collect();
            c
        })
        .filter(Chart::has_data)
        .collect();
    Section {
        id: "charts".into(),
        heading: "Across the sweep".into(),
        charts,
        ..Section::default()
    }
}

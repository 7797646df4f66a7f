//! The sweep summary: each cell's key results (taken from its report phase
//! when the cell completes and kept in the state file), `sweep.csv` with one
//! row per cell, the comparison chart `sweep.png` and the page `sweep.html`. The files are made
//! from the state alone, so they cover completed cells of earlier attempts
//! without re-reading their directories.

use super::state::{CellState, CellStatus, SweepState};
use crate::model::RunSummary;
use crate::model::sweep::{CellMetrics, ChartData, Series};
use crate::outputs::html;
use crate::outputs::tables::{field, opt};
use stampede_common::metric::Metric;
use std::path::Path;

/// File name of the per-cell table.
pub const CSV_FILE: &str = "sweep.csv";
/// File name of the comparison chart.
pub const PNG_FILE: &str = "sweep.png";
/// File name of the page.
pub const HTML_FILE: &str = html::sweep::FILE;

impl CellMetrics {
    /// The key results of phase `phase` in `run` (its last occurrence, when
    /// the run repeats), or `None` when the run has no such phase.
    pub fn of(run: &RunSummary, phase: &str) -> Option<CellMetrics> {
        let p = run.phases.iter().rev().find(|p| p.name == phase)?;
        let stat = |m: Metric, f: fn(&crate::model::MetricSummary) -> f64| {
            p.metrics.get(m.name()).filter(|s| s.count > 0).map(f)
        };
        let done = p.requests.ok + p.requests.failed;
        Some(CellMetrics {
            phase: p.name.clone(),
            offered_rate: p.offered_rate,
            users: p.users,
            requests: p.requests.sent,
            achieved_rate: p.achieved_rate,
            request_throughput: p.request_throughput,
            output_token_throughput: p.output_token_throughput,
            ttft_p50_ms: stat(Metric::Ttft, |s| s.p50),
            ttft_p99_ms: stat(Metric::Ttft, |s| s.p99),
            itl_p50_ms: stat(Metric::Itl, |s| s.p50),
            itl_p99_ms: stat(Metric::Itl, |s| s.p99),
            e2e_p99_ms: stat(Metric::E2e, |s| s.p99),
            error_rate: if done > 0 {
                p.requests.failed as f64 / done as f64
            } else {
                0.0
            },
            goodput: p.goodput,
            slo_passed: has_objectives(run).then_some(!run.slo_failed),
        })
    }
}

/// The objectives verdict of a cell: "fail", "pass", or empty without objectives.
fn slo_text(c: &CellState) -> &'static str {
    match (c.slo_failed, c.metrics.as_ref().and_then(|m| m.slo_passed)) {
        (true, _) | (false, Some(false)) => "fail",
        (false, Some(true)) => "pass",
        (false, None) => "",
    }
}

/// Did the run evaluate any objective?
fn has_objectives(run: &RunSummary) -> bool {
    run.slo_failed || !run.stress.is_empty() || run.phases.iter().any(|p| p.slo_passed.is_some())
}

const METRIC_COLUMNS: [&str; 16] = [
    "phase",
    "offered_rate",
    "users",
    "requests",
    "achieved_rate",
    "request_throughput",
    "output_token_throughput",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "itl_p50_ms",
    "itl_p99_ms",
    "e2e_p99_ms",
    "error_rate",
    "goodput",
    "slo",
    "error",
];

/// The per-cell table: a header, then one row per cell in expansion order,
/// each field as text (unquoted); `sweep.csv` and `sweep.html` show it.
pub fn table(state: &SweepState) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header = vec!["cell".to_string()];
    header.extend(state.axes.iter().map(|a| a.name.clone()));
    header.extend(["context", "status", "attempts"].map(String::from));
    header.extend(METRIC_COLUMNS.map(String::from));
    let f3 = |v: f64| format!("{v:.3}");
    let rows = state
        .cells
        .iter()
        .map(|c| {
            let mut row = vec![c.slug.clone()];
            row.extend(c.values.iter().cloned());
            row.extend([
                c.context.clone().unwrap_or_default(),
                c.status.name().to_string(),
                c.attempts.to_string(),
            ]);
            match &c.metrics {
                Some(m) => row.extend([
                    m.phase.clone(),
                    opt(m.offered_rate.map(f3)),
                    opt(m.users),
                    m.requests.to_string(),
                    f3(m.achieved_rate),
                    f3(m.request_throughput),
                    f3(m.output_token_throughput),
                    opt(m.ttft_p50_ms.map(f3)),
                    opt(m.ttft_p99_ms.map(f3)),
                    opt(m.itl_p50_ms.map(f3)),
                    opt(m.itl_p99_ms.map(f3)),
                    opt(m.e2e_p99_ms.map(f3)),
                    format!("{:.6}", m.error_rate),
                    opt(m.goodput.map(f3)),
                ]),
                None => row.extend(METRIC_COLUMNS[..14].iter().map(|_| String::new())),
            }
            row.push(slo_text(c).to_string());
            row.push(c.error.clone().unwrap_or_default());
            row
        })
        .collect();
    (header, rows)
}

/// `sweep.csv`: the table, fields quoted where needed.
pub fn csv(state: &SweepState) -> String {
    let (header, rows) = table(state);
    let mut out = header.join(",") + "\n";
    for row in rows {
        let row: Vec<String> = row.iter().map(|f| field(f)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// What `sweep.html` shows: the table, and each cell's own page.
fn html_input(state: &SweepState, title: &str) -> html::sweep::Input {
    let (header, rows) = table(state);
    let cells = state
        .cells
        .iter()
        .zip(rows)
        .map(|(c, fields)| html::sweep::CellRow {
            fields,
            status: c.status.name().to_string(),
            slo_failed: slo_text(c) == "fail",
            page: (c.status != CellStatus::Pending)
                .then(|| format!("{}/{}", c.slug, html::RUN_FILE)),
        })
        .collect();
    html::sweep::Input {
        title: title.to_string(),
        header,
        cells,
    }
}

/// Group the completed cells into chart lines.
pub fn chart_data(state: &SweepState) -> ChartData {
    let x = state
        .axes
        .iter()
        .position(|a| a.load)
        .unwrap_or(state.axes.len().saturating_sub(1));
    let axis = state.axes.get(x);
    let mut series: Vec<Series> = Vec::new();
    for c in &state.cells {
        let Some(m) = &c.metrics else { continue };
        let label = state
            .axes
            .iter()
            .zip(&c.values)
            .enumerate()
            .filter(|(i, _)| *i != x)
            .map(|(_, (a, v))| format!("{}={v}", a.name))
            .collect::<Vec<_>>()
            .join(",");
        let value = c.values.get(x).map(String::as_str).unwrap_or_default();
        let pos = match axis {
            Some(a) if a.load => value.parse::<f64>().ok(),
            Some(a) => a.values.iter().position(|v| v == value).map(|i| i as f64),
            None => Some(0.0),
        };
        let Some(pos) = pos else { continue };
        match series.iter_mut().find(|s| s.label == label) {
            Some(s) => s.points.push((pos, m.clone())),
            None => series.push(Series {
                label,
                points: vec![(pos, m.clone())],
            }),
        }
    }
    for s in &mut series {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    ChartData {
        x_name: axis.map_or_else(|| "cell".to_string(), |a| a.name.clone()),
        x_load: axis.is_some_and(|a| a.load),
        x_labels: axis.map(|a| a.values.clone()).unwrap_or_default(),
        series,
    }
}

/// Write `sweep.csv`, `sweep.png` and `sweep.html` into the sweep directory `dir`.
pub fn write(
    dir: &Path,
    state: &SweepState,
    title: &str,
) -> Result<(), (std::path::PathBuf, String)> {
    let path = dir.join(CSV_FILE);
    std::fs::write(&path, csv(state)).map_err(|e| (path.clone(), e.to_string()))?;
    let chart = chart_data(state);
    let path = dir.join(PNG_FILE);
    crate::outputs::charts::write_sweep(&path, title, &chart).map_err(|e| (path, e))?;
    let path = dir.join(HTML_FILE);
    let page = html::sweep::page(&html_input(state, title), &chart);
    std::fs::write(&path, page).map_err(|e| (path.clone(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::state::{AxisState, CellStatus};

    fn cell(values: &[&str], status: CellStatus, ttft: Option<f64>) -> CellState {
        CellState {
            slug: values.join(","),
            values: values.iter().map(ToString::to_string).collect(),
            context: None,
            load: None,
            hash: String::new(),
            status,
            attempts: 1,
            started_at: None,
            finished_at: None,
            error: (status == CellStatus::Failed).then(|| "cannot listen, \"port\" taken".into()),
            slo_failed: false,
            metrics: ttft.map(|t| CellMetrics {
                phase: "steady".into(),
                ttft_p99_ms: Some(t),
                requests: 10,
                ..CellMetrics::default()
            }),
        }
    }

    fn state() -> SweepState {
        SweepState {
            format: 1,
            name: "sw".into(),
            plan: "p.toml".into(),
            plan_hash: String::new(),
            axes: vec![
                AxisState {
                    name: "cluster".into(),
                    values: vec!["a".into(), "b".into()],
                    load: false,
                },
                AxisState {
                    name: "rate".into(),
                    values: vec!["10".into(), "2.5".into()],
                    load: true,
                },
            ],
            excluded: 0,
            created_at: String::new(),
            cells: vec![
                cell(&["a", "10"], CellStatus::Complete, Some(30.0)),
                cell(&["a", "2.5"], CellStatus::Complete, Some(20.0)),
                cell(&["b", "10"], CellStatus::Failed, None),
                cell(&["b", "2.5"], CellStatus::Complete, Some(10.0)),
            ],
        }
    }

    #[test]
    fn csv_has_a_row_per_cell_with_its_axes() {
        let text = csv(&state());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[0].starts_with("cell,cluster,rate,context,status,attempts,phase,"));
        let columns = lines[0].split(',').count();
        assert_eq!(columns, 6 + METRIC_COLUMNS.len());
        assert!(
            lines[1].starts_with("\"a,10\",a,10,,complete,1,steady,"),
            "{}",
            lines[1]
        );
        assert!(lines[1].contains(",30.000,"), "{}", lines[1]);
        assert!(lines[3].contains(",failed,1,"), "{}", lines[3]);
        assert!(
            lines[3].ends_with(",\"cannot listen, \"\"port\"\" taken\""),
            "{}",
            lines[3]
        );
    }

    #[test]
    fn chart_lines_group_the_other_axes_and_sort_by_load() {
        let data = chart_data(&state());
        assert_eq!(data.x_name, "rate");
        assert!(data.x_load);
        assert_eq!(data.series.len(), 2);
        assert_eq!(data.series[0].label, "cluster=a");
        let xs: Vec<f64> = data.series[0].points.iter().map(|p| p.0).collect();
        assert_eq!(xs, [2.5, 10.0]);
        // The failed cell has no point.
        assert_eq!(data.series[1].label, "cluster=b");
        assert_eq!(data.series[1].points.len(), 1);
    }
}

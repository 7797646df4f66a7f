//! The two charts a run leaves behind, `latency_analysis.png` and
//! `throughput_analysis.png`, plus the comparison charts of `controller
//! compare --png` and of a sweep (`sweep.png`), drawn with plotters into PNG
//! files.
//!
//! Pure Rust end to end: the DejaVu Sans font is compiled in (the `dejavu`
//! crate) and registered with plotters' `ab_glyph` backend, so no system
//! fonts or libraries are needed. Every panel has a title, axes with units
//! and a legend; a phase without samples is simply left out of a panel.

mod compare;
mod latency;
pub(super) mod sweep;
mod throughput;

use crate::results::{PhaseData, RunData};
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// Size of each chart image (pixels).
pub const SIZE: (u32, u32) = (1600, 1200);

/// File name of the latency chart.
pub const LATENCY_FILE: &str = "latency_analysis.png";
/// File name of the throughput chart.
pub const THROUGHPUT_FILE: &str = "throughput_analysis.png";

/// Font family used everywhere.
const FONT: &str = "sans-serif";

/// Series colours (Tableau 10): distinguishable and print-safe.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Colour of series `i`.
fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// Register the embedded font once per process.
fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TTF shipped by the dejavu crate.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

/// A drawing error, as text.
fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The load a phase is plotted at: its offered rate, or for closed-loop
/// phases the rate it achieved.
fn load_of(data: &RunData, i: usize) -> f64 {
    let s = &data.summary.phases[i];
    s.offered_rate.unwrap_or(s.achieved_rate)
}

/// Phases with samples, sorted by load: (load, index).
pub(super) fn by_load(data: &RunData) -> Vec<(f64, usize)> {
    let mut v: Vec<(f64, usize)> = (0..data.phases.len())
        .filter(|&i| data.summary.phases[i].requests.sent > 0)
        .map(|i| (load_of(data, i), i))
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// Seconds from the first phase's start to the start of `p`.
pub(super) fn offset_s(data: &RunData, p: &PhaseData) -> f64 {
    let base = data
        .phases
        .iter()
        .map(|p| p.start_unix_nanos)
        .min()
        .unwrap_or(0);
    p.start_unix_nanos.saturating_sub(base) as f64 / 1e9
}

/// An axis range covering `values` with some head room (never empty).
fn range(values: impl Iterator<Item = f64>, from_zero: bool) -> std::ops::Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    if from_zero {
        lo = lo.min(0.0);
    }
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.05).max(1e-3);
    (if from_zero { lo } else { lo - pad })..(hi + pad)
}

/// A positive range for a log axis.
fn log_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for v in values.filter(|v| v.is_finite() && *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return 0.1..10.0;
    }
    // Whole decades, so the axis always carries labelled ticks.
    let lo = 10f64.powf(lo.log10().floor());
    let hi = 10f64.powf((hi * 1.0001).log10().ceil());
    lo..hi
}

/// An axis label: at most 4 significant digits, no trailing zeros.
fn label(v: &f64) -> String {
    let a = v.abs();
    let s = if a == 0.0 {
        "0".to_string()
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Title of a chart image: what and which run.
fn title(data: &RunData, what: &str) -> String {
    format!(
        "{what} — run {} ({}, model {})",
        data.summary.run_id, data.summary.target.url, data.summary.target.model
    )
}

/// Draw both charts into `dir`; on failure, the file and why.
pub fn write(dir: &Path, data: &RunData) -> Result<(), (PathBuf, String)> {
    fonts();
    let path = dir.join(LATENCY_FILE);
    latency::draw(&path, data).map_err(|e| (path.clone(), e))?;
    let path = dir.join(THROUGHPUT_FILE);
    throughput::draw(&path, data).map_err(|e| (path.clone(), e))?;
    Ok(())
}

/// Draw the comparison chart of `runs` (labelled by `labels`, the first is
/// the reference) into `path`.
pub fn write_compare(path: &Path, labels: &[String], runs: &[RunData]) -> Result<(), String> {
    fonts();
    compare::draw(path, labels, runs)
}

/// Draw a sweep's comparison chart (`sweep.png`) into `path`.
pub fn write_sweep(
    path: &Path,
    title: &str,
    data: &crate::model::sweep::ChartData,
) -> Result<(), String> {
    fonts();
    sweep::draw(path, title, data)
}

/// Lay out a chart image: white background, a title, and a 2×2 grid.
fn grid<'a>(
    root: &DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>,
    heading: &str,
) -> Result<Vec<DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>>, String> {
    root.fill(&WHITE).map_err(err)?;
    let body = root
        .titled(heading, (FONT, 30).into_font().style(FontStyle::Bold))
        .map_err(err)?;
    Ok(body.split_evenly((2, 2)))
}

/// A panel's chart in the shared style: its title, margin and label areas.
fn panel<'a, 'b, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, plotters::coord::Shift>,
    caption: impl AsRef<str>,
) -> ChartBuilder<'a, 'b, DB> {
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, (FONT, 24))
        .margin(12)
        .x_label_area_size(55)
        .y_label_area_size(80);
    builder
}

/// Axes in the shared style: descriptions, numbers through [`label`], one font.
fn mesh<DB, X, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    x_desc: impl Into<String>,
    y_desc: impl Into<String>,
) -> Result<(), String>
where
    DB: DrawingBackend,
    X: plotters::coord::ranged1d::Ranged<ValueType = f64>
        + plotters::coord::ranged1d::ValueFormatter<f64>,
    Y: plotters::coord::ranged1d::Ranged<ValueType = f64>
        + plotters::coord::ranged1d::ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&label)
        .y_label_formatter(&label)
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .draw()
        .map_err(err)
}

/// A labelled line through `points` with a dot at each point.
fn line_with_markers<DB: DrawingBackend, Y: plotters::coord::ranged1d::Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    points: Vec<(f64, f64)>,
    c: RGBColor,
    label: &str,
) -> Result<(), String> {
    chart
        .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))
        .map_err(err)?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
    chart
        .draw_series(points.into_iter().map(|p| Circle::new(p, 5, c.filled())))
        .map_err(err)?;
    Ok(())
}

/// The series legend, in the upper left.
fn legend<'a, DB: DrawingBackend + 'a, Y: plotters::coord::ranged1d::Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)
}

/// A note in an empty panel.
fn empty_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    caption: &str,
) -> Result<(), String> {
    let (w, h) = area.dim_in_pixel();
    area.draw(&Text::new(
        format!("{caption}: no data"),
        (
            i32::try_from(w / 3).unwrap_or(0),
            i32::try_from(h / 2).unwrap_or(0),
        ),
        (FONT, 24),
    ))
    .map_err(err)
}

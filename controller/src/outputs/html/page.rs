//! What a page holds, independent of HTML: a heading, findings called out on
//! first view, and sections of tables (rendered as static HTML, readable
//! without JavaScript) and charts (embedded as columnar JSON, drawn by uPlot).
//!
//! Every page (run, sweep, comparison) is built into these types, so one
//! renderer serves all three, and a new figure (e.g. breakdowns per model or
//! workload) is one more [`Table`] and one more [`Chart`] in a [`Section`].

use serde::Serialize;

/// A whole page.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// `<title>` and the main heading.
    pub title: String,
    /// One line under the heading (target, model, times).
    pub subtitle: String,
    /// Findings shown first: verdicts, the stress knee, the soak drift.
    pub findings: Vec<Finding>,
    /// The body, in order.
    pub sections: Vec<Section>,
}

/// A finding called out above everything else.
#[derive(Debug, Clone)]
pub struct Finding {
    /// How it reads: good, bad or neutral.
    pub tone: Tone,
    /// Short heading, e.g. "Stress knee".
    pub label: String,
    /// The finding itself.
    pub text: String,
}

/// The tone of a finding or a table cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tone {
    /// Plain.
    #[default]
    Neutral,
    /// An objective met.
    Good,
    /// An objective missed, a failure.
    Bad,
}

impl Tone {
    /// CSS class.
    pub fn class(self) -> &'static str {
        match self {
            Tone::Neutral => "",
            Tone::Good => "good",
            Tone::Bad => "bad",
        }
    }

    /// Good when `passed`, bad otherwise.
    pub fn of(passed: bool) -> Tone {
        if passed { Tone::Good } else { Tone::Bad }
    }
}

/// A titled part of the page.
#[derive(Debug, Clone, Default)]
pub struct Section {
    /// Anchor id (ours, never from the plan).
    pub id: String,
    /// Heading.
    pub heading: String,
    /// A sentence under the heading.
    pub note: Option<String>,
    /// Static tables.
    pub tables: Vec<Table>,
    /// Charts.
    pub charts: Vec<Chart>,
    /// Links (text, relative href).
    pub links: Vec<(String, String)>,
}

/// A static table.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Caption (may be empty).
    pub caption: String,
    /// Column headings.
    pub columns: Vec<String>,
    /// Rows of cells, as many as columns.
    pub rows: Vec<Vec<Cell>>,
}

/// One table cell.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    /// Text.
    pub text: String,
    /// Tone (colour).
    pub tone: Tone,
    /// A relative link, when the cell points to a file.
    pub href: Option<String>,
}

impl Cell {
    /// A plain cell.
    pub fn text(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            ..Cell::default()
        }
    }

    /// A coloured cell.
    pub fn toned(text: impl Into<String>, tone: Tone) -> Cell {
        Cell {
            text: text.into(),
            tone,
            href: None,
        }
    }

    /// A number with at most `decimals` decimals, or "–" when absent.
    pub fn num(v: Option<f64>, decimals: usize) -> Cell {
        Cell::text(v.map_or_else(|| "–".to_string(), |v| format!("{v:.decimals$}")))
    }

    /// A pass/fail verdict, or "–" when there is none.
    pub fn verdict(passed: Option<bool>) -> Cell {
        match passed {
            Some(true) => Cell::toned("met", Tone::Good),
            Some(false) => Cell::toned("missed", Tone::Bad),
            None => Cell::text("–"),
        }
    }
}

/// How a chart's x axis is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum XScale {
    /// Linear numbers.
    Linear,
    /// Seconds since the run's first phase started.
    Seconds,
    /// Percentiles on a "nines" scale: x = −log10(1 − q), so p90, p99,
    /// p99.9 are evenly spaced and the tail is visible.
    Nines,
    /// Categories: x is the index into `Chart::x_labels`.
    Category,
}

/// A chart: shared x values and one value per x for each series (columnar,
/// as uPlot takes them), plus shaded bands and vertical marks.
#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    /// Element id (ours).
    pub id: String,
    /// Title.
    pub title: String,
    /// x axis label.
    pub x_label: String,
    /// y axis label.
    pub y_label: String,
    /// x scale.
    pub x_scale: XScale,
    /// Whether y is on a log scale (values ≤ 0 are left out).
    pub y_log: bool,
    /// Draw each point (sparse data), not only lines.
    pub points: bool,
    /// Labels of category positions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub x_labels: Vec<String>,
    /// x values, ascending.
    pub x: Vec<f64>,
    /// Series.
    pub series: Vec<Series>,
    /// Shaded x ranges (phases, fault episodes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bands: Vec<Band>,
    /// Vertical lines (the knee, fault actions).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<Mark>,
}

impl Chart {
    /// An empty chart of `x_scale` with its titles.
    pub fn new(id: &str, title: &str, x_label: &str, y_label: &str, x_scale: XScale) -> Chart {
        Chart {
            id: id.into(),
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x_scale,
            y_log: false,
            points: false,
            x_labels: Vec::new(),
            x: Vec::new(),
            series: Vec::new(),
            bands: Vec::new(),
            marks: Vec::new(),
        }
    }

    /// Whether any series has a value to draw.
    pub fn has_data(&self) -> bool {
        self.series
            .iter()
            .any(|s| s.values.iter().any(Option::is_some))
    }
}

/// One line of a chart; `values` is aligned with the chart's x.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Values (`null`: no value, a gap).
    pub values: Vec<Option<f64>>,
    /// Dashed (a reference line, e.g. the offered rate).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dash: bool,
}

impl Series {
    /// A solid series, values rounded to 4 significant digits.
    pub fn new(label: impl Into<String>, values: Vec<Option<f64>>) -> Series {
        Series {
            label: label.into(),
            values: values.into_iter().map(|v| v.map(round)).collect(),
            dash: false,
        }
    }
}

/// A shaded x range.
#[derive(Debug, Clone, Serialize)]
pub struct Band {
    /// Start.
    pub from: f64,
    /// End.
    pub to: f64,
    /// Label drawn at its top.
    pub label: String,
    /// `phase` or `fault`.
    pub kind: &'static str,
}

/// A vertical line.
#[derive(Debug, Clone, Serialize)]
pub struct Mark {
    /// Position on x.
    pub at: f64,
    /// Label drawn beside it.
    pub label: String,
    /// `knee`, `fault_on` or `fault_off`.
    pub kind: &'static str,
}

/// `v` with 4 significant digits: plenty for a chart, and a short number
/// in the page (a 1-hour soak at 1 s windows stays small).
pub fn round(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let digits = 3 - v.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits);
    (v * scale).round() / scale
}

/// Time positions rounded to the millisecond.
pub fn round_s(v: f64) -> f64 {
    (v * 1e3).round() / 1e3
}

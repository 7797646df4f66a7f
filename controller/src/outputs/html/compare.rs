//! `controller compare --html FILE`: the comparison table as a page — the
//! same rows, values and better / worse / within-noise calls as the text
//! table ([`crate::outputs::compare::compare`]), one chart per key metric
//! across the reference's phases, and a link to each run's own page.

use super::page::{Cell, Chart, Finding, Page, Section, Series, Table, Tone, XScale};
use crate::outputs::compare::{Call, PhaseComparison, cell_text, compare, value_text};
use crate::results::RunData;

/// One compared run: its label (as given) and its page relative to the
/// comparison's file (`None`: not reachable by a relative path).
#[derive(Debug, Clone)]
pub struct RunLink {
    /// Label, e.g. the run directory as given.
    pub label: String,
    /// Its `report.html`, relative to the comparison page.
    pub page: Option<String>,
}

/// Rows charted across phases, by their name in the table.
const CHARTED: [&str; 4] = [
    "ttft p99 (ms)",
    "itl p99 (ms)",
    "e2e p99 (ms)",
    "output tok/s",
];

/// The page comparing `runs` (the first is the reference).
pub fn page(runs: &[RunLink], data: &[RunData], min_change: f64) -> String {
    let phases = compare(data, min_change);
    let reference = runs.first().map_or("", |r| r.label.as_str());
    super::render::page(&Page {
        title: "stampede comparison".into(),
        subtitle: format!(
            "reference {reference}; better / worse only when the change exceeds {:.0}% \
             and the 95% intervals do not overlap",
            min_change * 100.0
        ),
        findings: findings(runs, &phases),
        sections: vec![
            runs_section(runs, data),
            phases_section(runs, &phases),
            charts(runs, &phases),
        ],
    })
}

fn calls<'a>(phases: &'a [PhaseComparison], run: usize) -> impl Iterator<Item = Call> + 'a {
    phases
        .iter()
        .flat_map(|p| &p.rows)
        .filter_map(move |r| r.others.get(run).copied().flatten())
        .filter_map(|c| c.against.map(|a| a.1))
}

fn findings(runs: &[RunLink], phases: &[PhaseComparison]) -> Vec<Finding> {
    runs.iter()
        .skip(1)
        .enumerate()
        .map(|(k, r)| {
            let count = |call: Call| calls(phases, k).filter(|c| *c == call).count();
            let (worse, better, noise) = (
                count(Call::Worse),
                count(Call::Better),
                count(Call::WithinNoise),
            );
            Finding {
                tone: match (worse, better) {
                    (0, 0) => Tone::Neutral,
                    (0, _) => Tone::Good,
                    _ => Tone::Bad,
                },
                label: r.label.clone(),
                text: format!("{worse} worse, {better} better, {noise} within noise"),
            }
        })
        .collect()
}

fn runs_section(runs: &[RunLink], data: &[RunData]) -> Section {
    let rows = runs
        .iter()
        .zip(data)
        .enumerate()
        .map(|(i, (r, d))| {
            let mut label = Cell::text(&r.label);
            label.href.clone_from(&r.page);
            vec![
                label,
                Cell::text(if i == 0 { "reference" } else { "compared" }),
                Cell::text(&d.summary.run_id),
                Cell::text(&d.summary.target.url),
                Cell::text(&d.summary.target.model),
                Cell::text(&d.summary.stampede_version),
                Cell::text(&d.summary.started_at),
            ]
        })
        .collect();
    Section {
        id: "runs".into(),
        heading: "Runs".into(),
        tables: vec![Table {
            caption: String::new(),
            columns: [
                "run", "role", "run id", "target", "model", "version", "started",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }],
        ..Section::default()
    }
}

fn tone(c: Option<Call>) -> Tone {
    match c {
        Some(Call::Better) => Tone::Good,
        Some(Call::Worse) => Tone::Bad,
        _ => Tone::Neutral,
    }
}

fn phases_section(runs: &[RunLink], phases: &[PhaseComparison]) -> Section {
    let mut columns = vec!["metric".to_string(), "reference".to_string()];
    columns.extend(runs.iter().skip(1).map(|r| r.label.clone()));
    let tables = phases
        .iter()
        .map(|p| Table {
            caption: format!("phase {}", p.title),
            columns: columns.clone(),
            rows: p
                .rows
                .iter()
                .map(|r| {
                    let mut row = vec![
                        Cell::text(r.name.clone()),
                        Cell::text(value_text(r.reference)),
                    ];
                    row.extend(r.others.iter().map(|o| {
                        Cell::toned(
                            cell_text(o.as_ref()),
                            tone(o.and_then(|c| c.against).map(|a| a.1)),
                        )
                    }));
                    row
                })
                .collect(),
        })
        .collect();
    Section {
        id: "phases".into(),
        heading: "Phases".into(),
        note: Some("Value, change against the reference and the call, per metric.".into()),
        tables,
        ..Section::default()
    }
}

fn charts(runs: &[RunLink], phases: &[PhaseComparison]) -> Section {
    // Whole phases only: a breakdown is a table of its own, not a point.
    let phases: Vec<&PhaseComparison> = phases.iter().filter(|p| p.breakdown.is_none()).collect();
    let labels: Vec<String> = phases.iter().map(|p| p.label.clone()).collect();
    let charts = CHARTED
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let mut c = Chart::new(
                &format!("chart-compare-{k}"),
                name,
                "phase of the reference run",
                name,
                XScale::Category,
            );
            c.y_log = name.ends_with("(ms)");
            c.points = true;
            c.x_labels.clone_from(&labels);
            c.x = (0..phases.len()).map(|i| i as f64).collect();
            let row = |p: &&PhaseComparison| p.rows.iter().find(|r| r.name == *name).cloned();
            c.series = runs
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let values = phases
                        .iter()
                        .map(|p| {
                            let row = row(p)?;
                            match i {
                                0 => row.reference.map(|e| e.value),
                                _ => row
                                    .others
                                    .get(i - 1)
                                    .copied()
                                    .flatten()
                                    .map(|c| c.value.value),
                            }
                        })
                        .collect();
                    Series::new(&r.label, values)
                })
                .collect();
            c
        })
        .filter(Chart::has_data)
        .collect();
    Section {
        id: "charts".into(),
        heading: "Across phases".into(),
        charts,
        ..Section::default()
    }
}

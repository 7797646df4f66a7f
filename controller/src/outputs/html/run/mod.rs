//! The page of one run: what matters first (objectives met or missed, the
//! stress knee, the soak drift), the phase table, then the charts and the
//! run's facts. Sections are built by the files beside this one; a new kind
//! of figure is one more [`Section`] here, with a table and chart series of
//! its own.

mod charts;
mod facts;
mod timeline;

use super::page::{Cell, Finding, Page, Section, Table, Tone};
use crate::model::{MetricSummary, PhaseSummary, RunSummary};
use crate::results::RunData;
use std::collections::BTreeMap;

/// The page of `data`; `files` are the run directory's files to link.
pub fn page(data: &RunData, files: &[String]) -> Page {
    let s = &data.summary;
    let mut sections = vec![
        phases_section(s),
        facts::objectives(s),
        facts::breakdowns(s),
    ];
    sections.extend(facts::stress(s));
    sections.push(charts::vs_load(data));
    sections.push(charts::distributions(data));
    sections.push(timeline::section(data));
    sections.push(facts::errors(s));
    sections.extend(facts::faults(s));
    sections.extend(facts::drift(s));
    sections.push(facts::run_facts(s));
    sections.push(facts::files(files));
    sections.retain(|s| !s.tables.is_empty() || !s.charts.is_empty() || !s.links.is_empty());
    Page {
        title: format!("stampede run {}", s.run_id),
        subtitle: format!(
            "{} · model {} · started {}{}",
            s.target.url,
            s.target.model,
            s.started_at,
            s.finished_at.as_deref().map_or_else(
                || " · not finished".to_string(),
                |f| format!(" · finished {f}")
            )
        ),
        findings: findings(s),
        sections,
    }
}

/// Whether `p` is one step of a stress search (judged by its knee, not alone).
fn is_step(p: &PhaseSummary) -> bool {
    p.step.is_some()
}

/// Verdicts, the knee and the drift: the page's first lines.
fn findings(s: &RunSummary) -> Vec<Finding> {
    let mut out = Vec::new();
    if s.interrupted {
        out.push(Finding {
            tone: Tone::Bad,
            label: "Interrupted".into(),
            text: "the run was stopped; the results cover the windows received".into(),
        });
    }
    let judged: Vec<&PhaseSummary> = s
        .phases
        .iter()
        .filter(|p| !is_step(p) && p.slo_passed.is_some())
        .collect();
    if !judged.is_empty() {
        let text = judged
            .iter()
            .map(|p| match p.slo_passed {
                Some(true) => format!("{}: met", p.label(s.repeat)),
                _ => {
                    let failed: Vec<String> = p
                        .slo
                        .iter()
                        .filter(|c| !c.passed)
                        .map(|c| format!("{} ({})", c.objective, observed(c)))
                        .collect();
                    format!("{}: missed {}", p.label(s.repeat), failed.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join(" · ");
        let met = judged.iter().all(|p| p.slo_passed == Some(true));
        out.push(Finding {
            tone: Tone::of(met),
            label: if met {
                "Objectives met".into()
            } else {
                "Objectives missed".into()
            },
            text,
        });
    }
    out.extend(s.stress.iter().map(|r| Finding {
        tone: Tone::of(r.knee_rate.is_some()),
        label: format!("Stress knee — {}", r.phase),
        text: match r.knee_rate {
            Some(k) => format!(
                "{} req/s: the highest offered rate that held every objective ({})",
                super::page::round(k),
                r.reason
            ),
            None => format!("none: {}", r.reason),
        },
    }));
    out.extend(facts::drift_findings(s));
    out
}

/// A check's observed value as text.
fn observed(c: &crate::model::Check) -> String {
    match (c.observed, c.unit) {
        (None, _) => "nothing measured".into(),
        (Some(v), "fraction") => format!("{:.2}%", v * 100.0),
        (Some(v), unit) => format!("{} {unit}", super::page::round(v)),
    }
}

/// The key table: one row per phase, no JavaScript needed.
fn phases_section(s: &RunSummary) -> Section {
    let columns = [
        "phase",
        "kind",
        "load",
        "secs",
        "sent",
        "ok",
        "failed",
        "sent/s",
        "ok/s",
        "out tok/s",
    ];
    let columns = columns
        .into_iter()
        .chain(LATENCY_COLUMNS)
        .chain(["goodput/s", "objectives"])
        .map(String::from)
        .collect();
    let rows = s
        .phases
        .iter()
        .map(|p| {
            let mut row = vec![
                Cell::text(p.label(s.repeat)),
                Cell::text(&p.kind),
                Cell::text(load_text(p)),
                Cell::num(Some(p.arrivals_s), 1),
                Cell::text(p.requests.sent.to_string()),
                Cell::text(p.requests.ok.to_string()),
                failed_cell(p.requests.failed),
                Cell::num(Some(p.achieved_rate), 2),
                Cell::num(Some(p.request_throughput), 2),
                Cell::num(Some(p.output_token_throughput), 1),
            ];
            row.extend(latency_cells(&p.metrics));
            row.extend([Cell::num(p.goodput, 2), Cell::verdict(p.slo_passed)]);
            row
        })
        .collect();
    Section {
        id: "phases".into(),
        heading: "Phases".into(),
        note: Some("Latencies in ms. Load: offered rate (req/s) or users.".into()),
        tables: vec![Table {
            caption: String::new(),
            columns,
            rows,
        }],
        ..Section::default()
    }
}

/// The latency columns of the page's tables (ms).
const LATENCY_COLUMNS: [&str; 6] = [
    "TTFT p50", "TTFT p99", "ITL p50", "ITL p99", "E2E p50", "E2E p99",
];

/// The cells of [`LATENCY_COLUMNS`] for `metrics` (empty where nothing was measured).
fn latency_cells(metrics: &BTreeMap<String, MetricSummary>) -> [Cell; 6] {
    let m = |name: &str, q: fn(&MetricSummary) -> f64| {
        Cell::num(metrics.get(name).filter(|m| m.count > 0).map(q), 1)
    };
    [
        m("ttft", |m| m.p50),
        m("ttft", |m| m.p99),
        m("itl", |m| m.p50),
        m("itl", |m| m.p99),
        m("e2e", |m| m.p50),
        m("e2e", |m| m.p99),
    ]
}

/// A count of failed requests, toned bad when there are any.
fn failed_cell(failed: u64) -> Cell {
    let tone = if failed > 0 { Tone::Bad } else { Tone::Neutral };
    Cell::toned(failed.to_string(), tone)
}

/// A phase's load: its offered rate, step rate or users.
fn load_text(p: &PhaseSummary) -> String {
    let rate = p.step.map(|s| s.rate).or(p.offered_rate);
    match (rate, p.users) {
        (Some(r), _) => format!("{} req/s", crate::model::rate_text(r)),
        (None, Some(1)) => "1 user".into(),
        (None, Some(u)) => format!("{u} users"),
        (None, None) => "–".into(),
    }
}

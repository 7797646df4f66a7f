//! The run page's tables from the summary alone: objectives, stress steps,
//! errors by class, fault episodes, soak drift, the manifest's facts and the
//! raw files.

use super::{LATENCY_COLUMNS, failed_cell, is_step, latency_cells, observed};
use crate::model::{Drift, RunSummary, StressResult};
use crate::outputs::html::page::{
    Cell, Chart, Finding, Mark, Section, Series, Table, Tone, XScale,
};
use crate::outputs::report::{AGENTS_LISTED, FleetClock, fleet_clock};
use std::collections::BTreeSet;

fn table(columns: &[&str], rows: Vec<Vec<Cell>>) -> Table {
    Table {
        caption: String::new(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        rows,
    }
}

fn section(id: &str, heading: &str, tables: Vec<Table>) -> Section {
    Section {
        id: id.into(),
        heading: heading.into(),
        tables,
        ..Section::default()
    }
}

/// Every objective and check of every phase outside stress searches.
pub(super) fn objectives(s: &RunSummary) -> Section {
    let rows: Vec<Vec<Cell>> = s
        .phases
        .iter()
        .filter(|p| !is_step(p))
        .flat_map(|p| {
            p.slo.iter().map(|c| {
                vec![
                    Cell::text(p.label(s.repeat)),
                    Cell::text(&c.objective),
                    Cell::text(observed(c)),
                    Cell::verdict(Some(c.passed)),
                ]
            })
        })
        .collect();
    let mut out = section("objectives", "Objectives", Vec::new());
    if !rows.is_empty() {
        out.tables
            .push(table(&["phase", "objective", "observed", "verdict"], rows));
    }
    out
}

/// One section per stress search: its steps, and a chart of its latency
/// against the offered rate with the knee marked.
pub(super) fn stress(s: &RunSummary) -> Vec<Section> {
    s.stress
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let rows = r
                .steps
                .iter()
                .map(|st| {
                    vec![
                        Cell::num(Some(st.rate), 2),
                        Cell::num(Some(st.achieved_rate), 2),
                        Cell::num(st.ttft_p99_ms, 1),
                        Cell::num(st.e2e_p99_ms, 1),
                        Cell::text(format!("{:.2}%", st.error_rate * 100.0)),
                        Cell::num(st.goodput, 2),
                        Cell::verdict(Some(st.passed)),
                        Cell::text(st.failed.join(", ")),
                    ]
                })
                .collect();
            let mut t = table(
                &[
                    "offered/s",
                    "sent/s",
                    "TTFT p99",
                    "E2E p99",
                    "errors",
                    "goodput/s",
                    "objectives",
                    "failed",
                ],
                rows,
            );
            t.caption = format!("Steps in the order run; {}", r.reason);
            let repeat = if s.repeat > 1 {
                format!(" #{}", r.repeat + 1)
            } else {
                String::new()
            };
            Section {
                id: format!("stress-{i}"),
                heading: format!("Stress search: {}{repeat}", r.phase),
                note: Some(match r.knee_rate {
                    Some(k) => format!("Knee: {} req/s.", crate::model::rate_text(k)),
                    None => "No step held the objectives: no knee.".into(),
                }),
                tables: vec![t],
                charts: vec![knee_chart(i, r)],
                links: Vec::new(),
            }
        })
        .collect()
}

fn knee_chart(i: usize, r: &StressResult) -> Chart {
    let mut steps: Vec<_> = r.steps.iter().collect();
    steps.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    let mut c = Chart::new(
        &format!("chart-stress-{i}"),
        &format!("{}: p99 latency by step", r.phase),
        "offered rate (req/s)",
        "ms (log)",
        XScale::Linear,
    );
    c.y_log = true;
    c.points = true;
    c.x = steps.iter().map(|s| s.rate).collect();
    c.series = vec![
        Series::new("TTFT p99", steps.iter().map(|s| s.ttft_p99_ms).collect()),
        Series::new("E2E p99", steps.iter().map(|s| s.e2e_p99_ms).collect()),
    ];
    c.marks = r
        .knee_rate
        .map(|k| Mark {
            at: k,
            label: format!("knee {} req/s", crate::model::rate_text(k)),
            kind: "knee",
        })
        .into_iter()
        .collect();
    c
}

/// Failures by class, per phase.
pub(super) fn errors(s: &RunSummary) -> Section {
    let classes: BTreeSet<&String> = s.phases.iter().flat_map(|p| p.errors.keys()).collect();
    let mut columns = vec!["phase", "failed"];
    columns.extend(classes.iter().map(|c| c.as_str()));
    let rows: Vec<Vec<Cell>> = s
        .phases
        .iter()
        .filter(|p| p.requests.failed > 0)
        .map(|p| {
            let mut row = vec![
                Cell::text(p.label(s.repeat)),
                Cell::toned(p.requests.failed.to_string(), Tone::Bad),
            ];
            row.extend(
                classes
                    .iter()
                    .map(|c| Cell::text(p.errors.get(*c).copied().unwrap_or(0).to_string())),
            );
            row
        })
        .collect();
    let mut out = section("errors", "Errors by class", Vec::new());
    if !rows.is_empty() {
        out.tables.push(table(&columns, rows));
    }
    out
}

/// Each phase's results by workload entry and by model, one table per
/// phase that has breakdowns.
pub(super) fn breakdowns(s: &RunSummary) -> Section {
    let columns: Vec<&str> = ["breakdown", "sent", "ok", "failed", "ok/s", "out tok/s"]
        .into_iter()
        .chain(LATENCY_COLUMNS)
        .collect();
    let tables = s
        .phases
        .iter()
        .filter(|p| !p.breakdowns.is_empty())
        .map(|p| Table {
            caption: format!("phase {}", p.label(s.repeat)),
            ..table(&columns, p.breakdowns.iter().map(breakdown_row).collect())
        })
        .collect();
    Section {
        note: Some(
            "Latencies in ms, merged exactly from each workload entry's own histograms.".into(),
        ),
        ..section("breakdowns", "By model and workload entry", tables)
    }
}

fn breakdown_row(b: &crate::model::Breakdown) -> Vec<Cell> {
    let mut row = vec![
        Cell::text(b.label()),
        Cell::text(b.requests.sent.to_string()),
        Cell::text(b.requests.ok.to_string()),
        failed_cell(b.requests.failed),
        Cell::num(Some(b.request_throughput), 2),
        Cell::num(Some(b.output_token_throughput), 1),
    ];
    row.extend(latency_cells(&b.metrics));
    row
}

/// The fault episodes and how the target recovered.
pub(super) fn faults(s: &RunSummary) -> Option<Section> {
    let rows: Vec<Vec<Cell>> = s
        .phases
        .iter()
        .filter_map(|p| p.faults.as_ref().map(|f| (p, f)))
        .flat_map(|(p, f)| {
            f.episodes.iter().map(|e| {
                let action = f
                    .actions
                    .iter()
                    .find(|a| a.index == e.fault)
                    .map_or_else(String::new, |a| a.action.clone());
                vec![
                    Cell::text(p.label(s.repeat)),
                    Cell::text(action),
                    Cell::num(Some(e.fault_at_s), 1),
                    Cell::num(e.restore_at_s, 1),
                    Cell::num(e.time_to_impact_s, 1),
                    Cell::num(e.time_to_recovery_s, 1),
                    Cell::verdict(Some(e.recovered)),
                    Cell::text(e.requests.to_string()),
                    Cell::text(e.failed.to_string()),
                    Cell::text(e.delayed.to_string()),
                ]
            })
        })
        .collect();
    (!rows.is_empty()).then(|| {
        let mut out = section(
            "faults",
            "Fault episodes",
            vec![table(
                &[
                    "phase",
                    "fault",
                    "at (s)",
                    "restored (s)",
                    "to impact (s)",
                    "to recovery (s)",
                    "recovered",
                    "requests",
                    "failed",
                    "delayed",
                ],
                rows,
            )],
        );
        out.note = Some("Times on the phase clock; episodes are shaded on the time series.".into());
        out
    })
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{:+.1}%", v * 100.0))
}

fn drifts(s: &RunSummary) -> impl Iterator<Item = (String, &Drift, Option<bool>)> {
    s.phases.iter().filter_map(|p| {
        let d = p.drift.as_ref()?;
        let checks: Vec<bool> = p
            .slo
            .iter()
            .filter(|c| c.objective.contains(" drift"))
            .map(|c| c.passed)
            .collect();
        let held = (!checks.is_empty()).then(|| checks.iter().all(|&b| b));
        Some((p.label(s.repeat), d, held))
    })
}

/// A soak's drift, called out on first view.
pub(super) fn drift_findings(s: &RunSummary) -> Vec<Finding> {
    drifts(s)
        .map(|(label, d, held)| Finding {
            tone: held.map_or(Tone::Neutral, Tone::of),
            label: format!("Soak drift — {label}"),
            text: format!(
                "last vs first windows: TTFT p99 {}, E2E p99 {}, throughput {}, \
                 error rate {:+.3} pp/min{}",
                pct(d.ttft_p99_change),
                pct(d.e2e_p99_change),
                pct(d.throughput_change),
                d.error_rate_slope_per_min * 100.0,
                match held {
                    Some(true) => " — within its bound",
                    Some(false) => " — beyond its bound",
                    None => "",
                }
            ),
        })
        .collect()
}

/// The soaks' first and last windows side by side.
pub(super) fn drift(s: &RunSummary) -> Option<Section> {
    let rows: Vec<Vec<Cell>> = drifts(s)
        .flat_map(|(label, d, _)| {
            [("first", &d.first), ("last", &d.last)].map(|(end, e)| {
                vec![
                    Cell::text(label.clone()),
                    Cell::text(format!("{end} {} windows", d.windows)),
                    Cell::num(e.ttft_p99_ms, 1),
                    Cell::num(e.e2e_p99_ms, 1),
                    Cell::num(Some(e.throughput), 2),
                    Cell::text(format!("{:.2}%", e.error_rate * 100.0)),
                ]
            })
        })
        .collect();
    (!rows.is_empty()).then(|| {
        section(
            "drift",
            "Soak drift",
            vec![table(
                &["phase", "windows", "TTFT p99", "E2E p99", "ok/s", "errors"],
                rows,
            )],
        )
    })
}

/// Target, versions, agents and cluster, as the manifest recorded them.
pub(super) fn run_facts(s: &RunSummary) -> Section {
    let mut facts = vec![
        ("run", s.run_id.clone()),
        ("stampede version", s.stampede_version.clone()),
        ("started", s.started_at.clone()),
        (
            "finished",
            s.finished_at.clone().unwrap_or_else(|| "–".into()),
        ),
        ("target", s.target.url.clone()),
        ("model", s.target.model.clone()),
        ("API", format!("{:?}", s.target.api).to_lowercase()),
        ("simulator", s.target.simulator.to_string()),
        ("repeats", s.repeat.to_string()),
    ];
    if let Some(k) = &s.kubernetes {
        facts.push(("Kubernetes context", k.context.clone().unwrap_or_default()));
        facts.push(("namespace", k.namespace.clone()));
        if let Some(g) = &k.gateway {
            let addr = g.address.clone().unwrap_or_default();
            facts.push(("gateway", format!("{}/{} {addr}", g.namespace, g.name)));
        }
    }
    let kv = facts
        .into_iter()
        .map(|(k, v)| vec![Cell::text(k), Cell::text(v)])
        .collect();
    let mut agents: Vec<Vec<Cell>> = s
        .agents
        .iter()
        .take(AGENTS_LISTED)
        .map(|a| {
            vec![
                Cell::text(&a.id),
                Cell::text(&a.node),
                Cell::text(a.cores.to_string()),
                Cell::text(&a.version),
                Cell::num(Some(a.clock_offset_ms), 3),
                Cell::num(Some(a.clock_rtt_ms), 3),
            ]
        })
        .collect();
    if s.agents.len() > AGENTS_LISTED {
        let FleetClock {
            offset_ms: (low, high),
            rtt_ms,
        } = fleet_clock(&s.agents);
        agents.push(vec![
            Cell::text(format!(
                "… and {} more (all in summary.json)",
                s.agents.len() - AGENTS_LISTED
            )),
            Cell::text(""),
            Cell::text(""),
            Cell::text(""),
            Cell::text(format!("{low:+.3} to {high:+.3}")),
            Cell::text(format!("up to {rtt_ms:.3}")),
        ]);
    }
    let mut tables = vec![
        table(&["fact", "value"], kv),
        table(
            &[
                "agent",
                "node",
                "cores",
                "version",
                "clock offset (ms)",
                "probe RTT (ms)",
            ],
            agents,
        ),
    ];
    if let Some(k) = s.kubernetes.as_ref().filter(|k| !k.nodes.is_empty()) {
        let nodes = k
            .nodes
            .iter()
            .map(|n| {
                let o = |v: &Option<String>| Cell::text(v.clone().unwrap_or_default());
                vec![
                    Cell::text(&n.name),
                    o(&n.gpu_product),
                    o(&n.zone),
                    o(&n.instance_type),
                    Cell::text(n.agents.join(" ")),
                ]
            })
            .collect();
        tables.push(table(
            &["node", "GPU", "zone", "instance type", "agents"],
            nodes,
        ));
    }
    section("run", "Run", tables)
}

/// Links to the run directory's raw files and other outputs.
pub(super) fn files(files: &[String]) -> Section {
    Section {
        id: "files".into(),
        heading: "Files".into(),
        note: Some("Relative to this page: the raw record and every other output.".into()),
        links: files.iter().map(|f| (f.clone(), f.clone())).collect(),
        ..Section::default()
    }
}

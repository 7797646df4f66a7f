//! CSV outputs for spreadsheets and notebooks: `windows.csv` (one row per
//! window and phase — the time series) and `phases.csv` (one row per phase,
//! every count, rate and percentile). Columns carry their unit in the name
//! (`_ms`, `_per_s`, `_tokens`); an empty cell means "no samples".

use crate::analysis::breakdown;
use crate::model::PhaseSummary;
use crate::model::{DEFAULT_PERCENTILES, MetricSummary};
use crate::results::{PhaseData, RunData};
use stampede_common::metric::{Metric, Unit};
use stampede_common::quantile::quantile;
use stampede_plan::percentiles;
use std::fmt::Write as _;
use std::path::Path;

/// Latency metrics given per window in `windows.csv`.
const WINDOW_METRICS: [Metric; 4] = [Metric::Ttft, Metric::Itl, Metric::E2e, Metric::Tpot];
/// Percentiles given per window unless the plan chose its own.
const WINDOW_PERCENTILES: [f64; 3] = [50.0, 90.0, 99.0];

/// The percentiles an output shows: the plan's `chosen` ones, else `default`.
fn shown<'a>(chosen: Option<&'a [f64]>, default: &'a [f64]) -> &'a [f64] {
    chosen.unwrap_or(default)
}

/// Quote a CSV field when it needs it (RFC 4180).
pub(crate) fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub(crate) fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn unit_suffix(m: Metric) -> &'static str {
    match m.unit() {
        Unit::Micros => "ms",
        Unit::Tokens => "tokens",
    }
}

/// Header of `windows.csv` (`chosen`: the plan's percentiles, if any).
pub fn windows_header(chosen: Option<&[f64]>) -> String {
    let mut cols: Vec<String> = [
        "phase",
        "phase_index",
        "repeat",
        "window",
        "start_s",
        "start_unix_s",
        "window_s",
        "agents_reporting",
        "offered_rate_per_s",
        "sent",
        "ok",
        "failed",
        "skipped",
        "expired",
        "sent_per_s",
        "ok_per_s",
        "output_tokens",
        "output_tokens_per_s",
        "input_tokens",
    ]
    .map(String::from)
    .to_vec();
    for m in WINDOW_METRICS {
        for p in shown(chosen, &WINDOW_PERCENTILES) {
            cols.push(format!("{}_{}_ms", m.name(), percentiles::name(*p)));
        }
    }
    cols.join(",")
}

/// Rows of `windows.csv` for one phase (`chosen`: the plan's percentiles).
fn window_rows(
    out: &mut String,
    (index, repeat): (usize, u32),
    p: &PhaseData,
    chosen: Option<&[f64]>,
) {
    let secs = p.window.as_secs_f64();
    for (w, (agg, reports)) in &p.acc.windows {
        let c = &agg.counters;
        let start = f64::from(*w) * secs;
        let start_unix = p.start_unix_nanos as f64 / 1e9 + start;
        let mut row = vec![
            field(&p.phase.name),
            index.to_string(),
            (repeat + 1).to_string(),
            w.to_string(),
            format!("{start:.3}"),
            format!("{start_unix:.3}"),
            format!("{secs:.3}"),
            reports.to_string(),
            opt(p.phase.offered_rate()),
            c.sent.to_string(),
            c.ok.to_string(),
            c.failed.to_string(),
            c.skipped.to_string(),
            c.expired.to_string(),
            format!("{:.3}", c.sent as f64 / secs),
            format!("{:.3}", c.ok as f64 / secs),
            c.output_tokens.to_string(),
            format!("{:.3}", c.output_tokens as f64 / secs),
            c.input_tokens.to_string(),
        ];
        for m in WINDOW_METRICS {
            let h = agg.hist(m);
            for q in shown(chosen, &WINDOW_PERCENTILES) {
                let v = quantile(h, q / 100.0);
                row.push(v.map_or_else(String::new, |v| format!("{:.3}", v / 1e3)));
            }
        }
        let _ = writeln!(out, "{}", row.join(","));
    }
}

/// Statistic columns of one metric in `phases.csv`: these, then its
/// percentiles, then `max`.
const STATS: [&str; 4] = ["count", "mean", "stddev", "min"];

/// Cost columns of `phases.csv` (empty without a plan `[cost]`).
const COST_COLUMNS: [&str; 4] = [
    "currency",
    "cost",
    "cost_per_million_output_tokens",
    "output_tokens_per_currency_unit",
];

/// Header of `phases.csv` (`chosen`: the plan's percentiles, if any).
pub fn phases_header(chosen: Option<&[f64]>) -> String {
    let mut cols: Vec<String> = [
        "phase",
        "kind",
        "repeat",
        "offered_rate_per_s",
        "users",
        "planned_duration_s",
        "arrivals_s",
        "finished_s",
        "agents",
        "lost_agents",
        "sent",
        "ok",
        "failed",
        "skipped",
        "expired",
        "lost",
        "scheduled",
        "achieved_rate_per_s",
        "request_throughput_per_s",
        "output_tokens",
        "input_tokens",
        "output_token_throughput_per_s",
        "usage_reported",
        "errors",
        "agent_cpu_s",
        "rejected_reports",
        "duplicate_reports",
        "stopped_early",
        "complete",
    ]
    .map(String::from)
    .to_vec();
    for m in Metric::ALL {
        let unit = unit_suffix(m);
        cols.push(format!("{}_count", m.name()));
        for s in &STATS[1..] {
            cols.push(format!("{}_{s}_{unit}", m.name()));
        }
        for p in shown(chosen, &DEFAULT_PERCENTILES) {
            cols.push(format!("{}_{}_{unit}", m.name(), percentiles::name(*p)));
        }
        cols.push(format!("{}_max_{unit}", m.name()));
    }
    cols.extend(COST_COLUMNS.map(String::from));
    cols.extend(VERDICT_COLUMNS.map(String::from));
    cols.push("breakdown".into());
    cols.join(",")
}

/// Objective columns of `phases.csv` (empty when the phase has no objectives).
const VERDICT_COLUMNS: [&str; 4] = ["slo_passed", "slo_failed", "good_requests", "goodput_per_s"];

/// One metric's cells of a `phases.csv` row; `width` cells when it was
/// not measured.
fn stat_cells(x: Option<&MetricSummary>, width: usize) -> Vec<String> {
    match x {
        None => vec![String::new(); width],
        Some(x) => {
            let pcts = x.percentiles(&DEFAULT_PERCENTILES);
            std::iter::once(x.count.to_string())
                .chain(
                    [x.mean, x.stddev, x.min]
                        .into_iter()
                        .chain(pcts.iter().map(|(_, v)| *v))
                        .chain([x.max])
                        .map(|v| format!("{v:.3}")),
                )
                .collect()
        }
    }
}

/// The rows of `phases.csv` for phase `p`: its own (breakdown empty), then
/// one per breakdown (e.g. `model=llama`) with that subset's figures
/// (`chosen`: the plan's percentiles, if any).
pub fn phase_rows(p: &PhaseSummary, chosen: Option<&[f64]>) -> String {
    let mut out = phase_row(p, chosen) + ",\n";
    for b in &p.breakdowns {
        out.push_str(&phase_row(&breakdown::as_phase(p, b), chosen));
        out.push(',');
        out.push_str(&field(&b.label()));
        out.push('\n');
    }
    out
}

/// One row of `phases.csv` without its breakdown cell.
fn phase_row(p: &PhaseSummary, chosen: Option<&[f64]>) -> String {
    let errors: Vec<String> = p.errors.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut row = vec![
        field(&p.name),
        p.kind.clone(),
        (p.repeat + 1).to_string(),
        opt(p.offered_rate),
        opt(p.users),
        format!("{:.3}", p.planned_duration_s),
        format!("{:.3}", p.arrivals_s),
        format!("{:.3}", p.finished_s),
        field(&p.agents.join(" ")),
        field(&p.lost_agents.join(" ")),
        p.requests.sent.to_string(),
        p.requests.ok.to_string(),
        p.requests.failed.to_string(),
        p.requests.skipped.to_string(),
        p.requests.expired.to_string(),
        p.requests.lost.to_string(),
        p.scheduled.map(|n| n.to_string()).unwrap_or_default(),
        format!("{:.3}", p.achieved_rate),
        format!("{:.3}", p.request_throughput),
        p.output_tokens.to_string(),
        p.input_tokens.to_string(),
        format!("{:.3}", p.output_token_throughput),
        p.usage_reported.to_string(),
        field(&errors.join(";")),
        format!("{:.3}", p.agent_cpu_s),
        p.rejected_reports.to_string(),
        p.duplicate_reports.to_string(),
        p.stopped_early.to_string(),
        p.complete.to_string(),
    ];
    let width = STATS.len() + shown(chosen, &DEFAULT_PERCENTILES).len() + 1;
    for m in Metric::ALL {
        row.extend(stat_cells(p.metrics.get(m.name()), width));
    }
    match &p.cost {
        Some(c) => row.extend([
            field(&c.currency),
            format!("{:.6}", c.cost),
            c.per_million_output_tokens
                .map(|v| format!("{v:.6}"))
                .unwrap_or_default(),
            format!("{:.3}", c.output_tokens_per_unit),
        ]),
        None => row.extend(COST_COLUMNS.map(|_| String::new())),
    }
    let failed: Vec<&str> = p
        .slo
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.objective.as_str())
        .collect();
    row.extend([
        opt(p.slo_passed),
        field(&failed.join(";")),
        opt(p.good_requests),
        p.goodput.map(|g| format!("{g:.3}")).unwrap_or_default(),
    ]);
    row.join(",")
}

/// Write `windows.csv` and `phases.csv` into `dir`.
pub fn write(dir: &Path, data: &RunData) -> std::io::Result<()> {
    let chosen = data.plan.percentiles.as_deref();
    let mut w = windows_header(chosen) + "\n";
    for (i, p) in data.phases.iter().enumerate() {
        let repeat = data.summary.phases.get(i).map_or(0, |s| s.repeat);
        window_rows(&mut w, (i, repeat), p, chosen);
    }
    std::fs::write(dir.join("windows.csv"), w)?;
    let mut p = phases_header(chosen) + "\n";
    for s in &data.summary.phases {
        p.push_str(&phase_rows(s, chosen));
    }
    std::fs::write(dir.join("phases.csv"), p)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Snapshots: a changed column is a change for every reader of these files.
    #[test]
    fn windows_header_snapshot() {
        assert_eq!(
            windows_header(None),
            "phase,phase_index,repeat,window,start_s,start_unix_s,window_s,agents_reporting,\
             offered_rate_per_s,sent,ok,failed,skipped,expired,sent_per_s,ok_per_s,output_tokens,\
             output_tokens_per_s,input_tokens,ttft_p50_ms,ttft_p90_ms,ttft_p99_ms,itl_p50_ms,\
             itl_p90_ms,itl_p99_ms,e2e_p50_ms,e2e_p90_ms,e2e_p99_ms,tpot_p50_ms,tpot_p90_ms,\
             tpot_p99_ms"
        );
    }

    #[test]
    fn phases_header_snapshot() {
        let expected_start = "phase,kind,repeat,offered_rate_per_s,users,planned_duration_s,arrivals_s,\
             finished_s,agents,lost_agents,sent,ok,failed,skipped,expired,lost,scheduled,achieved_rate_per_s,\
             request_throughput_per_s,output_tokens,input_tokens,output_token_throughput_per_s,\
             usage_reported,errors,agent_cpu_s,rejected_reports,duplicate_reports,stopped_early,\
             complete,ttft_count,ttft_mean_ms,ttft_stddev_ms,ttft_min_ms,ttft_p50_ms,ttft_p90_ms,\
             ttft_p95_ms,ttft_p99_ms,ttft_p999_ms,ttft_max_ms,itl_count,";
        let h = phases_header(None);
        assert!(h.starts_with(expected_start), "{h}");
        assert!(
            h.ends_with(
                "ntpot_count,ntpot_mean_ms,ntpot_stddev_ms,ntpot_min_ms,ntpot_p50_ms,ntpot_p90_ms,\
                 ntpot_p95_ms,ntpot_p99_ms,ntpot_p999_ms,ntpot_max_ms,currency,cost,cost_per_million_output_tokens,\
                 output_tokens_per_currency_unit,slo_passed,slo_failed,good_requests,goodput_per_s,\
                 breakdown"
            ),
            "{h}"
        );
        assert_eq!(
            h.split(',').count(),
            29 + 10 * Metric::ALL.len() + 4 + 4 + 1
        );
    }

    #[test]
    fn rows_have_as_many_cells_as_the_header_and_quote_names() {
        let run = crate::model::tests::sample_run();
        let row = phase_rows(&run.phases[0], None);
        let row = row.trim_end();
        assert!(row.starts_with("\"steady, 20/s\","), "{row}");
        let unquoted = row.replacen("\"steady, 20/s\"", "x", 1);
        assert_eq!(
            unquoted.split(',').count(),
            phases_header(None).split(',').count()
        );
    }
}

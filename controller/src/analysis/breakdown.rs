//! A phase's results by workload entry and by model.
//!
//! Agents record each workload entry's requests as a separate, complete part
//! of every window; the parts merge exactly like the totals. Here they are
//! named after the plan's entries and grouped by model, bucket for bucket,
//! so one model's TTFT is exact however many entries send to it.

use crate::analysis::merge::Aggregate;
use crate::model::{Breakdown, BreakdownBy, MetricSummary, PhaseSummary, RequestCounts};
use stampede_common::metric::Metric;
use std::collections::BTreeMap;

/// What each workload entry of a phase is called and which model it asks
/// for, in the mix's order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntryLabels(pub Vec<(String, String)>);

impl EntryLabels {
    /// The labels of the mix `plan` sends in `phase`.
    pub fn of(plan: &stampede_plan::Plan, phase: &stampede_plan::Phase) -> Self {
        Self(
            plan.mix_for(phase)
                .iter()
                .map(|e| {
                    let model = e.options.model.as_deref().unwrap_or(&plan.target.model);
                    (e.name.clone(), model.to_string())
                })
                .collect(),
        )
    }
}

/// The merged data of each breakdown of `total`: one per workload entry
/// with a part, then one per model when the entries ask for two or more.
/// Empty when the agents recorded no parts (a single-entry mix).
pub fn groups(labels: &EntryLabels, total: &Aggregate) -> Vec<(BreakdownBy, String, Aggregate)> {
    grouped(labels, &total.parts, Aggregate::merge)
}

/// [`groups`] over any per-entry data `parts` that `add` merges exactly:
/// the one place that names the breakdowns and decides which exist.
pub fn grouped<T: Clone + Default>(
    labels: &EntryLabels,
    parts: &BTreeMap<u32, T>,
    add: impl Fn(&mut T, &T),
) -> Vec<(BreakdownBy, String, T)> {
    let label = |entry: u32| labels.0.get(entry as usize);
    let mut out: Vec<_> = parts
        .iter()
        .map(|(entry, part)| {
            let name = label(*entry).map_or_else(|| format!("entry {entry}"), |l| l.0.clone());
            (BreakdownBy::Workload, name, part.clone())
        })
        .collect();
    let mut models: BTreeMap<String, T> = BTreeMap::new();
    for (entry, part) in parts {
        let model = label(*entry).map_or_else(|| format!("entry {entry}"), |l| l.1.clone());
        add(models.entry(model).or_default(), part);
    }
    if models.len() > 1 {
        out.extend(
            models
                .into_iter()
                .map(|(model, part)| (BreakdownBy::Model, model, part)),
        );
    }
    out
}

/// The breakdowns a chart draws as lines of their own: by model when the
/// phase has model breakdowns, else by workload entry.
pub fn charted(labels: &EntryLabels, total: &Aggregate) -> Vec<(BreakdownBy, String, Aggregate)> {
    let all = groups(labels, total);
    let by_model = all.iter().any(|g| g.0 == BreakdownBy::Model);
    all.into_iter()
        .filter(|g| (g.0 == BreakdownBy::Model) == by_model)
        .collect()
}

/// The summaries of [`groups`], rates over the phase's completion span
/// `finished_s`, with the plan's `chosen` percentiles.
pub fn summaries(
    labels: &EntryLabels,
    total: &Aggregate,
    finished_s: f64,
    chosen: Option<&[f64]>,
) -> Vec<Breakdown> {
    groups(labels, total)
        .into_iter()
        .map(|(by, name, agg)| summary((by, name), &agg, finished_s, chosen))
        .collect()
}

fn summary(
    (by, name): (BreakdownBy, String),
    agg: &Aggregate,
    finished_s: f64,
    chosen: Option<&[f64]>,
) -> Breakdown {
    let c = &agg.counters;
    let rate = |n: u64| {
        if finished_s > 0.0 {
            n as f64 / finished_s
        } else {
            0.0
        }
    };
    Breakdown {
        by,
        name,
        requests: RequestCounts {
            sent: c.sent,
            ok: c.ok,
            failed: c.failed,
            skipped: 0,
            expired: 0,
            lost: 0,
        },
        errors: agg.errors.clone(),
        request_throughput: rate(c.ok),
        output_tokens: c.output_tokens,
        input_tokens: c.input_tokens,
        output_token_throughput: rate(c.output_tokens),
        metrics: metric_summaries(agg, chosen),
    }
}

/// The summary of every metric `agg` has values of, by name, with the
/// plan's `chosen` percentiles.
pub fn metric_summaries(
    agg: &Aggregate,
    chosen: Option<&[f64]>,
) -> BTreeMap<String, MetricSummary> {
    Metric::ALL
        .iter()
        .filter(|m| !agg.hist(**m).is_empty())
        .map(|m| {
            let summary = MetricSummary::of(*m, agg.hist(*m), chosen);
            (m.name().to_string(), summary)
        })
        .collect()
}

/// Phase `p`'s summary narrowed to its breakdown `b`: `b`'s counts, rates
/// and distributions; what only the whole phase has (schedule, cost,
/// objectives, agents' CPU, reports) left out. Outputs that show phases
/// (phases.csv, llm-d reports) show a breakdown through it.
pub fn as_phase(p: &PhaseSummary, b: &Breakdown) -> PhaseSummary {
    let arrivals = |n: u64| {
        if p.arrivals_s > 0.0 {
            n as f64 / p.arrivals_s
        } else {
            0.0
        }
    };
    PhaseSummary {
        requests: b.requests.clone(),
        errors: b.errors.clone(),
        scheduled: None,
        achieved_rate: arrivals(b.requests.sent),
        request_throughput: b.request_throughput,
        output_tokens: b.output_tokens,
        input_tokens: b.input_tokens,
        output_token_throughput: b.output_token_throughput,
        usage_reported: 0,
        metrics: b.metrics.clone(),
        breakdowns: Vec::new(),
        agent_cpu_s: 0.0,
        rejected_reports: 0,
        duplicate_reports: 0,
        reports_dropped: 0,
        records_dropped: 0,
        saturated_windows: BTreeMap::new(),
        cost: None,
        slo: Vec::new(),
        slo_passed: None,
        goodput: None,
        good_requests: None,
        drift: None,
        faults: None,
        server: None,
        ..p.clone()
    }
}

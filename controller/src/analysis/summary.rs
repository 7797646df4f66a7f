//! A phase's merged windows → its summary: the one function the live run
//! and `controller report` share, so the two can never disagree.

use crate::analysis::breakdown::{self, EntryLabels};
use crate::analysis::merge::PhaseAccumulator;
use crate::analysis::server_metrics::Scrape;
use crate::model::StepRecord;
use crate::model::{PhaseSummary, Redistribution, RequestCounts};
use stampede_plan::Phase;
use std::collections::BTreeMap;
use std::time::Duration;

/// What a phase's summary is built from besides its merged windows, the
/// same whether the run is live or rebuilt from its raw log.
pub struct PhaseRun<'a> {
    /// The phase as run (a stress step's own constant-rate phase).
    pub phase: &'a Phase,
    /// The plan's seed and the phase's index in the plan: its arrival schedule.
    pub seed: u64,
    /// Index of the phase in the plan.
    pub index: u32,
    /// Window length.
    pub window: Duration,
    /// Agents assigned a share.
    pub agents: Vec<String>,
    /// Agents lost during the phase.
    pub lost: Vec<String>,
    /// Whether the run was stopped during the phase.
    pub stopped_early: bool,
    /// The stress step this phase ran as, if any.
    pub step: Option<StepRecord>,
    /// Shares handed from lost agents to others.
    pub redistributed: Vec<Redistribution>,
    /// Server-metrics scrapes and failed scrapes by page, when they count.
    pub scrapes: Option<(&'a [Scrape], &'a BTreeMap<String, u32>)>,
    /// Names and models of the phase's workload entries (its breakdowns).
    pub labels: EntryLabels,
    /// The plan's `run.percentiles`, when it chose any.
    pub percentiles: Option<&'a [f64]>,
}

/// The summary of a finished phase: its totals summed from the windows of
/// its measured interval (warm-up and cool-down cut), then counts, rates, metrics, the scheduled
/// arrivals, stress step, redistributions and server metrics.
pub fn phase_summary(run: PhaseRun<'_>, acc: &mut PhaseAccumulator) -> PhaseSummary {
    let (first, end) = run.phase.measured_windows(run.window);
    acc.restrict(first, end, run.window);
    let chosen = run.percentiles;
    let mut s = summarize(
        run.phase,
        acc,
        (run.agents, run.lost),
        run.stopped_early,
        chosen,
    );
    s.breakdowns = breakdown::summaries(&run.labels, &acc.total, s.finished_s, chosen);
    s.scheduled =
        crate::analysis::schedule::scheduled_arrivals(run.phase, run.seed, run.index, run.window);
    s.step = run.step;
    s.redistributed = run.redistributed;
    s.server = run
        .scrapes
        .map(|(scrapes, failed)| crate::analysis::server_metrics::summarize(scrapes, failed));
    if s.step.is_some() {
        s.kind = "stress".into();
    }
    s
}

fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// Turn a phase's merged state into its summary (its agents and those
/// lost; `chosen`: the plan's percentiles, when it chose any).
pub fn summarize(
    phase: &Phase,
    acc: &PhaseAccumulator,
    (agents, lost): (Vec<String>, Vec<String>),
    stopped_early: bool,
    chosen: Option<&[f64]>,
) -> PhaseSummary {
    let c = &acc.total.counters;
    let lost_requests = acc.lost_requests(&lost);
    let arrivals_s = acc.arrivals_micros as f64 / 1e6;
    let finished_s = acc.finished_micros as f64 / 1e6;
    let metrics = breakdown::metric_summaries(&acc.total, chosen);
    PhaseSummary {
        name: phase.name.clone(),
        kind: phase.kind.name().to_string(),
        offered_rate: phase.offered_rate(),
        users: phase.users(),
        planned_duration_s: phase.duration.as_secs_f64(),
        arrivals_s,
        finished_s,
        agents,
        lost_agents: lost,
        requests: RequestCounts {
            sent: c.sent,
            ok: c.ok,
            failed: c.failed,
            skipped: c.skipped,
            expired: c.expired,
            lost: lost_requests,
        },
        errors: acc.total.errors.clone(),
        scheduled: None,
        achieved_rate: per_second(c.sent, arrivals_s),
        request_throughput: per_second(c.ok, finished_s),
        output_tokens: c.output_tokens,
        input_tokens: c.input_tokens,
        output_token_throughput: per_second(c.output_tokens, finished_s),
        usage_reported: c.usage_reported,
        metrics,
        breakdowns: Vec::new(),
        agent_cpu_s: acc.total.cpu_micros as f64 / 1e6,
        rejected_reports: acc.rejected.values().sum(),
        duplicate_reports: acc.duplicates,
        stopped_early,
        reports_dropped: acc.reports_dropped.values().sum(),
        records_dropped: acc.records_dropped,
        saturated_windows: acc
            .saturated
            .iter()
            .map(|(a, (n, _))| (a.clone(), *n))
            .collect(),
        complete: true,
        repeat: 0,
        cost: None,
        slo: Vec::new(),
        slo_passed: None,
        goodput: None,
        good_requests: None,
        step: None,
        drift: None,
        faults: None,
        redistributed: Vec::new(),
        server: None,
        start_spread_ms: (!acc.starts.is_empty()).then(|| {
            let (lo, hi) = acc
                .starts
                .iter()
                .fold((i64::MAX, i64::MIN), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
            (hi - lo) as f64 / 1e6
        }),
        warmup_s: phase.warmup.as_secs_f64(),
        cooldown_s: phase.cooldown.as_secs_f64(),
    }
}

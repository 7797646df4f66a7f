//! What a run leaves behind: `summary.json` (machine-readable) and
//! `stats.txt` (the human summary, also printed at the end of a run).

use crate::merge::MetricSummary;
use serde::{Deserialize, Serialize};
use stampede_common::metric::Metric;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// stampede version.
    pub stampede_version: String,
    /// Run identifier (also the default directory name).
    pub run_id: String,
    /// Start (RFC 3339, UTC).
    pub started_at: String,
    /// End (RFC 3339, UTC); `None` when the controller stopped before the end.
    pub finished_at: Option<String>,
    /// Endpoint under test.
    pub target: TargetInfo,
    /// Agents that took part.
    pub agents: Vec<AgentInfo>,
    /// One entry per phase that ran.
    pub phases: Vec<PhaseSummary>,
    /// The run was cut short by a stop signal.
    pub interrupted: bool,
    /// Times the plan's phases were to run.
    pub repeat: u32,
    /// Per planned phase, key metrics across repeats (empty without repeats).
    pub repeats: Vec<crate::repeats::RepeatSummary>,
    /// Datasets the run read, with the records it skipped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<crate::inputs::DatasetInfo>,
    /// Traces the run replayed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub traces: Vec<crate::inputs::TraceInfo>,
    /// Cluster details (node labels, gateway address) on Kubernetes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<crate::k8s::discovery::KubernetesInfo>,
    /// Each stress phase's search: its steps and its knee.
    pub stress: Vec<StressResult>,
    /// Some phase failed its objectives (a stress phase: no step held them).
    pub slo_failed: bool,
}

/// A stress phase's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct StressResult {
    /// Phase name.
    pub phase: String,
    /// Repeat it ran in (0-based).
    pub repeat: u32,
    /// Highest offered rate whose step held every objective and check.
    pub knee_rate: Option<f64>,
    /// Why the search ended.
    pub stopped: crate::stress::StopReason,
    /// The same, as a sentence.
    pub reason: String,
    /// Every step, in the order run.
    pub steps: Vec<StressStep>,
}

/// One row of a stress phase's step table.
#[derive(Debug, Clone, Serialize)]
pub struct StressStep {
    /// Offered rate (requests per second).
    pub rate: f64,
    /// Achieved rate.
    pub achieved_rate: f64,
    /// TTFT p99 (ms).
    pub ttft_p99_ms: Option<f64>,
    /// E2E p99 (ms).
    pub e2e_p99_ms: Option<f64>,
    /// Failed / (ok + failed).
    pub error_rate: f64,
    /// Good requests per second, when the phase has latency objectives.
    pub goodput: Option<f64>,
    /// Every objective and check held.
    pub passed: bool,
    /// The objectives and checks that failed.
    pub failed: Vec<String>,
}

/// A lost agent's share handed to the others.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Redistribution {
    /// The agent declared lost.
    pub lost: String,
    /// The agents that took its share.
    pub to: Vec<String>,
    /// From this many seconds into the phase.
    pub from_s: f64,
}

/// Endpoint under test.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TargetInfo {
    /// Base URL.
    pub url: String,
    /// Model.
    pub model: String,
    /// API.
    pub api: stampede_common::plan::Api,
    /// Whether it was the built-in simulator.
    pub simulator: bool,
}

/// An agent of the run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentInfo {
    /// Agent id.
    pub id: String,
    /// Node it ran on.
    pub node: String,
    /// Cores.
    pub cores: u32,
    /// Agent version.
    pub version: String,
    /// Estimated clock offset (agent − controller), ms.
    pub clock_offset_ms: f64,
    /// Round trip of the probe behind the estimate, ms.
    pub clock_rtt_ms: f64,
}

/// Request counts of a phase.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RequestCounts {
    /// Sent.
    pub sent: u64,
    /// Succeeded.
    pub ok: u64,
    /// Failed (sum of `errors`).
    pub failed: u64,
    /// Due but not sent (in-flight bound).
    pub skipped: u64,
    /// Due but not sent: their deadline had passed when the agent got to
    /// them (the agent was stalled). Never a server failure.
    pub expired: u64,
    /// Sent by an agent that was lost before reporting how they ended.
    pub lost: u64,
}

/// One phase's merged results.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseSummary {
    /// Phase name.
    pub name: String,
    /// Phase kind.
    pub kind: String,
    /// Offered rate (open loop), requests/s.
    pub offered_rate: Option<f64>,
    /// Users (closed loop).
    pub users: Option<u32>,
    /// Planned arrival duration, s.
    pub planned_duration_s: f64,
    /// Measured span of arrivals, s.
    pub arrivals_s: f64,
    /// Phase start to last completion, s.
    pub finished_s: f64,
    /// Agents assigned.
    pub agents: Vec<String>,
    /// Agents lost during the phase.
    pub lost_agents: Vec<String>,
    /// Request counts.
    pub requests: RequestCounts,
    /// Failures by class.
    pub errors: BTreeMap<String, u64>,
    /// Arrivals the open-loop schedule defines in the measured interval
    /// (sent + skipped + expired when every agent ran the whole phase);
    /// `None` for closed loops.
    pub scheduled: Option<u64>,
    /// Sent requests per second over the arrival window (the planned one,
    /// unless the phase was stopped or its request bound spent first).
    pub achieved_rate: f64,
    /// Successful requests per second (start to last completion).
    pub request_throughput: f64,
    /// Output tokens of successful requests.
    pub output_tokens: u64,
    /// Prompt tokens of successful requests (server-reported).
    pub input_tokens: u64,
    /// Output tokens per second (start to last completion).
    pub output_token_throughput: f64,
    /// Successful requests whose token count came from `usage`.
    pub usage_reported: u64,
    /// Distributions by metric name.
    pub metrics: BTreeMap<String, MetricSummary>,
    /// CPU seconds all agents spent in the phase.
    pub agent_cpu_s: f64,
    /// Window reports rejected as malformed.
    pub rejected_reports: u64,
    /// Duplicate window reports ignored.
    pub duplicate_reports: u64,
    /// The phase was stopped before its planned end.
    pub stopped_early: bool,
    /// Windows in which an agent reported itself saturated (its own lag or
    /// CPU beyond a bound), by agent: latencies there may include the load
    /// generator's delay.
    pub saturated_windows: BTreeMap<String, u64>,
    /// Window reports agents dropped from their unacknowledged buffers during
    /// long disconnections (lost data), summed over agents.
    #[serde(default)]
    pub reports_dropped: u64,
    /// The phase's end was recorded; `false` when the controller stopped
    /// mid-phase and the results cover only the windows received until then.
    pub complete: bool,
    /// Repeat of the plan's phases this phase ran in (0-based).
    pub repeat: u32,
    /// Cost figures, when the plan has a `[cost]` table.
    pub cost: Option<crate::cost::PhaseCost>,
    /// Objectives and checks, evaluated.
    pub slo: Vec<crate::verdict::Check>,
    /// Whether every objective and check held (`None`: the phase has none).
    pub slo_passed: Option<bool>,
    /// Good requests per second (vLLM's goodput: successful requests within
    /// every TTFT / TPOT / E2E objective's threshold), when the phase has such
    /// objectives.
    pub goodput: Option<f64>,
    /// Requests counted in `goodput`.
    pub good_requests: Option<u64>,
    /// The stress step this summary covers.
    pub step: Option<crate::rawlog::StepRecord>,
    /// A soak's drift between its first and last windows.
    pub drift: Option<crate::verdict::Drift>,
    /// Lost agents' shares handed to the remaining agents.
    pub redistributed: Vec<Redistribution>,
    /// Spread of the agents' actual phase starts (controller clock), ms.
    pub start_spread_ms: Option<f64>,
    /// The serving stack's own metrics over the phase, when scraped.
    pub server: Option<crate::server_metrics::ServerSummary>,
    /// Start of the phase left out of its results (s).
    pub warmup_s: f64,
    /// End of the phase left out of its results, with the drain (s; 0: none).
    pub cooldown_s: f64,
    /// The phase's fault actions and the recovery from each episode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faults: Option<crate::recovery::FaultReport>,
}

impl PhaseSummary {
    /// Name for charts and tables: the phase name, plus the repeat when the
    /// run repeats its phases.
    pub fn label(&self, repeats: u32) -> String {
        let name = match self.step {
            Some(step) => format!("{}@{}", self.name, rate_text(step.rate)),
            None => self.name.clone(),
        };
        if repeats > 1 {
            format!("{name} #{}", self.repeat + 1)
        } else {
            name
        }
    }
}

/// A rate for labels: whole numbers without decimals.
pub fn rate_text(rate: f64) -> String {
    if rate.fract() == 0.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.2}")
    }
}

/// Write `summary.json` and `stats.txt` into `dir`.
pub fn write(dir: &Path, run: &RunSummary) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(run).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("summary.json"), json + "\n")?;
    std::fs::write(dir.join("stats.txt"), stats_text(run))
}

/// The human summary.
pub fn stats_text(run: &RunSummary) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "stampede {} — run {}", run.stampede_version, run.run_id);
    let _ = writeln!(s, "started   {}", run.started_at);
    let _ = writeln!(
        s,
        "finished  {}{}",
        run.finished_at
            .as_deref()
            .unwrap_or("(not recorded: the controller stopped before the end of the run)"),
        if run.interrupted {
            " (interrupted)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "target    {} (model {}, api {}{})",
        run.target.url,
        run.target.model,
        match run.target.api {
            stampede_common::plan::Api::Chat => "chat",
            stampede_common::plan::Api::Completions => "completions",
        },
        if run.target.simulator {
            ", built-in simulator"
        } else {
            ""
        }
    );
    let _ = writeln!(s, "agents    {}", run.agents.len());
    for a in &run.agents {
        let _ = writeln!(
            s,
            "  {:<20} node {:<16} cores {:<3} clock offset {:+.3} ms (rtt {:.3} ms)",
            a.id, a.node, a.cores, a.clock_offset_ms, a.clock_rtt_ms
        );
    }
    if let Some(k) = &run.kubernetes {
        s.push_str(&crate::k8s::discovery::text(k));
    }
    s.push_str(&crate::inputs::text(&run.datasets));
    s.push_str(&crate::inputs::trace_text(&run.traces));
    for p in &run.phases {
        phase_text(&mut s, p, run.repeat);
    }
    for r in &run.stress {
        stress_text(&mut s, r, run.repeat);
    }
    if run.slo_failed {
        let _ = writeln!(s);
        let _ = writeln!(s, "service-level objectives: FAILED");
    }
    if !run.repeats.is_empty() {
        crate::repeats::text(&mut s, &run.repeats);
    }
    s
}

fn server_text(s: &mut String, m: &crate::server_metrics::ServerSummary) {
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0));
    let num = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    let _ = writeln!(
        s,
        "  server      {} scrapes{}: prefix-cache hit rate {}, KV-cache usage mean {} max {}, \
         running mean {} max {}, waiting mean {} max {}",
        m.scrapes,
        if m.failed_scrapes.is_empty() {
            String::new()
        } else {
            format!(" ({} failed)", m.failed_scrapes.values().sum::<u32>())
        },
        pct(m.prefix_cache_hit_rate),
        pct(m.kv_cache_usage_mean),
        pct(m.kv_cache_usage_max),
        num(m.running_mean),
        num(m.running_max),
        num(m.waiting_mean),
        num(m.waiting_max),
    );
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    let _ = writeln!(
        s,
        "  server lat  ttft p50 {} p99 {} ms, e2e p50 {} p99 {} ms (bucket-interpolated); \
         {} requests, {} prompt / {} output tokens",
        ms(m.ttft_p50_ms),
        ms(m.ttft_p99_ms),
        ms(m.e2e_p50_ms),
        ms(m.e2e_p99_ms),
        num(m.requests),
        num(m.prompt_tokens),
        num(m.generation_tokens),
    );
}

fn stress_text(s: &mut String, r: &StressResult, repeats: u32) {
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "stress {}{}: knee {} — {}",
        r.phase,
        if repeats > 1 {
            format!(" [repeat {} of {repeats}]", r.repeat + 1)
        } else {
            String::new()
        },
        r.knee_rate
            .map_or_else(|| "not found".to_string(), |k| format!("{k:.2} req/s")),
        r.reason
    );
    let _ = writeln!(
        s,
        "  {:>4} {:>10} {:>10} {:>11} {:>11} {:>8} {:>10}  verdict",
        "step", "offered/s", "achieved/s", "ttft p99 ms", "e2e p99 ms", "errors", "goodput/s"
    );
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    for (i, st) in r.steps.iter().enumerate() {
        let _ = writeln!(
            s,
            "  {:>4} {:>10.2} {:>10.2} {:>11} {:>11} {:>7.2}% {:>10}  {}",
            i + 1,
            st.rate,
            st.achieved_rate,
            ms(st.ttft_p99_ms),
            ms(st.e2e_p99_ms),
            st.error_rate * 100.0,
            st.goodput.map_or("-".to_string(), |g| format!("{g:.2}")),
            if st.passed {
                "held".to_string()
            } else {
                format!("failed: {}", st.failed.join("; "))
            }
        );
    }
}

fn phase_text(s: &mut String, p: &PhaseSummary, repeats: u32) {
    let load = match (p.offered_rate, p.users) {
        (Some(r), _) => format!("open loop, offered {r:.2} req/s"),
        (None, Some(u)) => format!("closed loop, {u} user{}", if u == 1 { "" } else { "s" }),
        (None, None) => String::new(),
    };
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "phase {}{} ({}, {load}){}",
        match p.step {
            Some(st) => format!("{} step {}", p.name, st.index + 1),
            None => p.name.clone(),
        },
        if repeats > 1 {
            format!(" [repeat {} of {repeats}]", p.repeat + 1)
        } else {
            String::new()
        },
        p.kind,
        match (p.complete, p.stopped_early) {
            (false, _) => " — incomplete: the controller stopped mid-phase",
            (true, true) => " — stopped early",
            (true, false) => "",
        }
    );
    let _ = writeln!(
        s,
        "  time        planned {:.1} s, arrivals {:.2} s, last completion {:.2} s{}",
        p.planned_duration_s,
        p.arrivals_s,
        p.finished_s,
        p.start_spread_ms
            .map(|ms| format!(", start spread {ms:.3} ms"))
            .unwrap_or_default()
    );
    if p.warmup_s > 0.0 || p.cooldown_s > 0.0 {
        let _ = writeln!(
            s,
            "  measured    without the first {:.1} s{}",
            p.warmup_s,
            if p.cooldown_s > 0.0 {
                format!(", the last {:.1} s and the drain", p.cooldown_s)
            } else {
                String::new()
            }
        );
    }
    let r = &p.requests;
    let _ = writeln!(
        s,
        "  requests    sent {}  ok {}  failed {}{}  skipped {}{}",
        r.sent,
        r.ok,
        r.failed,
        if r.lost > 0 {
            format!("  lost {} (in flight on lost agents)", r.lost)
        } else {
            String::new()
        },
        r.skipped,
        if r.expired > 0 {
            format!(
                "  expired {} (the agent was stalled; never sent)",
                r.expired
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        s,
        "  rate        achieved {:.2} req/s{}",
        p.achieved_rate,
        p.offered_rate
            .map(|o| format!(" of {o:.2} offered ({:.1}%)", 100.0 * p.achieved_rate / o))
            .unwrap_or_default()
            + &p.scheduled
                .map(|n| format!(", {} of {n} scheduled arrivals sent", p.requests.sent))
                .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "  throughput  {:.2} req/s ok, {:.1} output tok/s ({} output tokens, {} from usage)",
        p.request_throughput, p.output_token_throughput, p.output_tokens, p.usage_reported
    );
    if p.errors.is_empty() {
        let _ = writeln!(s, "  errors      none");
    } else {
        let list: Vec<String> = p.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(s, "  errors      {}", list.join(", "));
    }
    if !p.lost_agents.is_empty() {
        let _ = writeln!(s, "  lost agents {}", p.lost_agents.join(", "));
    }
    for r in &p.redistributed {
        let _ = writeln!(
            s,
            "  reshard     {}'s share went to {} from {:.1} s",
            r.lost,
            r.to.join(", "),
            r.from_s
        );
    }
    if let (Some(g), Some(n)) = (p.goodput, p.good_requests) {
        let _ = writeln!(
            s,
            "  goodput     {g:.2} req/s ({n} requests within every TTFT/TPOT/E2E objective)"
        );
    }
    if let Some(passed) = p.slo_passed {
        let _ = writeln!(
            s,
            "  objectives  {}",
            if passed { "held" } else { "FAILED" }
        );
        for c in &p.slo {
            let observed = match (c.observed, c.unit) {
                (None, _) => "nothing measured".to_string(),
                (Some(v), "ms") => format!("{v:.2} ms"),
                (Some(v), "fraction") => format!("{:.2}%", v * 100.0),
                (Some(v), unit) => format!("{v} {unit}"),
            };
            let _ = writeln!(
                s,
                "    {} {:<32} observed {observed}",
                if c.passed { "ok  " } else { "FAIL" },
                c.objective
            );
        }
    }
    if let Some(m) = &p.server {
        server_text(s, m);
    }
    if let Some(d) = &p.drift {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:+.1}%", v * 100.0));
        let _ = writeln!(
            s,
            "  drift       windows {} vs the last {}: ttft p99 {} → {} ms ({}), e2e p99 {} → {} ms ({}), \
             throughput {:.2} → {:.2} req/s ({}), error rate {:.2}% → {:.2}% (slope {:+.4}%/min)",
            format_args!("{}..{}", d.skipped + 1, d.skipped + d.windows),
            d.windows,
            ms(d.first.ttft_p99_ms),
            ms(d.last.ttft_p99_ms),
            pct(d.ttft_p99_change),
            ms(d.first.e2e_p99_ms),
            ms(d.last.e2e_p99_ms),
            pct(d.e2e_p99_change),
            d.first.throughput,
            d.last.throughput,
            pct(d.throughput_change),
            d.first.error_rate * 100.0,
            d.last.error_rate * 100.0,
            d.error_rate_slope_per_min * 100.0
        );
    }
    if let Some(f) = &p.faults {
        crate::faults_out::text(s, f);
    }
    if p.reports_dropped > 0 {
        let _ = writeln!(
            s,
            "  lost data   {} window reports dropped by agents while disconnected",
            p.reports_dropped
        );
    }
    if !p.saturated_windows.is_empty() {
        let list: Vec<String> = p
            .saturated_windows
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            s,
            "  saturated   agent windows: {} — the load generator may have added latency",
            list.join(", ")
        );
    }
    if p.rejected_reports > 0 {
        let _ = writeln!(
            s,
            "  rejected    {} malformed window reports",
            p.rejected_reports
        );
    }
    let _ = writeln!(
        s,
        "  {:<14}{:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "metric", "unit", "count", "mean", "p50", "p90", "p99", "p99.9", "max"
    );
    for m in Metric::ALL {
        if let Some(x) = p.metrics.get(m.name()) {
            let _ = writeln!(
                s,
                "  {:<14}{:>6} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                m.name(),
                x.unit,
                x.count,
                x.mean,
                x.p50,
                x.p90,
                x.p99,
                x.p999,
                x.max
            );
        }
    }
    if let Some(c) = &p.cost {
        let _ = writeln!(
            s,
            "  cost        {:.4} {cur} ({} GPU × {:.2} {cur}/h over {:.2} s): {} per million output tokens, {:.0} output tokens per {cur}",
            c.cost,
            c.gpus,
            c.gpu_hour_price,
            p.finished_s,
            c.per_million_output_tokens
                .map_or_else(|| "-".to_string(), |v| format!("{v:.4} {}", c.currency)),
            c.output_tokens_per_unit,
            cur = c.currency,
        );
    }
    let _ = writeln!(s, "  agent cpu   {:.2} s", p.agent_cpu_s);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn metric(unit: &'static str, count: u64, base: f64) -> MetricSummary {
        MetricSummary {
            unit,
            count,
            mean: base * 1.1,
            stddev: base * 0.2,
            min: base * 0.5,
            p50: base,
            p90: base * 1.5,
            p95: base * 1.75,
            p99: base * 2.0,
            p999: base * 3.0,
            max: base * 4.0,
        }
    }

    /// A fixed run summary with every kind of line stats.txt can hold.
    pub(crate) fn sample_run() -> RunSummary {
        let mut metrics = BTreeMap::new();
        metrics.insert("ttft".to_string(), metric("ms", 1200, 20.0));
        metrics.insert("itl".to_string(), metric("ms", 18_000, 5.0));
        metrics.insert("e2e".to_string(), metric("ms", 1200, 100.0));
        metrics.insert("output_tokens".to_string(), metric("tokens", 1200, 16.0));
        let mut errors = BTreeMap::new();
        errors.insert("http_5xx:503".to_string(), 3);
        errors.insert("timeout_first_token".to_string(), 1);
        RunSummary {
            stampede_version: "9.9.9".into(),
            run_id: "sample-20260101T000000Z".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: None,
            target: TargetInfo {
                url: "http://127.0.0.1:8000".into(),
                model: "m".into(),
                api: stampede_common::plan::Api::Chat,
                simulator: false,
            },
            agents: vec![AgentInfo {
                id: "a0".into(),
                node: "n0".into(),
                cores: 4,
                version: "9.9.9".into(),
                clock_offset_ms: -0.25,
                clock_rtt_ms: 0.5,
            }],
            phases: vec![PhaseSummary {
                name: "steady, 20/s".into(),
                kind: "constant".into(),
                offered_rate: Some(20.0),
                users: None,
                planned_duration_s: 60.0,
                arrivals_s: 59.95,
                finished_s: 60.2,
                agents: vec!["a0".into()],
                lost_agents: vec!["a1".into()],
                requests: RequestCounts {
                    sent: 1204,
                    ok: 1200,
                    failed: 4,
                    skipped: 0,
                    expired: 0,
                    lost: 0,
                },
                errors,
                scheduled: Some(1204),
                achieved_rate: 20.08,
                request_throughput: 19.93,
                output_tokens: 19_200,
                input_tokens: 153_600,
                output_token_throughput: 318.9,
                usage_reported: 1200,
                metrics,
                agent_cpu_s: 1.5,
                rejected_reports: 2,
                duplicate_reports: 0,
                stopped_early: false,
                complete: false,
                saturated_windows: BTreeMap::new(),
                reports_dropped: 0,
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
                start_spread_ms: None,
                server: None,
                warmup_s: 0.0,
                cooldown_s: 0.0,
            }],
            interrupted: false,
            repeat: 1,
            repeats: Vec::new(),
            stress: Vec::new(),
            slo_failed: false,
            datasets: Vec::new(),
            kubernetes: None,
            traces: Vec::new(),
        }
    }

    #[test]
    fn stats_text_snapshot() {
        let expected = "\
stampede 9.9.9 — run sample-20260101T000000Z
started   2026-01-01T00:00:00Z
finished  (not recorded: the controller stopped before the end of the run)
target    http://127.0.0.1:8000 (model m, api chat)
agents    1
  a0                   node n0               cores 4   clock offset -0.250 ms (rtt 0.500 ms)

phase steady, 20/s (constant, open loop, offered 20.00 req/s) — incomplete: the controller stopped mid-phase
  time        planned 60.0 s, arrivals 59.95 s, last completion 60.20 s
  requests    sent 1204  ok 1200  failed 4  skipped 0
  rate        achieved 20.08 req/s of 20.00 offered (100.4%), 1204 of 1204 scheduled arrivals sent
  throughput  19.93 req/s ok, 318.9 output tok/s (19200 output tokens, 1200 from usage)
  errors      http_5xx:503 3, timeout_first_token 1
  lost agents a1
  rejected    2 malformed window reports
  metric          unit     count      mean       p50       p90       p99     p99.9       max
  ttft              ms      1200     22.00     20.00     30.00     40.00     60.00     80.00
  itl               ms     18000      5.50      5.00      7.50     10.00     15.00     20.00
  e2e               ms      1200    110.00    100.00    150.00    200.00    300.00    400.00
  output_tokens tokens      1200     17.60     16.00     24.00     32.00     48.00     64.00
  agent cpu   1.50 s
";
        let got = stats_text(&sample_run());
        assert_eq!(got, expected, "got:\n{got}");
    }
}

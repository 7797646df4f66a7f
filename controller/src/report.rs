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
    /// Sent requests per second over the arrival span.
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
}

impl PhaseSummary {
    /// Name for charts and tables: the phase name, plus the repeat when the
    /// run repeats its phases.
    pub fn label(&self, repeats: u32) -> String {
        if repeats > 1 {
            format!("{} #{}", self.name, self.repeat + 1)
        } else {
            self.name.clone()
        }
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
    s.push_str(&crate::inputs::text(&run.datasets));
    s.push_str(&crate::inputs::trace_text(&run.traces));
    for p in &run.phases {
        phase_text(&mut s, p, run.repeat);
    }
    if !run.repeats.is_empty() {
        crate::repeats::text(&mut s, &run.repeats);
    }
    s
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
        p.name,
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
        "  time        planned {:.1} s, arrivals {:.2} s, last completion {:.2} s",
        p.planned_duration_s, p.arrivals_s, p.finished_s
    );
    let r = &p.requests;
    let _ = writeln!(
        s,
        "  requests    sent {}  ok {}  failed {}  skipped {}",
        r.sent, r.ok, r.failed, r.skipped
    );
    let _ = writeln!(
        s,
        "  rate        achieved {:.2} req/s{}",
        p.achieved_rate,
        p.offered_rate
            .map(|o| format!(" of {o:.2} offered ({:.1}%)", 100.0 * p.achieved_rate / o))
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
                },
                errors,
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
            }],
            interrupted: false,
            repeat: 1,
            repeats: Vec::new(),
            datasets: Vec::new(),
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
  rate        achieved 20.08 req/s of 20.00 offered (100.4%)
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

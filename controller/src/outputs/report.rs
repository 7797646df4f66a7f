//! What a run leaves behind: `summary.json` (machine-readable) and
//! `stats.txt` (the human summary, also printed at the end of a run).

use crate::model::{MetricSummary, PhaseSummary, RunSummary, StressResult};
use stampede_common::metric::Metric;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

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
            stampede_plan::Api::Chat => "chat",
            stampede_plan::Api::Completions => "completions",
        },
        if run.target.simulator {
            ", built-in simulator"
        } else {
            ""
        }
    );
    agents_text(&mut s, &run.agents);
    if let Some(k) = &run.kubernetes {
        s.push_str(&cluster_text(k));
    }
    s.push_str(&crate::analysis::inputs::text(&run.datasets));
    s.push_str(&crate::analysis::inputs::trace_text(&run.traces));
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
        crate::analysis::repeats::text(&mut s, &run.repeats);
    }
    s
}

/// Agents listed one by one in `stats.txt` and `report.html`; a larger
/// fleet is summarized.
pub(crate) const AGENTS_LISTED: usize = 10;

/// The range of every agent's clock figures, for a fleet too large to list.
pub(crate) struct FleetClock {
    /// Lowest and highest clock offset (ms).
    pub offset_ms: (f64, f64),
    /// Largest probe round trip (ms).
    pub rtt_ms: f64,
}

/// Every agent's clock figures as one range.
pub(crate) fn fleet_clock(agents: &[crate::model::AgentInfo]) -> FleetClock {
    let offsets = agents.iter().map(|a| a.clock_offset_ms);
    FleetClock {
        offset_ms: (
            offsets.clone().fold(f64::INFINITY, f64::min),
            offsets.fold(f64::NEG_INFINITY, f64::max),
        ),
        rtt_ms: agents.iter().map(|a| a.clock_rtt_ms).fold(0.0, f64::max),
    }
}

/// The agents: each one's clock, up to [`AGENTS_LISTED`] of them; beyond,
/// how many more and the range of every agent's clock figures (all are in
/// `summary.json` and `manifest.json`).
fn agents_text(s: &mut String, agents: &[crate::model::AgentInfo]) {
    let _ = writeln!(s, "agents    {}", agents.len());
    for a in agents.iter().take(AGENTS_LISTED) {
        let _ = writeln!(
            s,
            "  {:<20} node {:<16} cores {:<3} clock offset {:+.3} ms (rtt {:.3} ms)",
            a.id, a.node, a.cores, a.clock_offset_ms, a.clock_rtt_ms
        );
    }
    if agents.len() > AGENTS_LISTED {
        let FleetClock {
            offset_ms: (low, high),
            rtt_ms,
        } = fleet_clock(agents);
        let _ = writeln!(
            s,
            "  … and {} more (all in summary.json); every agent's clock offset {low:+.3} to {high:+.3} ms, rtt up to {rtt_ms:.3} ms",
            agents.len() - AGENTS_LISTED
        );
    }
}

fn server_text(s: &mut String, m: &crate::model::ServerSummary) {
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

/// One phase's block of stats.txt.
fn phase_text(s: &mut String, p: &PhaseSummary, repeats: u32) {
    header_text(s, p, repeats);
    counts_text(s, p);
    objectives_text(s, p);
    if let Some(m) = &p.server {
        server_text(s, m);
    }
    if let Some(d) = &p.drift {
        drift_text(s, d);
    }
    if let Some(f) = &p.faults {
        crate::outputs::faults_out::text(s, f);
    }
    health_text(s, p);
    metrics_text(s, p);
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
    breakdowns_text(s, p);
}

/// The phase line, its timing and what was measured.
fn header_text(s: &mut String, p: &PhaseSummary, repeats: u32) {
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
}

/// Requests, rates, throughput, errors and where shares went.
fn counts_text(s: &mut String, p: &PhaseSummary) {
    let r = &p.requests;
    let _ = writeln!(
        s,
        "  requests    sent {}  ok {}  failed {}{}  skipped {}{}",
        r.sent,
        r.ok,
        r.failed,
        if r.lost > 0 {
            format!("  lost {} (in flight on lost or restarted agents)", r.lost)
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
        let (to, from) = (r.to.join(", "), r.from_s);
        let _ = if r.rejoined.is_empty() {
            writeln!(
                s,
                "  reshard     {}'s share went to {to} from {from:.1} s",
                r.lost
            )
        } else {
            let who = &r.rejoined;
            writeln!(
                s,
                "  reshard     {who} took a share back: {to} from {from:.1} s"
            )
        };
    }
}

/// Goodput and each objective's verdict.
fn objectives_text(s: &mut String, p: &PhaseSummary) {
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
}

/// A soak's drift between its first and last windows.
fn drift_text(s: &mut String, d: &crate::model::Drift) {
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

/// What may make the figures less trustworthy: lost reports, saturated agents, malformed reports.
fn health_text(s: &mut String, p: &PhaseSummary) {
    if p.reports_dropped > 0 {
        let _ = writeln!(
            s,
            "  lost data   {} window reports dropped by agents while disconnected",
            p.reports_dropped
        );
    }
    if p.records_dropped > 0 {
        let _ = writeln!(
            s,
            "  lost data   {} per-request records dropped by agents (records.max_per_window)",
            p.records_dropped
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
}

/// The per-metric table.
fn metrics_text(s: &mut String, p: &PhaseSummary) {
    metrics_table(s, "  ", &p.metrics);
}

/// Percentiles stats.txt shows unless the plan chose its own.
const TEXT_PERCENTILES: [f64; 4] = [50.0, 90.0, 99.0, 99.9];

/// The table of `metrics`, each line indented by `indent`.
fn metrics_table(s: &mut String, indent: &str, metrics: &BTreeMap<String, MetricSummary>) {
    // Every measured metric of a run shows the same percentiles.
    let shown = metrics.values().next().map_or_else(
        || TEXT_PERCENTILES.to_vec(),
        |x| {
            x.percentiles(&TEXT_PERCENTILES)
                .iter()
                .map(|(p, _)| *p)
                .collect()
        },
    );
    let mut header = format!(
        "{indent}{:<14}{:>6} {:>9} {:>9}",
        "metric", "unit", "count", "mean"
    );
    for p in shown {
        let _ = write!(header, " {:>9}", stampede_plan::percentiles::label(p));
    }
    let _ = writeln!(s, "{header} {:>9}", "max");
    for m in Metric::ALL {
        if let Some(x) = metrics.get(m.name()) {
            let mut line = format!(
                "{indent}{:<14}{:>6} {:>9} {:>9.2}",
                m.name(),
                x.unit,
                x.count,
                x.mean
            );
            for (_, v) in x.percentiles(&TEXT_PERCENTILES) {
                let _ = write!(line, " {v:>9.2}");
            }
            let _ = writeln!(s, "{line} {:>9.2}", x.max);
        }
    }
}

/// Each breakdown of the phase: its counts, rates and metric table.
fn breakdowns_text(s: &mut String, p: &PhaseSummary) {
    for b in &p.breakdowns {
        let errors: Vec<String> = b.errors.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            s,
            "  {}: sent {}, ok {}, failed {}{}; {:.2} req/s, {:.1} output tok/s",
            b.label(),
            b.requests.sent,
            b.requests.ok,
            b.requests.failed,
            if errors.is_empty() {
                String::new()
            } else {
                format!(" ({})", errors.join(", "))
            },
            b.request_throughput,
            b.output_token_throughput,
        );
        metrics_table(s, "    ", &b.metrics);
    }
}

/// The cluster lines of stats.txt: context and namespace, each node's GPU,
/// zone and instance type, and the gateway's address.
pub fn cluster_text(k: &crate::model::KubernetesInfo) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "cluster   context {}, namespace {}",
        k.context.as_deref().unwrap_or("(current)"),
        k.namespace
    );
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
    for n in &k.nodes {
        let _ = writeln!(
            s,
            "  {:<20} gpu {} zone {} instance {} ({} agent(s))",
            n.name,
            or_dash(&n.gpu_product),
            or_dash(&n.zone),
            or_dash(&n.instance_type),
            n.agents.len()
        );
    }
    if let Some(g) = &k.gateway {
        let _ = writeln!(
            s,
            "gateway   {}/{} ({}) at {}",
            g.namespace,
            g.name,
            g.service_type,
            g.address.as_deref().unwrap_or("(no address yet)")
        );
    }
    for e in &k.errors {
        let _ = writeln!(s, "  lookup failed: {e}");
    }
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use crate::model::tests::sample_run;

    /// `n` agents named `{prefix}{i}`, clock offsets -3 to +3 ms, round trips 0 to 4 ms.
    pub(crate) fn fleet(n: u32, prefix: &str) -> Vec<crate::model::AgentInfo> {
        (0..n)
            .map(|i| crate::model::AgentInfo {
                id: format!("{prefix}{i}"),
                clock_offset_ms: f64::from(i % 7) - 3.0,
                clock_rtt_ms: f64::from(i % 5),
                node: "n".into(),
                cores: 1,
                version: "1".into(),
            })
            .collect()
    }

    #[test]
    fn a_large_fleet_is_summarized_not_listed() {
        let agents = fleet(10_000, "agent-");
        let mut s = String::new();
        agents_text(&mut s, &agents);
        assert_eq!(s.lines().count(), 1 + AGENTS_LISTED + 1, "{s}");
        assert!(s.starts_with("agents    10000\n  agent-0 "), "{s}");
        assert!(
            s.ends_with(
                "  … and 9990 more (all in summary.json); every agent's clock offset -3.000 to +3.000 ms, rtt up to 4.000 ms\n"
            ),
            "{s}"
        );
        let mut few = String::new();
        agents_text(&mut few, &agents[..AGENTS_LISTED]);
        assert!(!few.contains("more"), "{few}");
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

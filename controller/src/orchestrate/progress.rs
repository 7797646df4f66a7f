//! Live progress: one line per completed window (every agent has reported
//! it) with offered vs achieved rate, TTFT percentiles and errors, plus
//! lines for agent and phase events. Line-oriented so it reads the same on a
//! terminal and in CI logs. Joins are listed one by one only for the first
//! [`JOIN_LINES`] agents; a fleet of thousands gets a count at most once a
//! second instead of a line per agent.

use crate::analysis::merge::PhaseAccumulator;
use crate::model::PhaseSummary;
use crate::model::StepRecord;
use stampede_common::metric::Metric;
use stampede_common::proto::Hello;
use stampede_common::quantile::quantile_or_zero;
use stampede_plan::Phase;
use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Duration, Instant};

/// Agents whose joining gets a line of its own.
pub const JOIN_LINES: usize = 10;

/// Progress printer.
#[derive(Debug, Default)]
pub struct Progress {
    printed: BTreeSet<u32>,
    /// When the last count of joined agents was printed.
    join_count_at: Option<Instant>,
}

impl Progress {
    /// A printer writing to stdout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Print one event line.
    pub fn line(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    /// A new agent joined; `online` are connected now.
    pub fn joined(&mut self, hello: &Hello, online: usize) {
        if online <= JOIN_LINES {
            self.line(&format!(
                "agent {} joined (node {}, {} cores, v{})",
                hello.agent_id, hello.node_name, hello.cores, hello.version
            ));
            return;
        }
        let now = Instant::now();
        if self
            .join_count_at
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            self.join_count_at = Some(now);
            self.line(&format!("  {online} agents connected"));
        }
    }

    /// Every expected agent is connected (a line when they were too many to list).
    pub fn all_joined(&mut self, online: usize) {
        if online > JOIN_LINES {
            self.line(&format!("all {online} agents connected"));
        }
    }

    /// A phase (or a step of a stress phase) starts.
    pub fn phase_start(&mut self, phase: &Phase, agents: usize, step: Option<StepRecord>) {
        self.printed.clear();
        let load = match phase.offered_rate() {
            Some(r) => format!("{r:.2} req/s"),
            None => phase.kind.name().to_string(),
        };
        let kind = match step {
            Some(s) => format!("stress step {}", s.index + 1),
            None => phase.kind.name().to_string(),
        };
        self.line(&format!(
            "phase {} ({kind}, {load}) for {:.1} s on {agents} agent(s)",
            phase.name,
            phase.duration.as_secs_f64()
        ));
    }

    /// A phase's objectives were evaluated.
    pub fn verdict(&self, summary: &PhaseSummary) {
        let Some(passed) = summary.slo_passed else {
            return;
        };
        let failed: Vec<&str> = summary
            .slo
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.objective.as_str())
            .collect();
        let goodput = summary
            .goodput
            .map(|g| format!(", goodput {g:.2} req/s"))
            .unwrap_or_default();
        self.line(&format!(
            "  {}: objectives {}{goodput}",
            summary.label(1),
            if passed {
                "held".to_string()
            } else {
                format!("FAILED ({})", failed.join("; "))
            }
        ));
    }

    /// A window report arrived; print the window once all `expected` agents reported it.
    pub fn window(
        &mut self,
        phase: &Phase,
        index: u32,
        acc: &PhaseAccumulator,
        expected: u32,
        window: Duration,
    ) {
        let Some((agg, reports)) = acc.windows.get(&index) else {
            return;
        };
        if *reports < expected || !self.printed.insert(index) {
            return;
        }
        let secs = window.as_secs_f64();
        let c = &agg.counters;
        let ttft = agg.hist(Metric::Ttft);
        let ms = |q: f64| quantile_or_zero(ttft, q) / 1e3;
        let middle = window.mul_f64(f64::from(index) + 0.5);
        let offered = phase
            .offered_rate_at(middle)
            .map(|r| format!(" offered {r:.1}/s"))
            .unwrap_or_default();
        self.line(&format!(
            "  {} [{:>5.1}s/{:.0}s]{offered} sent {:.1}/s ok {} err {} skip {} | ttft p50 {:.1}ms p99 {:.1}ms | {:.0} tok/s | agents {reports}",
            phase.name,
            (f64::from(index) + 1.0) * secs,
            phase.duration.as_secs_f64(),
            c.sent as f64 / secs,
            c.ok,
            c.failed,
            c.skipped,
            ms(0.5),
            ms(0.99),
            c.output_tokens as f64 / secs,
        ));
    }
}

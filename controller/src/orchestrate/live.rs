//! Live Prometheus metrics of the controller while a run goes on: connected
//! agents, the phase running, and the merged totals so far (requests sent,
//! succeeded and failed by class, windows merged). Served by `controller run
//! --metrics-listen`, together with the live counters of any local agents.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

/// Process-wide live state of the controller.
#[derive(Debug, Default)]
pub struct Live {
    agents_connected: AtomicU64,
    windows_merged: AtomicU64,
    sent: AtomicU64,
    ok: AtomicU64,
    failed: Mutex<BTreeMap<String, u64>>,
    /// (plan index, name, kind) of the phase running.
    phase: Mutex<Option<(u32, String, String)>>,
}

/// The controller's live state.
pub static LIVE: LazyLock<Live> = LazyLock::new(Live::default);

impl Live {
    /// Agents connected now.
    pub fn agents(&self, n: usize) {
        self.agents_connected
            .store(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// A phase started (`Some`) or ended (`None`).
    pub fn phase(&self, phase: Option<(u32, &str, &str)>) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) =
            phase.map(|(i, n, k)| (i, n.to_string(), k.to_string()));
    }

    /// A window was merged.
    pub fn window(&self, c: &stampede_common::proto::Counters, errors: &[(String, u64)]) {
        self.windows_merged.fetch_add(1, Ordering::Relaxed);
        self.sent.fetch_add(c.sent, Ordering::Relaxed);
        self.ok.fetch_add(c.ok, Ordering::Relaxed);
        let mut f = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        for (class, n) in errors {
            let e = f.entry(class.clone()).or_default();
            *e = e.saturating_add(*n);
        }
    }

    /// The Prometheus text page of the controller.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(1024);
        let one = |out: &mut String, name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        one(
            &mut out,
            "stampede_controller_agents_connected",
            "gauge",
            "Agents connected now.",
            self.agents_connected.load(Ordering::Relaxed),
        );
        one(
            &mut out,
            "stampede_controller_windows_merged_total",
            "counter",
            "Agent window reports merged.",
            self.windows_merged.load(Ordering::Relaxed),
        );
        one(
            &mut out,
            "stampede_controller_requests_sent_total",
            "counter",
            "Requests sent, from merged windows.",
            self.sent.load(Ordering::Relaxed),
        );
        one(
            &mut out,
            "stampede_controller_requests_ok_total",
            "counter",
            "Requests that succeeded, from merged windows.",
            self.ok.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP stampede_controller_requests_failed_total Requests that failed, by class, from merged windows.\n\
             # TYPE stampede_controller_requests_failed_total counter"
        );
        for (class, n) in self.failed.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "stampede_controller_requests_failed_total{{class=\"{}\"}} {n}",
                stampede_runtime::metrics::escape(class)
            );
        }
        let _ = writeln!(
            out,
            "# HELP stampede_controller_phase_running The phase running now (1).\n\
             # TYPE stampede_controller_phase_running gauge"
        );
        if let Some((i, name, kind)) = &*self.phase.lock().unwrap_or_else(|e| e.into_inner()) {
            let _ = writeln!(
                out,
                "stampede_controller_phase_running{{index=\"{i}\",phase=\"{}\",kind=\"{kind}\"}} 1",
                stampede_runtime::metrics::escape(name)
            );
        }
        out
    }
}

/// The page served by `controller run --metrics-listen`: the controller's
/// metrics and those of the agents running in this process.
pub fn page() -> String {
    LIVE.render() + &stampede_agent::live::LIVE.render()
}

//! Live Prometheus metrics of the controller while a run goes on: connected
//! agents, the phase running, and for every phase so far its merged
//! latency histograms (TTFT, ITL, E2E, TPOT, schedule lag), request and
//! token counters and failures by class, in total and per breakdown.
//! Served by `controller run --metrics-listen`, together with the live
//! counters of any local agents.
//!
//! The phase run publishes a [`Snapshot`] of its exact merge at most every
//! [`PUBLISH_EVERY`] and once at its end; the page is rendered from the
//! latest ones at each scrape.

mod page;
pub mod series;

use self::series::Snapshot;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// How often a running phase refreshes its snapshot, at most.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(500);

/// Process-wide live state of the controller.
#[derive(Debug, Default)]
pub struct Live {
    agents_connected: AtomicU64,
    windows_merged: AtomicU64,
    state: Mutex<State>,
}

/// What the run has shown so far.
#[derive(Debug, Default)]
struct State {
    run: String,
    /// (plan index, name, kind) of the phase running.
    running: Option<(u32, String, String)>,
    /// By plan index: name, what earlier runs of the phase merged (repeats,
    /// stress steps) and what the running one has merged so far.
    phases: BTreeMap<u32, (String, Snapshot, Snapshot)>,
}

/// The controller's live state.
pub static LIVE: LazyLock<Live> = LazyLock::new(Live::default);

impl Live {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A run started: the series of an earlier run in this process go.
    pub fn run(&self, run_id: &str) {
        *self.state() = State {
            run: run_id.to_string(),
            ..State::default()
        };
        self.windows_merged.store(0, Ordering::Relaxed);
    }

    /// Agents connected now.
    pub fn agents(&self, n: usize) {
        self.agents_connected
            .store(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// A phase started (`Some`) or ended (`None`).
    pub fn phase(&self, phase: Option<(u32, &str, &str)>) {
        let mut s = self.state();
        if let Some((i, name, _)) = phase {
            s.phases
                .entry(i)
                .or_insert_with(|| (name.to_string(), Snapshot::default(), Snapshot::default()));
        }
        s.running = phase.map(|(i, n, k)| (i, n.to_string(), k.to_string()));
    }

    /// A window was merged.
    pub fn window(&self) {
        self.windows_merged.fetch_add(1, Ordering::Relaxed);
    }

    /// What phase `index` has merged so far in its current run.
    pub fn publish(&self, index: u32, snap: Snapshot) {
        if let Some(p) = self.state().phases.get_mut(&index) {
            p.2 = snap;
        }
    }

    /// The current run of phase `index` ended with `last`: what it merged
    /// is kept, and a next run of the phase adds to it.
    pub fn finished(&self, index: u32, last: Snapshot) {
        if let Some(p) = self.state().phases.get_mut(&index) {
            p.1.add(&last);
            p.2 = Snapshot::default();
        }
    }

    /// The Prometheus text page of the controller.
    pub fn render(&self) -> String {
        let view = {
            let s = self.state();
            page::View {
                run: s.run.clone(),
                agents: self.agents_connected.load(Ordering::Relaxed),
                windows: self.windows_merged.load(Ordering::Relaxed),
                running: s.running.clone(),
                phases: s
                    .phases
                    .values()
                    .map(|(name, done, current)| {
                        let mut all = done.clone();
                        all.add(current);
                        (name.clone(), all)
                    })
                    .collect(),
            }
        };
        page::render(view)
    }
}

/// The page served by `controller run --metrics-listen`: the controller's
/// metrics and those of the agents running in this process.
pub fn page() -> String {
    LIVE.render() + &stampede_agent::live::LIVE.render()
}

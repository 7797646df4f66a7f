//! The run loop: wait for agents, estimate their clocks, then for each phase
//! shard the arrival process across the agents, start them all at one instant
//! (in the controller's clock, translated per agent), merge their windows as
//! they stream in, and summarize.

use crate::model::StepRecord;
use crate::model::{AgentInfo, PhaseSummary};
use crate::orchestrate::clock::{self, ClockEstimate, ProbeSample};
use crate::orchestrate::progress::Progress;
use crate::orchestrate::service::{AgentTx, Event};
use crate::results::rawlog::{RawLog, RawLogError, Record};
use stampede_common::proto::{
    ClockProbe, Hello, SessionResponse, Stop, WindowReport, session_request::Kind as Up,
    session_response::Kind as Down,
};
use stampede_plan::{PhaseKind, Plan};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Clock probes per agent.
const PROBES: u64 = 8;
/// How long one probe may take: probing ends at most `PROBES` times this
/// after it starts.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One agent's clock probing: the probe awaited (its id, and when it left
/// in the controller's clock), how many it was sent, and its samples.
#[derive(Debug, Default)]
struct Probing {
    awaited: Option<(u64, i64)>,
    sent: u64,
    samples: Vec<ProbeSample>,
}

/// Extra wait past a phase's end + drain for the last reports.
pub(super) const REPORT_GRACE: Duration = Duration::from_secs(10);

/// Errors of the run loop.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Not all agents joined in time.
    #[error("only {} of {expected} agents joined within {}s (joined: {})", joined.len(), waited.as_secs(), if joined.is_empty() { "none".to_string() } else { joined.join(", ") })]
    AgentsMissing {
        /// Agents expected.
        expected: u32,
        /// Agents that joined.
        joined: Vec<String>,
        /// How long the controller waited.
        waited: Duration,
    },
    /// Nodes that should run an agent have none joined.
    #[error("no agent joined within {}s from {} of {expected} eligible node(s): {}", waited.as_secs(), missing.len(), missing.join(", "))]
    NodesMissing {
        /// Eligible nodes without a joined agent.
        missing: Vec<String>,
        /// Eligible nodes.
        expected: usize,
        /// How long the controller waited.
        waited: Duration,
    },
    /// Every agent was lost.
    #[error("no agents left to run phase {0:?}")]
    NoAgents(String),
    /// The agents' shard weights cannot be used.
    #[error(
        "cannot split the phase between the agents by their cores: {0} (set agents.shard_weights = \"equal\")"
    )]
    Shard(String),
    /// Interrupted while waiting for agents.
    #[error("interrupted before the first phase")]
    Interrupted,
    /// The session service stopped.
    #[error("the agent session service stopped unexpectedly")]
    ServiceGone,
    /// The raw results could not be written.
    #[error("cannot record results: {0}")]
    RawLog(#[from] RawLogError),
    /// The per-request records could not be written.
    #[error("cannot record requests: {0}")]
    Records(#[from] crate::results::records::RecordsError),
}

pub(super) struct AgentState {
    pub(super) hello: Hello,
    pub(super) tx: AgentTx,
    pub(super) clock: Option<ClockEstimate>,
    pub(super) connected: bool,
    /// Its current session's number (see `Event::Joined`).
    pub(super) session: u64,
}

/// What a joining agent is to the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Joining {
    /// Never seen before.
    New,
    /// A known agent's process, back with a new session.
    Reconnected,
    /// A known agent id in a new process: its predecessor is gone.
    Restarted,
}

/// What the request looks like, resolved for this run.
#[derive(Debug, Clone)]
pub struct ResolvedTarget {
    /// Base URL requests go to.
    pub base_url: String,
    /// Synthetic prompt text.
    pub prompt: String,
    /// Server-metrics pages to scrape (the plan's, or the built-in simulator's).
    pub metrics_urls: Vec<String>,
    /// One-token words of the target's tokenizer (empty: the built-in list).
    pub prompt_words: Vec<String>,
}

/// Runs a validated plan over the agents that join through `events`.
pub struct Orchestrator {
    pub(super) plan: Plan,
    pub(super) target: ResolvedTarget,
    pub(super) events: mpsc::Receiver<Event>,
    pub(super) agents: BTreeMap<String, AgentState>,
    /// How many of `agents` are connected (kept with them: counting at
    /// every join would cost the whole fleet per join).
    online: usize,
    pub(super) interrupt: CancellationToken,
    pub(super) progress: Progress,
    pub(super) raw: Option<RawLog>,
    /// Wire number of the next assignment.
    pub(super) next_slot: u32,
    /// Scrapes the target's metrics during each phase, when the plan asks.
    pub(super) scraper: Option<crate::analysis::server_metrics::Scraper>,
    /// Fires the phases' fault actions, when the plan has any.
    pub(super) injector: Option<crate::orchestrate::fault_actions::Injector>,
}

impl Orchestrator {
    /// A run loop for `plan`, fed by the session service's `events`.
    pub fn new(
        plan: Plan,
        target: ResolvedTarget,
        events: mpsc::Receiver<Event>,
        interrupt: CancellationToken,
    ) -> Self {
        let scraper = plan.server_metrics.as_ref().and_then(|m| {
            let client = reqwest::Client::builder()
                .timeout(m.timeout)
                .user_agent(concat!("stampede-controller/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| tracing::error!("cannot build the metrics client: {e}"))
                .ok()?;
            Some(crate::analysis::server_metrics::Scraper {
                client,
                urls: target.metrics_urls.clone(),
                families: m.families.clone(),
                interval: m.interval,
            })
        });
        let injector = plan
            .phases
            .iter()
            .any(|p| !p.faults.is_empty())
            .then(crate::orchestrate::fault_actions::Injector::default);
        Self {
            scraper,
            injector,
            plan,
            target,
            events,
            agents: BTreeMap::new(),
            online: 0,
            interrupt,
            progress: Progress::new(),
            raw: None,
            next_slot: 0,
        }
    }

    /// Fault actions on the simulator go to the one at `base_url` (the
    /// built-in simulator this run started) unless they name their own.
    pub fn simulator_at(&mut self, base_url: &str) {
        if let Some(i) = &mut self.injector {
            i.set_simulator(base_url);
        }
    }

    /// Kubernetes fault actions act on the plan's cluster, through `client`
    /// when given (else connected to when an action fires).
    pub fn cluster_for_faults(&mut self, client: Option<crate::orchestrate::k8s::KubeClient>) {
        let k = self.plan.kubernetes.clone().unwrap_or_default();
        if let Some(i) = &mut self.injector {
            i.set_cluster(k, client);
        }
    }

    /// Append every accepted report and phase event to `raw` as it happens.
    pub fn record_to(&mut self, raw: RawLog) {
        self.raw = Some(raw);
    }

    pub(super) fn record(&mut self, r: &Record) -> Result<(), RunError> {
        match &mut self.raw {
            Some(raw) => Ok(raw.append(r)?),
            None => Ok(()),
        }
    }

    /// Record an accepted window report (`Record::window`'s line).
    pub(super) fn record_window(
        &mut self,
        phase: u32,
        agent: &str,
        w: &WindowReport,
    ) -> Result<(), RunError> {
        match &mut self.raw {
            Some(raw) => Ok(raw.append_window(phase, agent, w)?),
            None => Ok(()),
        }
    }

    /// Hold the records from now on until [`Self::release_records`] writes
    /// them at once (see `RawLog::hold`).
    pub(super) fn hold_records(&mut self) {
        if let Some(raw) = &mut self.raw {
            raw.hold();
        }
    }

    /// Write the records held since [`Self::hold_records`].
    pub(super) fn release_records(&mut self) -> Result<(), RunError> {
        match &mut self.raw {
            Some(raw) => Ok(raw.release()?),
            None => Ok(()),
        }
    }

    /// Agents seen so far, with their clock estimates.
    pub fn agent_infos(&self) -> Vec<AgentInfo> {
        self.agents
            .iter()
            .map(|(id, a)| {
                let c = a.clock.unwrap_or_default();
                AgentInfo {
                    id: id.clone(),
                    node: a.hello.node_name.clone(),
                    cores: a.hello.cores,
                    version: a.hello.version.clone(),
                    clock_offset_ms: c.offset_nanos as f64 / 1e6,
                    clock_rtt_ms: c.rtt_nanos as f64 / 1e6,
                }
            })
            .collect()
    }

    pub(super) fn connected(&self) -> Vec<String> {
        self.agents
            .iter()
            .filter(|(_, a)| a.connected)
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub(super) fn on_join(&mut self, hello: Hello, tx: AgentTx, session: u64) -> Joining {
        let joining = self.join(hello, tx, session);
        crate::orchestrate::live::LIVE.agents(self.online);
        joining
    }

    fn join(&mut self, hello: Hello, tx: AgentTx, session: u64) -> Joining {
        if let Some(a) = self.agents.get_mut(&hello.agent_id) {
            // A known agent: it keeps its clock estimate (a restarted one
            // runs on the same host's clock).
            let restarted = a.hello.incarnation != 0 && a.hello.incarnation != hello.incarnation;
            let how = if restarted {
                "restarted"
            } else {
                "reconnected"
            };
            self.progress
                .line(&format!("agent {} {how}", hello.agent_id));
            a.hello = hello;
            a.tx = tx;
            self.online += usize::from(!a.connected);
            a.connected = true;
            a.session = session;
            return if restarted {
                Joining::Restarted
            } else {
                Joining::Reconnected
            };
        }
        self.online += 1;
        self.progress.joined(&hello, self.online);
        self.agents.insert(
            hello.agent_id.clone(),
            AgentState {
                hello,
                tx,
                clock: None,
                connected: true,
                session,
            },
        );
        Joining::New
    }

    /// `session` of `agent` ended; `false` when a later session of the
    /// same agent had taken over (nothing changes then).
    pub(super) fn on_left(&mut self, agent: &str, reason: &str, session: u64) -> bool {
        match self.agents.get_mut(agent) {
            Some(a) if a.session == session => {
                self.online -= usize::from(a.connected);
                a.connected = false;
            }
            _ => return false,
        }
        crate::orchestrate::live::LIVE.agents(self.online);
        self.progress.line(&format!("agent {agent} left: {reason}"));
        true
    }

    pub(super) async fn next_event(&mut self) -> Result<Event, RunError> {
        self.events.recv().await.ok_or(RunError::ServiceGone)
    }

    /// Wait until the plan's number of agents has joined.
    pub async fn wait_for_agents(&mut self) -> Result<(), RunError> {
        let expected = self.plan.agents.count;
        self.progress
            .line(&format!("waiting for {expected} agent(s)"));
        if self.wait_until(|o| o.online >= expected as usize).await? {
            self.progress.all_joined(self.online);
            return Ok(());
        }
        Err(RunError::AgentsMissing {
            expected,
            joined: self.connected(),
            waited: self.plan.agents.join_timeout,
        })
    }

    /// Wait until an agent has joined from every node in `nodes` (agents on
    /// Kubernetes take their node's name as their id).
    pub async fn wait_for_nodes(&mut self, nodes: &BTreeSet<String>) -> Result<(), RunError> {
        self.progress.line(&format!(
            "waiting for an agent on each of {} node(s)",
            nodes.len()
        ));
        if self
            .wait_until(|o| {
                // Counted first: listing who is missing costs the whole fleet.
                o.online >= nodes.len()
                    && crate::orchestrate::k8s::join::missing(nodes, &o.connected()).is_empty()
            })
            .await?
        {
            return Ok(());
        }
        Err(RunError::NodesMissing {
            missing: crate::orchestrate::k8s::join::missing(nodes, &self.connected()),
            expected: nodes.len(),
            waited: self.plan.agents.join_timeout,
        })
    }

    /// Take joins and leaves until `done` holds (`true`) or
    /// `agents.join_timeout` passes (`false`).
    async fn wait_until(&mut self, done: impl Fn(&Self) -> bool) -> Result<bool, RunError> {
        let deadline = Instant::now() + self.plan.agents.join_timeout;
        while !done(self) {
            tokio::select! {
                ev = self.events.recv() => match ev.ok_or(RunError::ServiceGone)? {
                    Event::Joined { hello, tx, session } => {
                        self.on_join(hello, tx, session);
                    }
                    Event::Left { agent, reason, session } => {
                        if self.on_left(&agent, &reason, session) {
                            self.agents.remove(&agent);
                        }
                    }
                    Event::Message { .. } => {}
                },
                () = tokio::time::sleep_until(deadline) => return Ok(false),
                () = self.interrupt.cancelled() => return Err(RunError::Interrupted),
            }
        }
        Ok(true)
    }

    /// Probe the clocks of connected agents that have no estimate yet. Each
    /// agent gets its next probe as soon as it answers the last, so probing
    /// takes about [`PROBES`] of each agent's own round trips, not
    /// [`PROBES`] rounds each as long as the slowest reply of the fleet. One
    /// that leaves and comes back meanwhile is probed again on its new
    /// session, with probe ids it has not had.
    pub async fn estimate_clocks(&mut self) -> Result<(), RunError> {
        let mut probing: HashMap<String, Probing> = self
            .agents
            .iter()
            .filter(|(_, a)| a.connected && a.clock.is_none())
            .map(|(id, _)| (id.clone(), Probing::default()))
            .collect();
        let mut outstanding = 0usize;
        for (id, p) in &mut probing {
            outstanding += usize::from(self.probe_next(id, p).await);
        }
        let deadline = Instant::now() + PROBE_TIMEOUT * PROBES as u32;
        while outstanding > 0 {
            let ev = tokio::select! {
                ev = self.next_event() => ev?,
                () = tokio::time::sleep_until(deadline) => break,
            };
            let (id, answered) = match ev {
                Event::Message {
                    agent,
                    kind: Up::ClockProbeReply(r),
                    at_unix_nanos,
                } => (agent, Some((r, at_unix_nanos))),
                Event::Message { .. } => continue,
                Event::Joined { hello, tx, session } => {
                    let id = hello.agent_id.clone();
                    self.on_join(hello, tx, session);
                    (id, None)
                }
                Event::Left {
                    agent,
                    reason,
                    session,
                } => {
                    let left = self.on_left(&agent, &reason, session);
                    if let Some(p) = probing.get_mut(&agent).filter(|_| left) {
                        outstanding -= usize::from(p.awaited.take().is_some());
                    }
                    continue;
                }
            };
            let Some(p) = probing.get_mut(&id) else {
                continue;
            };
            match (answered, p.awaited) {
                (Some((r, t3)), Some((probe, t0))) if r.probe_id == probe => {
                    p.samples.push(ProbeSample {
                        t0,
                        t1: r.agent_receive_unix_nanos,
                        t2: r.agent_send_unix_nanos,
                        t3,
                    });
                }
                // On a new session: a probe sent on the old one may never be
                // answered, so go on with a fresh one.
                (None, _) => {}
                _ => continue,
            }
            outstanding -= usize::from(p.awaited.take().is_some());
            outstanding += usize::from(self.probe_next(&id, p).await);
        }
        for (id, p) in probing {
            if let (Some(a), Some(est)) = (self.agents.get_mut(&id), clock::best(&p.samples)) {
                a.clock = Some(est);
            }
        }
        Ok(())
    }

    /// Send agent `id` its next clock probe, unless it has all its samples,
    /// has had twice [`PROBES`] probes, or is not connected; whether one is
    /// now awaited.
    async fn probe_next(&self, id: &str, p: &mut Probing) -> bool {
        if p.samples.len() >= PROBES as usize || p.sent >= 2 * PROBES {
            return false;
        }
        let Some(a) = self.agents.get(id).filter(|a| a.connected) else {
            return false;
        };
        let t0 = clock::now_unix_nanos();
        let probe = ClockProbe {
            probe_id: p.sent,
            controller_send_unix_nanos: t0,
        };
        let sent = a.tx.send(Ok(SessionResponse {
            kind: Some(Down::ClockProbe(probe)),
        }));
        if sent.await.is_err() {
            return false;
        }
        p.awaited = Some((p.sent, t0));
        p.sent += 1;
        true
    }

    /// Run phase `index` (in repeat `repeat`, 0-based) and summarize it: one
    /// summary, or one per step of a stress phase.
    pub async fn run_phase(
        &mut self,
        index: usize,
        repeat: u32,
    ) -> Result<Vec<PhaseSummary>, RunError> {
        let planned = self.plan.phases[index].clone();
        let window = self.plan.window;
        let PhaseKind::Stress(cfg) = planned.kind else {
            let (mut summary, acc) = self.run_assignment(index, repeat, &planned, None).await?;
            crate::analysis::verdict::apply(&planned, &mut summary, &acc, window);
            self.progress.verdict(&summary);
            return Ok(vec![summary]);
        };
        let mut search = crate::analysis::stress::StressSearch::new(cfg);
        let mut out = Vec::new();
        let reason = loop {
            if self.interrupted() {
                break crate::model::StopReason::Interrupted;
            }
            let rate = match search.next_rate() {
                Ok(rate) => rate,
                Err(reason) => break reason,
            };
            let step = StepRecord {
                index: out.len() as u32,
                rate,
            };
            let span = crate::orchestrate::spans::step(&self.plan, step.index, rate);
            let (mut summary, acc) = self
                .run_assignment(index, repeat, &planned.stress_step(rate), Some(step))
                .instrument(span)
                .await?;
            crate::analysis::verdict::apply(&planned, &mut summary, &acc, window);
            self.progress.verdict(&summary);
            let cut = summary.stopped_early;
            if !cut {
                search.record(rate, summary.slo_passed.unwrap_or(true));
            }
            out.push(summary);
            if cut {
                break crate::model::StopReason::Interrupted;
            }
        };
        self.progress.line(&format!(
            "phase {}: knee {} ({})",
            planned.name,
            search
                .knee()
                .map_or_else(|| "not found".to_string(), |k| format!("{k:.2} req/s")),
            reason.describe()
        ));
        Ok(out)
    }

    /// Send `msg` to agent `id` if it is known; a closed session is the
    /// session service's to report.
    pub(super) async fn send(&self, id: &str, msg: Down) {
        if let Some(a) = self.agents.get(id) {
            let _ = a.tx.send(Ok(SessionResponse { kind: Some(msg) })).await;
        }
    }

    /// Tell every connected agent the run is over.
    pub async fn finish(&mut self, reason: &str) {
        for a in self.agents.values().filter(|a| a.connected) {
            let stop = Stop {
                reason: reason.to_string(),
                abort: true,
            };
            let _ =
                a.tx.send(Ok(SessionResponse {
                    kind: Some(Down::Stop(stop)),
                }))
                .await;
        }
    }

    /// Whether a stop was requested.
    pub fn interrupted(&self) -> bool {
        self.interrupt.is_cancelled()
    }
}

pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

//! The run loop: wait for agents, estimate their clocks, then for each phase
//! shard the arrival process across the agents, start them all at one instant
//! (in the controller's clock, translated per agent), merge their windows as
//! they stream in, and summarize.

use crate::analysis::merge::{Offered, PhaseAccumulator};
use crate::model::StepRecord;
use crate::model::{AgentInfo, PhaseSummary, Redistribution};
use crate::orchestrate::clock::{self, ClockEstimate, ProbeSample};
use crate::orchestrate::progress::Progress;
use crate::orchestrate::service::{AgentTx, Event};
use crate::results::rawlog::{RawLog, RawLogError, Record};
use stampede_common::proto::{
    self, ClockProbe, Hello, LoadShape, PhaseAssignment, SessionResponse, Stop, load_shape::Shape,
    session_request::Kind as Up, session_response::Kind as Down,
};
use stampede_common::shard::{self, ShardMap};
use stampede_plan::{Api, Phase, PhaseKind, Plan, ShardWeights};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Clock probes per agent.
const PROBES: u64 = 8;
/// How long to wait for one probe round.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Extra wait past a phase's end + drain for the last reports.
const REPORT_GRACE: Duration = Duration::from_secs(10);

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
}

struct AgentState {
    hello: Hello,
    tx: AgentTx,
    clock: Option<ClockEstimate>,
    connected: bool,
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
    plan: Plan,
    target: ResolvedTarget,
    events: mpsc::Receiver<Event>,
    agents: BTreeMap<String, AgentState>,
    interrupt: CancellationToken,
    progress: Progress,
    raw: Option<RawLog>,
    /// Wire number of the next assignment.
    next_slot: u32,
    /// Scrapes the target's metrics during each phase, when the plan asks.
    scraper: Option<crate::analysis::server_metrics::Scraper>,
    /// Fires the phases' fault actions, when the plan has any.
    injector: Option<crate::orchestrate::fault_actions::Injector>,
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

    fn record(&mut self, r: &Record) -> Result<(), RunError> {
        match &mut self.raw {
            Some(raw) => Ok(raw.append(r)?),
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

    fn connected(&self) -> Vec<String> {
        self.agents
            .iter()
            .filter(|(_, a)| a.connected)
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn on_join(&mut self, hello: Hello, tx: AgentTx) {
        self.join(hello, tx);
        crate::orchestrate::live::LIVE.agents(self.connected().len());
    }

    fn join(&mut self, hello: Hello, tx: AgentTx) {
        if let Some(a) = self.agents.get_mut(&hello.agent_id) {
            // A known agent reconnecting: it keeps its clock estimate.
            self.progress
                .line(&format!("agent {} reconnected", hello.agent_id));
            a.hello = hello;
            a.tx = tx;
            a.connected = true;
            return;
        }
        self.progress.line(&format!(
            "agent {} joined (node {}, {} cores, v{})",
            hello.agent_id, hello.node_name, hello.cores, hello.version
        ));
        self.agents.insert(
            hello.agent_id.clone(),
            AgentState {
                hello,
                tx,
                clock: None,
                connected: true,
            },
        );
    }

    fn on_left(&mut self, agent: &str, reason: &str) {
        if let Some(a) = self.agents.get_mut(agent) {
            a.connected = false;
        }
        crate::orchestrate::live::LIVE.agents(self.connected().len());
        self.progress.line(&format!("agent {agent} left: {reason}"));
    }

    async fn next_event(&mut self) -> Result<Event, RunError> {
        self.events.recv().await.ok_or(RunError::ServiceGone)
    }

    /// Wait until the plan's number of agents has joined.
    pub async fn wait_for_agents(&mut self) -> Result<(), RunError> {
        let expected = self.plan.agents.count;
        self.progress
            .line(&format!("waiting for {expected} agent(s)"));
        if self
            .wait_until(|o| o.connected().len() >= expected as usize)
            .await?
        {
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
                crate::orchestrate::k8s::join::missing(nodes, &o.connected()).is_empty()
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
                    Event::Joined { hello, tx } => self.on_join(hello, tx),
                    Event::Left { agent, reason } => {
                        self.on_left(&agent, &reason);
                        self.agents.remove(&agent);
                    }
                    Event::Message { .. } => {}
                },
                () = tokio::time::sleep_until(deadline) => return Ok(false),
                () = self.interrupt.cancelled() => return Err(RunError::Interrupted),
            }
        }
        Ok(true)
    }

    /// Probe the clocks of connected agents that have no estimate yet.
    pub async fn estimate_clocks(&mut self) -> Result<(), RunError> {
        let targets: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, a)| a.connected && a.clock.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        let mut samples: BTreeMap<String, Vec<ProbeSample>> = BTreeMap::new();
        for round in 0..PROBES {
            let mut waiting: BTreeSet<String> = BTreeSet::new();
            let mut sent_at: BTreeMap<String, i64> = BTreeMap::new();
            for id in &targets {
                let Some(a) = self.agents.get(id).filter(|a| a.connected) else {
                    continue;
                };
                let t0 = clock::now_unix_nanos();
                let probe = ClockProbe {
                    probe_id: round,
                    controller_send_unix_nanos: t0,
                };
                if a.tx
                    .send(Ok(SessionResponse {
                        kind: Some(Down::ClockProbe(probe)),
                    }))
                    .await
                    .is_ok()
                {
                    waiting.insert(id.clone());
                    sent_at.insert(id.clone(), t0);
                }
            }
            let deadline = Instant::now() + PROBE_TIMEOUT;
            while !waiting.is_empty() {
                let ev = tokio::select! {
                    ev = self.next_event() => ev?,
                    () = tokio::time::sleep_until(deadline) => break,
                };
                match ev {
                    Event::Message {
                        agent,
                        kind: Up::ClockProbeReply(r),
                        at_unix_nanos,
                    } if r.probe_id == round => {
                        if let (true, Some(&t0)) = (waiting.remove(&agent), sent_at.get(&agent)) {
                            samples.entry(agent).or_default().push(ProbeSample {
                                t0,
                                t1: r.agent_receive_unix_nanos,
                                t2: r.agent_send_unix_nanos,
                                t3: at_unix_nanos,
                            });
                        }
                    }
                    Event::Message { .. } => {}
                    Event::Joined { hello, tx } => self.on_join(hello, tx),
                    Event::Left { agent, reason } => {
                        waiting.remove(&agent);
                        self.on_left(&agent, &reason);
                    }
                }
            }
        }
        for (id, s) in samples {
            if let (Some(a), Some(est)) = (self.agents.get_mut(&id), clock::best(&s)) {
                a.clock = Some(est);
            }
        }
        Ok(())
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

    /// Assign `phase` (planned as phase `index`) to the connected agents, merge
    /// their reports until all are done or lost, and summarize it.
    async fn run_assignment(
        &mut self,
        index: usize,
        repeat: u32,
        phase: &Phase,
        step: Option<StepRecord>,
    ) -> Result<(PhaseSummary, PhaseAccumulator), RunError> {
        self.estimate_clocks().await?;
        let active: Vec<String> = self
            .connected()
            .into_iter()
            .filter(|id| self.agents[id].clock.is_some())
            .collect();
        if active.is_empty() {
            return Err(RunError::NoAgents(phase.name.clone()));
        }
        // Every assignment has its own wire number, so a late report of one
        // step can never be merged into the next.
        let slot = self.next_slot;
        self.next_slot += 1;
        let weights = self.shard_weights(&active);
        let shards = ShardMap::weighted(&weights).map_err(|e| RunError::Shard(e.to_string()))?;
        let max_rtt = active
            .iter()
            .map(|id| self.agents[id].clock.unwrap_or_default().rtt_nanos)
            .max()
            .unwrap_or(0);
        let lead = Duration::from_millis(300)
            + Duration::from_nanos(u64::try_from(max_rtt).unwrap_or(0) * 2);
        let start_unix =
            clock::now_unix_nanos() + i64::try_from(lead.as_nanos()).unwrap_or(i64::MAX);
        let start = Instant::now() + lead;

        let mut pending: BTreeSet<String> = BTreeSet::new();
        for (i, id) in active.iter().enumerate() {
            let Some(assignment) = self.assignment(
                slot,
                index as u32,
                phase,
                (i as u32, &weights, &shards),
                start_unix,
                id,
            ) else {
                continue;
            };
            let a = &self.agents[id];
            let msg = SessionResponse {
                kind: Some(Down::PhaseAssignment(assignment)),
            };
            if a.tx.send(Ok(msg)).await.is_ok() {
                pending.insert(id.clone());
            }
        }
        // In assignment order: the order slices are handed out again in.
        let assigned: Vec<String> = active
            .iter()
            .filter(|id| pending.contains(*id))
            .cloned()
            .collect();
        self.record(&Record::PhaseStart {
            phase: index as u32,
            repeat,
            name: phase.name.clone(),
            start_unix_nanos: start_unix,
            window_ms: millis(self.plan.window),
            agents: assigned.clone(),
            shard_weights: self.shard_weights(&assigned),
            step,
        })?;
        self.progress.phase_start(phase, assigned.len(), step);
        crate::orchestrate::live::LIVE.phase(Some((index as u32, &phase.name, phase.kind.name())));
        let scrape_stop = CancellationToken::new();
        let (scrape_tx, mut scrape_rx) = mpsc::channel(256);
        let scrape_task = self
            .scraper
            .as_ref()
            .map(|s| s.spawn(start, scrape_tx, scrape_stop.clone()));
        let mut scrapes = Vec::new();
        let mut failed_scrapes = BTreeMap::new();
        let fault_stop = CancellationToken::new();
        let (fault_tx, mut fault_rx) = mpsc::channel(16);
        let fault_task = self
            .injector
            .as_ref()
            .filter(|_| !phase.faults.is_empty())
            .map(|i| i.spawn(start, phase.faults.clone(), fault_tx, fault_stop.clone()));

        let mut acc = PhaseAccumulator::default();
        let mut window_spans =
            crate::orchestrate::spans::Windows::new(&self.plan, start_unix, self.plan.window);
        let mut lost: Vec<String> = Vec::new();
        // Assigned agents whose session dropped, and when: they keep their
        // share (their load goes on) until `reconnect_grace` has passed.
        let mut away: BTreeMap<String, Instant> = BTreeMap::new();
        // Reshards sent, by agent: sent again when the agent reconnects.
        let mut reshards: BTreeMap<String, Vec<proto::Reshard>> = BTreeMap::new();
        let mut redistributed = Vec::new();
        let grace = self.plan.agents.reconnect_grace;
        let mut stopped_early = false;
        let mut deadline = start + phase.duration + phase.drain + REPORT_GRACE;
        let interrupt = self.interrupt.clone();
        while !pending.is_empty() {
            let ev = tokio::select! {
                ev = self.next_event() => ev?,
                Some(scraped) = scrape_rx.recv(), if scrape_task.is_some() => {
                    self.on_scrape(index as u32, scraped, &mut scrapes, &mut failed_scrapes)?;
                    continue;
                }
                Some(fired) = fault_rx.recv(), if fault_task.is_some() => {
                    self.on_fault(index as u32, fired)?;
                    continue;
                }
                () = tokio::time::sleep_until(deadline) => {
                    for id in std::mem::take(&mut pending) {
                        self.progress.line(&format!("agent {id} did not finish phase {} in time", phase.name));
                        lost.push(id);
                    }
                    break;
                }
                () = tokio::time::sleep_until(away.values().min().map_or(deadline, |t| *t + grace)), if !away.is_empty() => {
                    let now = Instant::now();
                    let gone: Vec<String> = away.iter().filter(|(_, t)| **t + grace <= now).map(|(id, _)| id.clone()).collect();
                    for id in gone {
                        away.remove(&id);
                        if pending.remove(&id) {
                            self.progress.line(&format!("agent {id} did not come back within {}s: lost", grace.as_secs()));
                            lost.push(id.clone());
                            let survivors: Vec<String> = assigned.iter().filter(|a| pending.contains(*a)).cloned().collect();
                            if let Some(r) = self.redistribute(slot, index as u32, phase, start, &id, &survivors, &mut reshards).await? {
                                redistributed.push(r);
                            }
                        }
                    }
                    continue;
                }
                () = interrupt.cancelled(), if !stopped_early => {
                    stopped_early = true;
                    self.progress.line("stop requested: ending the phase early (press Ctrl-C again to abort)");
                    for id in &pending {
                        let stop = Stop { reason: "stopped by the user".into(), abort: false };
                        let _ = self.agents[id].tx.send(Ok(SessionResponse { kind: Some(Down::Stop(stop)) })).await;
                    }
                    deadline = deadline.min(Instant::now() + phase.drain + REPORT_GRACE);
                    continue;
                }
            };
            match ev {
                Event::Message {
                    agent,
                    kind: Up::WindowReport(w),
                    ..
                } if w.phase_index == slot => {
                    let ack = SessionResponse {
                        kind: Some(Down::Ack(proto::Ack {
                            sequence: w.sequence,
                        })),
                    };
                    if let Some(a) = self.agents.get(&agent) {
                        let _ = a.tx.try_send(Ok(ack));
                    }
                    if !w.saturation.is_empty() && !acc.saturated.contains_key(&agent) {
                        self.progress.line(&format!("  warning: agent {agent} is saturated ({}): its latencies may include its own delay", w.saturation));
                    }
                    match acc.offer(&agent, &w) {
                        Offered::Merged(widx) => {
                            let errors: Vec<(String, u64)> = w
                                .errors
                                .iter()
                                .map(|e| (e.class.clone(), e.count))
                                .collect();
                            crate::orchestrate::live::LIVE
                                .window(&w.counters.unwrap_or_default(), &errors);
                            self.record(&Record::window(index as u32, &agent, &w))?;
                            let expected =
                                assigned.iter().filter(|id| !lost.contains(id)).count() as u32;
                            window_spans.merged(widx, &w.counters.unwrap_or_default(), expected);
                            self.progress
                                .window(phase, widx, &acc, expected, self.plan.window);
                        }
                        Offered::Rejected(e) => self.record(&Record::Rejected {
                            phase: index as u32,
                            agent,
                            reason: e.to_string(),
                        })?,
                        Offered::Duplicate => {}
                    }
                }
                Event::Message {
                    agent,
                    kind: Up::PhaseDone(d),
                    ..
                } if d.phase_index == slot => {
                    // The agent's start, in the controller's clock.
                    let offset = self
                        .agents
                        .get(&agent)
                        .and_then(|a| a.clock)
                        .unwrap_or_default()
                        .offset_nanos;
                    let started = if d.started_unix_nanos == 0 {
                        0
                    } else {
                        d.started_unix_nanos - offset
                    };
                    acc.done(&proto::PhaseDone {
                        started_unix_nanos: started,
                        ..d
                    });
                    self.record(&Record::PhaseDone {
                        phase: index as u32,
                        agent: agent.clone(),
                        arrivals_micros: d.arrivals_micros,
                        finished_micros: d.finished_micros,
                        started_unix_nanos: started,
                    })?;
                    pending.remove(&agent);
                }
                Event::Message { .. } => {}
                Event::Joined { hello, tx } => {
                    let id = hello.agent_id.clone();
                    self.on_join(hello, tx);
                    if lost.contains(&id) {
                        // Its share went to others: it must not send it too.
                        self.progress.line(&format!("agent {id} came back after its share was handed on; stopping its part of phase {}", phase.name));
                        let stop = Stop {
                            reason: "declared lost; share handed to other agents".into(),
                            abort: false,
                        };
                        let _ = self.agents[&id]
                            .tx
                            .send(Ok(SessionResponse {
                                kind: Some(Down::Stop(stop)),
                            }))
                            .await;
                    } else if away.remove(&id).is_some() || pending.contains(&id) {
                        for r in reshards.get(&id).into_iter().flatten() {
                            let _ = self.agents[&id]
                                .tx
                                .send(Ok(SessionResponse {
                                    kind: Some(Down::Reshard(r.clone())),
                                }))
                                .await;
                        }
                    } else {
                        self.progress
                            .line(&format!("agent {id} will take part from the next phase"));
                    }
                }
                Event::Left { agent, reason } => {
                    self.on_left(&agent, &reason);
                    if pending.contains(&agent) {
                        self.progress.line(&format!(
                            "agent {agent} keeps its share for up to {}s while it reconnects",
                            grace.as_secs()
                        ));
                        away.insert(agent, Instant::now());
                    }
                }
            }
        }
        // Actions not fired by now never will be: recorded as such.
        fault_stop.cancel();
        if let Some(task) = fault_task {
            // Until the task ends and drops its sender.
            while let Some(fired) = fault_rx.recv().await {
                self.on_fault(index as u32, fired)?;
            }
            let _ = task.await;
        }
        // The last scrape, after every agent is done: the phase's whole increase.
        scrape_stop.cancel();
        if let Some(task) = scrape_task {
            let _ = task.await;
            while let Ok(scraped) = scrape_rx.try_recv() {
                self.on_scrape(index as u32, scraped, &mut scrapes, &mut failed_scrapes)?;
            }
            if let Some(scraper) = self.scraper.clone() {
                for scraped in scraper.scrape_all(start).await {
                    self.on_scrape(index as u32, scraped, &mut scrapes, &mut failed_scrapes)?;
                }
            }
        }
        crate::orchestrate::live::LIVE.phase(None);
        self.record(&Record::PhaseEnd {
            phase: index as u32,
            lost_agents: lost.clone(),
            stopped_early,
            duplicates: acc.duplicates,
        })?;
        if let Some(raw) = &mut self.raw {
            raw.sync()?;
        }
        let run = crate::analysis::summary::PhaseRun {
            phase,
            seed: self.plan.seed,
            index: index as u32,
            window: self.plan.window,
            agents: assigned,
            lost,
            stopped_early,
            step,
            redistributed,
            scrapes: self
                .scraper
                .is_some()
                .then_some((scrapes.as_slice(), &failed_scrapes)),
        };
        let summary = crate::analysis::summary::phase_summary(run, &mut acc);
        Ok((summary, acc))
    }

    /// Record a scrape and keep it for the phase's summary.
    fn on_scrape(
        &mut self,
        phase: u32,
        scraped: crate::analysis::server_metrics::Scraped,
        scrapes: &mut Vec<crate::analysis::server_metrics::Scrape>,
        failed: &mut BTreeMap<String, u32>,
    ) -> Result<(), RunError> {
        use crate::analysis::server_metrics::Scraped;
        match scraped {
            Scraped::Page(page) => {
                self.record(&Record::Scrape {
                    phase,
                    url: page.url.clone(),
                    at_ms: page.at_ms,
                    types: page.types.clone(),
                    samples: page.samples.clone(),
                })?;
                scrapes.push(page);
            }
            Scraped::Failed { url, at_ms, reason } => {
                let n = failed.entry(url.clone()).or_default();
                if *n == 0 {
                    self.progress
                        .line(&format!("  warning: cannot scrape {url}: {reason}"));
                }
                *n += 1;
                self.record(&Record::ScrapeFailed {
                    phase,
                    url,
                    at_ms,
                    reason,
                })?;
            }
        }
        Ok(())
    }

    /// Record a fault action's outcome and announce it.
    fn on_fault(&mut self, phase: u32, fired: crate::model::FiredAction) -> Result<(), RunError> {
        self.progress.line(&format!(
            "  fault {}: {} {}",
            fired.index,
            fired.action,
            fired.outcome()
        ));
        self.record(&Record::Fault { phase, fired })
    }

    /// Hand lost agent `lost`'s share of the running phase to `survivors`
    /// from the next window boundary on; record and announce it.
    #[allow(clippy::too_many_arguments)]
    async fn redistribute(
        &mut self,
        slot: u32,
        index: u32,
        phase: &Phase,
        start: Instant,
        lost: &str,
        survivors: &[String],
        sent: &mut BTreeMap<String, Vec<proto::Reshard>>,
    ) -> Result<Option<Redistribution>, RunError> {
        let window = millis(self.plan.window).max(1);
        // Far enough ahead for the message to arrive before the boundary.
        let soon = millis(Instant::now().saturating_duration_since(start)) + 100;
        let from_ms = soon.div_ceil(window) * window;
        if survivors.is_empty() || from_ms >= millis(phase.duration) {
            return Ok(None);
        }
        let weights = self.shard_weights(survivors);
        ShardMap::weighted(&weights).map_err(|e| RunError::Shard(e.to_string()))?;
        let users = phase.users().unwrap_or(0);
        for (i, id) in survivors.iter().enumerate() {
            let r = proto::Reshard {
                phase_index: slot,
                shard: Some(shard::to_proto(i as u32, &weights)),
                from_ms,
                users,
            };
            sent.entry(id.clone()).or_default().push(r.clone());
            if let Some(a) = self.agents.get(id) {
                let _ =
                    a.tx.send(Ok(SessionResponse {
                        kind: Some(Down::Reshard(r)),
                    }))
                    .await;
            }
        }
        self.record(&Record::Reshard {
            phase: index,
            lost: lost.to_string(),
            agents: survivors.to_vec(),
            from_ms,
        })?;
        self.progress.line(&format!(
            "agent {lost}'s share goes to {} from {:.1} s into phase {}",
            survivors.join(", "),
            from_ms as f64 / 1e3,
            phase.name
        ));
        Ok(Some(Redistribution {
            lost: lost.to_string(),
            to: survivors.to_vec(),
            from_s: from_ms as f64 / 1e3,
        }))
    }

    /// Each agent's shard weight, in `agents` order.
    fn shard_weights(&self, agents: &[String]) -> Vec<u32> {
        agents
            .iter()
            .map(|id| match self.plan.agents.shard_weights {
                ShardWeights::Equal => 1,
                ShardWeights::Cores => self.agents.get(id).map_or(1, |a| a.hello.cores.max(1)),
            })
            .collect()
    }

    /// Agent `id`'s assignment for `phase`, as shard `i` of `shards`
    /// (built from `weights`); `None` when its share is empty.
    fn assignment(
        &self,
        slot: u32,
        index: u32,
        phase: &Phase,
        (i, weights, shards): (u32, &[u32], &ShardMap),
        start_unix: i64,
        id: &str,
    ) -> Option<PhaseAssignment> {
        let (shape, max_requests) = match phase.kind {
            PhaseKind::Constant { .. }
            | PhaseKind::Ramp { .. }
            | PhaseKind::Soak { .. }
            | PhaseKind::Stress(_) => {
                // A global bound M leaves each shard its arrivals below M.
                let share = phase.max_requests.map(|m| shards.owned_below(i, m));
                (
                    Shape::OpenLoop(crate::analysis::schedule::open_loop(
                        phase,
                        self.plan.seed,
                        index,
                    )),
                    share,
                )
            }
            PhaseKind::Replay { .. } => {
                // Sharded like any open loop.
                let share = phase.max_requests.map(|m| shards.owned_below(i, m));
                let (trace, time_scale) = phase.replayed()?;
                let replay = trace.to_proto(time_scale);
                (Shape::Replay(replay), share)
            }
            PhaseKind::Baseline | PhaseKind::Concurrency { .. } => {
                let users = phase.users().unwrap_or(1);
                let users_of = |j: u32| shards.owned_below(j, u64::from(users));
                let mine = users_of(i);
                if mine == 0 {
                    return None;
                }
                // Split a global bound in proportion to users, remainder to the first shards.
                let share = phase.max_requests.map(|m| {
                    let base = m * mine / u64::from(users);
                    let handed: u64 = (0..shards.count())
                        .map(|j| m * users_of(j) / u64::from(users))
                        .sum();
                    base + u64::from(u64::from(i) < m - handed)
                });
                (Shape::Concurrency(proto::Concurrency { users }), share)
            }
        };
        if max_requests == Some(0) {
            return None;
        }
        // Open loop: the bound is on arrival numbers, so it holds across reshards.
        let (max_requests, max_arrivals) = match shape {
            Shape::OpenLoop(_) | Shape::Replay(_) => (None, phase.max_requests),
            Shape::Concurrency(_) => (max_requests, None),
        };
        let offset = self
            .agents
            .get(id)
            .and_then(|a| a.clock)
            .unwrap_or_default()
            .offset_nanos;
        let plan = &self.plan;
        Some(PhaseAssignment {
            phase_index: slot,
            phase_name: phase.name.clone(),
            start_unix_nanos: start_unix + offset,
            duration_ms: millis(phase.duration),
            drain_ms: millis(phase.drain),
            window_ms: millis(plan.window),
            max_requests: max_requests.unwrap_or(0),
            shard: Some(shard::to_proto(i, weights)),
            load: Some(LoadShape { shape: Some(shape) }),
            request: Some(proto::RequestTemplate {
                base_url: self.target.base_url.clone(),
                api: match plan.target.api {
                    Api::Chat => proto::Api::Chat,
                    Api::Completions => proto::Api::Completions,
                } as i32,
                model: plan.target.model.clone(),
                prompt: self.target.prompt.clone(),
                prompt_words: self.target.prompt_words.clone(),
                max_tokens: plan.request.max_tokens,
                stream: plan.request.stream,
                timeout_ms: millis(plan.request.timeout),
                prompt_tokens_estimate: plan.request.prompt_tokens,
                headers: plan.target.headers.clone().into_iter().collect(),
                api_key_env: plan.target.api_key_env.clone().unwrap_or_default(),
                http2: plan.target.http2,
                first_token_timeout_ms: millis(plan.request.first_token_timeout),
                connect_timeout_ms: millis(plan.request.connect_timeout),
                ca_pem: plan.target.ca_pem.clone().unwrap_or_default(),
                insecure_tls: plan.target.insecure_tls,
                // Seeded per phase run (repeats and stress steps included), so
                // no run of a phase resends another's prompts.
                workload: Some(stampede_plan::workload::to_proto(
                    &plan.mix_for(phase),
                    plan.seed ^ u64::from(slot).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                )),
            }),
            max_in_flight: plan.agents.max_in_flight,
            goodput: crate::analysis::verdict::goodput_bounds(phase),
            max_arrivals: max_arrivals.unwrap_or(0),
            trace_context: crate::orchestrate::spans::assignment_context(plan),
            trace_sample_ratio: plan.tracing.map_or(0.0, |t| t.sample_ratio),
        })
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

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

//! One phase run, from assignment to summary, as a state machine: the
//! running phase's state lives in [`ActivePhase`], and each event of the run
//! — a window report, an agent done, joining, leaving, a reconnect grace
//! running out, the phase's end, a stop request, the deadline — is one
//! method on it. The loop in [`Orchestrator::run_assignment`] only waits for
//! the next event.
//!
//! Shares move with the agents: a lost agent's share goes to the others; an
//! agent that comes back — restarted (a new process), reconnected after its
//! share was handed on, or resumed after its dead-man's switch halted it —
//! takes a share back from the next window boundary.

use super::runner::{Joining, Orchestrator, REPORT_GRACE, RunError};
use crate::analysis::breakdown::EntryLabels;
use crate::analysis::merge::{Offered, PhaseAccumulator};
use crate::analysis::server_metrics::{Scrape, Scraped};
use crate::analysis::summary;
use crate::model::{FiredAction, PhaseSummary, Redistribution, StepRecord};
use crate::orchestrate::live::{self, LIVE, series::Running};
use crate::orchestrate::service::{AgentTx, Event};
use crate::orchestrate::spans;
use crate::results::manifest::redact_url_credentials;
use crate::results::rawlog::Record;
use crate::results::records::{PhaseInfo, PhaseRecords};
use stampede_common::proto::{
    self, Hello, PhaseDone, SessionResponse, Stop, WindowReport, session_request::Kind as Up,
    session_response::Kind as Down,
};
use stampede_plan::{Phase, PhaseKind};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A phase assigned to agents and not yet summarized.
pub(super) struct ActivePhase<'p> {
    /// The phase's number in the plan.
    index: u32,
    /// The assignment's wire number.
    slot: u32,
    phase: &'p Phase,
    step: Option<StepRecord>,
    /// The agreed start, in this process's clock and as Unix time.
    start: Instant,
    start_unix: i64,
    /// Agents given a share, in assignment order.
    assigned: Vec<String>,
    /// Each agent's latest slice.
    slices: BTreeMap<String, proto::Shard>,
    /// Agents sending the phase, as far as this side knows.
    running: BTreeSet<String>,
    /// Assigned agents not done yet.
    pending: BTreeSet<String>,
    /// Agents declared lost.
    lost: Vec<String>,
    /// Assigned agents whose session dropped, and when: they keep their share
    /// (their load goes on) until `reconnect_grace` has passed.
    away: BTreeMap<String, Instant>,
    /// Reshards sent, by agent: sent again when the agent reconnects.
    reshards: BTreeMap<String, Vec<proto::Reshard>>,
    redistributed: Vec<Redistribution>,
    grace: Duration,
    stopped_early: bool,
    /// The phase's planned end and the time reports get after it: an away
    /// agent does not hold the phase past it.
    ends: Instant,
    /// When agents still pending are given up on.
    deadline: Instant,
    acc: PhaseAccumulator,
    window_spans: spans::Windows,
    scraping: Background<Scraped>,
    scrapes: Vec<Scrape>,
    failed_scrapes: BTreeMap<String, u32>,
    faults: Background<FiredAction>,
    /// The phase's per-request records file, when the run records requests.
    records: Option<PhaseRecords>,
    /// What each workload entry is called and which model it asks for.
    labels: EntryLabels,
    /// What the live page shows of the phase, and when it is next refreshed.
    live: Running,
    live_due: Instant,
}

/// A task that runs beside the phase and sends what it finds.
struct Background<T> {
    rx: mpsc::Receiver<T>,
    task: Option<JoinHandle<()>>,
    stop: CancellationToken,
}

impl<T> Background<T> {
    fn channel(capacity: usize) -> (Self, mpsc::Sender<T>) {
        let (tx, rx) = mpsc::channel(capacity);
        let stop = CancellationToken::new();
        (
            Self {
                rx,
                task: None,
                stop,
            },
            tx,
        )
    }

    fn running(&self) -> bool {
        self.task.is_some()
    }
}

/// Where the phase starts and who runs it, as assigned.
pub(super) struct Assigned {
    pub(super) slot: u32,
    pub(super) start: Instant,
    pub(super) start_unix: i64,
    pub(super) agents: Vec<String>,
    /// Each agent's slice.
    pub(super) slices: BTreeMap<String, proto::Shard>,
}

/// A phase under way, as handing it out again needs it.
pub(super) struct Underway<'p> {
    pub(super) slot: u32,
    pub(super) index: u32,
    pub(super) phase: &'p Phase,
    pub(super) start: Instant,
    pub(super) start_unix: i64,
}

impl Orchestrator {
    /// Assign `phase` (planned as phase `index`) to the connected agents, merge
    /// their reports until all are done or lost, and summarize it.
    pub(super) async fn run_assignment(
        &mut self,
        index: usize,
        repeat: u32,
        phase: &Phase,
        step: Option<StepRecord>,
    ) -> Result<(PhaseSummary, PhaseAccumulator), RunError> {
        let assigned = self.assign(index as u32, repeat, phase, step).await?;
        let mut run = ActivePhase::new(self, index as u32, phase, step, assigned);
        run.records = self.open_records(&run)?;
        let interrupt = self.interrupt.clone();
        while !run.pending.is_empty() {
            let (deadline, grace_ends, ends) = (run.deadline, run.grace_ends(), run.ends);
            let (away, stopped_early) = (!run.away.is_empty(), run.stopped_early);
            let ev = tokio::select! {
                ev = self.next_event() => ev?,
                Some(scraped) = run.scraping.rx.recv(), if run.scraping.running() => {
                    run.on_scrape(self, scraped)?;
                    continue;
                }
                Some(fired) = run.faults.rx.recv(), if run.faults.running() => {
                    self.on_fault(run.index, fired)?;
                    continue;
                }
                () = tokio::time::sleep_until(deadline) => {
                    run.on_deadline(self);
                    break;
                }
                () = tokio::time::sleep_until(grace_ends.min(ends)), if away => {
                    if Instant::now() >= ends {
                        run.on_end_while_away(self);
                    } else {
                        run.on_grace_expired(self).await?;
                    }
                    continue;
                }
                () = interrupt.cancelled(), if !stopped_early => {
                    run.on_interrupt(self).await;
                    continue;
                }
            };
            run.on_event(self, ev).await?;
        }
        run.finish(self).await
    }
}

impl<'p> ActivePhase<'p> {
    /// The phase just assigned: its background scraping and fault actions started.
    fn new(
        o: &mut Orchestrator,
        index: u32,
        phase: &'p Phase,
        step: Option<StepRecord>,
        a: Assigned,
    ) -> Self {
        let (mut scraping, scrape_tx) = Background::channel(256);
        scraping.task = o
            .scraper
            .as_ref()
            .map(|s| s.spawn(a.start, scrape_tx, scraping.stop.clone()));
        let (mut faults, fault_tx) = Background::channel(16);
        faults.task = o
            .injector
            .as_ref()
            .filter(|_| !phase.faults.is_empty())
            .map(|i| i.spawn(a.start, phase.faults.clone(), fault_tx, faults.stop.clone()));
        Self {
            index,
            slot: a.slot,
            phase,
            step,
            start: a.start,
            start_unix: a.start_unix,
            pending: a.agents.iter().cloned().collect(),
            running: a.agents.iter().cloned().collect(),
            slices: a.slices,
            window_spans: spans::Windows::new(&o.plan, a.start_unix, o.plan.window),
            assigned: a.agents,
            lost: Vec::new(),
            away: BTreeMap::new(),
            reshards: BTreeMap::new(),
            redistributed: Vec::new(),
            grace: o.plan.agents.reconnect_grace,
            stopped_early: false,
            ends: a.start + phase.duration + REPORT_GRACE,
            deadline: a.start + phase.duration + phase.drain + REPORT_GRACE,
            acc: PhaseAccumulator::default(),
            scraping,
            scrapes: Vec::new(),
            failed_scrapes: BTreeMap::new(),
            faults,
            records: None,
            labels: EntryLabels::of(&o.plan, phase),
            live: Running::default(),
            live_due: Instant::now(),
        }
    }

    fn underway(&self) -> Underway<'p> {
        Underway {
            slot: self.slot,
            index: self.index,
            phase: self.phase,
            start: self.start,
            start_unix: self.start_unix,
        }
    }

    /// The earliest instant an away agent's grace runs out.
    fn grace_ends(&self) -> Instant {
        self.away
            .values()
            .min()
            .map_or(self.deadline, |t| *t + self.grace)
    }

    async fn on_event(&mut self, o: &mut Orchestrator, ev: Event) -> Result<(), RunError> {
        match ev {
            Event::Message {
                agent,
                kind: Up::WindowReport(w),
                ..
            } if w.phase_index == self.slot => self.on_windows(o, &agent, std::slice::from_ref(&w)),
            Event::Message {
                agent,
                kind: Up::WindowReports(b),
                ..
            } => self.on_windows(o, &agent, &b.reports),
            Event::Message {
                agent,
                kind: Up::PhaseDone(d),
                ..
            } if d.phase_index == self.slot => self.on_done(o, agent, d).await,
            Event::Message { .. } => Ok(()),
            Event::Joined { hello, tx, session } => self.on_join(o, hello, tx, session).await,
            Event::Left {
                agent,
                reason,
                session,
            } => {
                self.on_left(o, agent, &reason, session);
                Ok(())
            }
        }
    }

    /// Window reports that came in one message: those of this phase are
    /// merged and recorded (their records written at once), then
    /// acknowledged together (reports of another phase are left
    /// unacknowledged, as a lone one is).
    fn on_windows(
        &mut self,
        o: &mut Orchestrator,
        agent: &str,
        reports: &[WindowReport],
    ) -> Result<(), RunError> {
        let slot = self.slot;
        let mine: Vec<&WindowReport> = reports.iter().filter(|w| w.phase_index == slot).collect();
        let Some((first, more)) = mine.split_first() else {
            return Ok(());
        };
        o.hold_records();
        let taken = mine.iter().try_for_each(|w| self.on_window(o, agent, w));
        // Written before the acknowledgement: what is acknowledged is in the log.
        let written = o.release_records();
        taken.and(written)?;
        let ack = SessionResponse {
            kind: Some(Down::Ack(proto::Ack {
                sequence: first.sequence,
                more_sequences: more.iter().map(|w| w.sequence).collect(),
            })),
        };
        if let Some(a) = o.agents.get(agent) {
            let _ = a.tx.try_send(Ok(ack));
        }
        Ok(())
    }

    /// A window report of this phase: merged and recorded.
    fn on_window(
        &mut self,
        o: &mut Orchestrator,
        agent: &str,
        w: &WindowReport,
    ) -> Result<(), RunError> {
        if !w.saturation.is_empty() && !self.acc.saturated.contains_key(agent) {
            o.progress.line(&format!(
                "  warning: agent {agent} is saturated ({}): its latencies may include its own delay",
                w.saturation
            ));
        }
        match self.acc.offer(agent, w) {
            Offered::Merged(widx, decoded) => {
                LIVE.window();
                self.live.add(&decoded);
                if Instant::now() >= self.live_due {
                    LIVE.publish(self.index, self.live.snapshot(&self.labels));
                    self.live_due = Instant::now() + live::PUBLISH_EVERY;
                }
                o.record_window(self.index, agent, w)?;
                if let Some(records) = &mut self.records {
                    records.append(agent, &w.records)?;
                }
                // Lost agents are assigned ones, each listed once.
                let expected = self.assigned.len().saturating_sub(self.lost.len()) as u32;
                self.window_spans
                    .merged(widx, &w.counters.unwrap_or_default(), expected);
                o.progress
                    .window(self.phase, widx, &self.acc, expected, o.plan.window);
                Ok(())
            }
            Offered::Rejected(e) => o.record(&Record::Rejected {
                phase: self.index,
                agent: agent.to_string(),
                reason: e.to_string(),
            }),
            Offered::Duplicate => Ok(()),
        }
    }

    /// An agent finished its share: its start moved into this process's
    /// clock. One that halted for want of the controller, and is back while
    /// the phase goes on, takes its share back.
    async fn on_done(
        &mut self,
        o: &mut Orchestrator,
        agent: String,
        d: PhaseDone,
    ) -> Result<(), RunError> {
        let offset = o
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
        self.acc.done(&PhaseDone {
            started_unix_nanos: started,
            ..d
        });
        o.record(&Record::PhaseDone {
            phase: self.index,
            agent: agent.clone(),
            arrivals_micros: d.arrivals_micros,
            finished_micros: d.finished_micros,
            started_unix_nanos: started,
            halted: d.halted,
        })?;
        self.running.remove(&agent);
        if d.halted {
            o.progress.line(&format!(
                "agent {agent} had stopped its load: it lost the controller for {}s",
                o.plan.agents.halt_after.as_secs_f64()
            ));
            if o.agents.get(&agent).is_some_and(|a| a.connected) {
                return self.take_back(o, &agent, true).await;
            }
        }
        self.pending.remove(&agent);
        Ok(())
    }

    /// An agent (re)joined: a restarted one, or one whose share was handed
    /// on, takes a share back; an away one gets the reshards it missed; a
    /// new one waits for the next phase.
    async fn on_join(
        &mut self,
        o: &mut Orchestrator,
        hello: Hello,
        tx: AgentTx,
        session: u64,
    ) -> Result<(), RunError> {
        let id = hello.agent_id.clone();
        let joining = o.on_join(hello, tx, session);
        let was_away = self.away.remove(&id).is_some();
        let part = self.pending.contains(&id) || self.lost.contains(&id);
        match joining {
            Joining::Restarted if part => {
                // Its predecessor's slice and in-flight requests died with it.
                self.running.remove(&id);
                self.take_back(o, &id, true).await?;
            }
            Joining::Reconnected if self.lost.contains(&id) => {
                self.take_back(o, &id, false).await?;
            }
            Joining::Reconnected if was_away || self.pending.contains(&id) => {
                for r in self.reshards.get(&id).into_iter().flatten() {
                    o.send(&id, Down::Reshard(r.clone())).await;
                }
            }
            _ => o
                .progress
                .line(&format!("agent {id} will take part from the next phase")),
        }
        Ok(())
    }

    /// Agent `id` takes a share of the rest of the phase back from the next
    /// window boundary: its own slice when it still has one; when its share
    /// was handed on, an open-loop phase is split again among the agents
    /// sending it and `id` (a closed-loop one is not: the others run its
    /// users now, and users are never taken away). `fresh`: `id` is not
    /// sending the phase (a new process, or halted) and starts it anew.
    async fn take_back(
        &mut self,
        o: &mut Orchestrator,
        id: &str,
        fresh: bool,
    ) -> Result<(), RunError> {
        let u = self.underway();
        let handed_on = self.lost.iter().any(|a| a == id);
        let closed_loop = matches!(
            self.phase.kind,
            PhaseKind::Baseline | PhaseKind::Concurrency { .. }
        );
        let from_ms = o.next_boundary(&u);
        let (Some(from_ms), false) = (from_ms, handed_on && closed_loop) else {
            // Nothing it can take back: it is done with this phase.
            self.pending.remove(id);
            if !fresh {
                self.stop_handed_on(o, id).await;
            }
            return Ok(());
        };
        let sharing: Vec<String> = if handed_on {
            let sharing: Vec<String> = (self.assigned.iter())
                .filter(|a| self.running.contains(*a) || *a == id)
                .cloned()
                .collect();
            let moved = (&sharing[..], fresh.then_some(id));
            let slices = o.reshare(&u, moved, from_ms, &mut self.reshards).await?;
            self.slices.extend(slices);
            sharing
        } else if let Some(shard) = self.slices.get(id).cloned() {
            o.rejoin(&u, id, &shard, from_ms).await?;
            vec![id.to_string()]
        } else {
            self.pending.remove(id);
            return Ok(());
        };
        let r = o.record_reshare(&u, ("", id), &sharing, from_ms)?;
        self.redistributed.push(r);
        self.lost.retain(|a| a != id);
        self.pending.insert(id.to_string());
        self.running.insert(id.to_string());
        Ok(())
    }

    /// Stop `id`'s part of the phase: its share went to others.
    async fn stop_handed_on(&self, o: &mut Orchestrator, id: &str) {
        o.progress.line(&format!(
            "agent {id} came back after its share was handed on; stopping its part of phase {}",
            self.phase.name
        ));
        let stop = Stop {
            reason: "declared lost; share handed to other agents".into(),
            abort: false,
        };
        o.send(id, Down::Stop(stop)).await;
    }

    /// An agent's session dropped: it keeps its share while it may reconnect.
    fn on_left(&mut self, o: &mut Orchestrator, agent: String, reason: &str, session: u64) {
        if !o.on_left(&agent, reason, session) {
            return;
        }
        if self.pending.contains(&agent) {
            o.progress.line(&format!(
                "agent {agent} keeps its share for up to {}s while it reconnects",
                self.grace.as_secs()
            ));
            self.away.insert(agent, Instant::now());
        }
    }

    /// Away agents whose grace ran out are lost; their share goes to the rest.
    async fn on_grace_expired(&mut self, o: &mut Orchestrator) -> Result<(), RunError> {
        let now = Instant::now();
        let gone: Vec<String> = self
            .away
            .iter()
            .filter(|(_, t)| **t + self.grace <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            self.away.remove(&id);
            if !self.pending.remove(&id) {
                continue;
            }
            o.progress.line(&format!(
                "agent {id} did not come back within {}s: lost",
                self.grace.as_secs()
            ));
            self.lost.push(id.clone());
            self.running.remove(&id);
            let survivors: Vec<String> = self
                .assigned
                .iter()
                .filter(|a| self.pending.contains(*a))
                .cloned()
                .collect();
            let u = self.underway();
            let Some(from_ms) = o.next_boundary(&u).filter(|_| !survivors.is_empty()) else {
                continue;
            };
            let moved = (&survivors[..], None);
            let slices = o.reshare(&u, moved, from_ms, &mut self.reshards).await?;
            self.slices.extend(slices);
            let r = o.record_reshare(&u, (&id, ""), &survivors, from_ms)?;
            self.redistributed.push(r);
        }
        Ok(())
    }

    /// [`REPORT_GRACE`] past the phase's planned end: agents still away are
    /// lost (nothing is left to hand on, and they do not hold the phase).
    fn on_end_while_away(&mut self, o: &mut Orchestrator) {
        for (id, _) in std::mem::take(&mut self.away) {
            if self.pending.remove(&id) {
                o.progress.line(&format!(
                    "agent {id} was away when phase {} ended: lost",
                    self.phase.name
                ));
                self.lost.push(id.clone());
                self.running.remove(&id);
            }
        }
    }

    /// A stop request: agents end the phase early, and the deadline shrinks
    /// to the drain.
    async fn on_interrupt(&mut self, o: &mut Orchestrator) {
        self.stopped_early = true;
        o.progress
            .line("stop requested: ending the phase early (press Ctrl-C again to abort)");
        for id in &self.pending {
            let stop = Stop {
                reason: "stopped by the user".into(),
                abort: false,
            };
            o.send(id, Down::Stop(stop)).await;
        }
        self.deadline = self
            .deadline
            .min(Instant::now() + self.phase.drain + REPORT_GRACE);
    }

    /// The deadline passed: agents still pending are lost.
    fn on_deadline(&mut self, o: &mut Orchestrator) {
        for id in std::mem::take(&mut self.pending) {
            o.progress.line(&format!(
                "agent {id} did not finish phase {} in time",
                self.phase.name
            ));
            self.lost.push(id);
        }
    }

    /// A scrape of the target's metrics: recorded and kept for the summary.
    fn on_scrape(&mut self, o: &mut Orchestrator, scraped: Scraped) -> Result<(), RunError> {
        o.on_scrape(
            self.index,
            scraped,
            &mut self.scrapes,
            &mut self.failed_scrapes,
        )
    }

    /// Every agent is done or lost: collect the last fault outcomes and
    /// scrapes, record the phase's end, and summarize it.
    async fn finish(
        mut self,
        o: &mut Orchestrator,
    ) -> Result<(PhaseSummary, PhaseAccumulator), RunError> {
        // Actions not fired by now never will be: recorded as such.
        self.faults.stop.cancel();
        if let Some(task) = self.faults.task.take() {
            // Until the task ends and drops its sender.
            while let Some(fired) = self.faults.rx.recv().await {
                o.on_fault(self.index, fired)?;
            }
            let _ = task.await;
        }
        // The last scrape, after every agent is done: the phase's whole increase.
        self.scraping.stop.cancel();
        if let Some(task) = self.scraping.task.take() {
            let _ = task.await;
            while let Ok(scraped) = self.scraping.rx.try_recv() {
                self.on_scrape(o, scraped)?;
            }
            if let Some(scraper) = o.scraper.clone() {
                for scraped in scraper.scrape_all(self.start).await {
                    self.on_scrape(o, scraped)?;
                }
            }
        }
        LIVE.finished(self.index, self.live.snapshot(&self.labels));
        LIVE.phase(None);
        o.record(&Record::PhaseEnd {
            phase: self.index,
            lost_agents: self.lost.clone(),
            stopped_early: self.stopped_early,
            duplicates: self.acc.duplicates,
        })?;
        if let Some(raw) = &mut o.raw {
            raw.sync()?;
        }
        if let Some(records) = self.records.take() {
            records.close()?;
        }
        let run = summary::PhaseRun {
            phase: self.phase,
            seed: o.plan.seed,
            index: self.index,
            window: o.plan.window,
            agents: self.assigned,
            lost: self.lost,
            stopped_early: self.stopped_early,
            step: self.step,
            redistributed: self.redistributed,
            scrapes: o
                .scraper
                .is_some()
                .then_some((self.scrapes.as_slice(), &self.failed_scrapes)),
            labels: self.labels.clone(),
            percentiles: o.plan.percentiles.as_deref(),
        };
        let summary = summary::phase_summary(run, &mut self.acc);
        Ok((summary, self.acc))
    }
}

impl Orchestrator {
    /// The per-request records file of `run`, beside the raw log, when the
    /// plan records requests.
    fn open_records(&self, run: &ActivePhase<'_>) -> Result<Option<PhaseRecords>, RunError> {
        let (Some(raw), Some(_)) = (&self.raw, &self.plan.records) else {
            return Ok(None);
        };
        let info = PhaseInfo {
            name: run.phase.name.clone(),
            index: run.index,
            start_unix_nanos: run.start_unix,
            entries: self
                .plan
                .mix_for(run.phase)
                .iter()
                .map(|e| (e.name.clone(), e.options.model.clone().unwrap_or_default()))
                .collect(),
            model: self.plan.target.model.clone(),
        };
        Ok(Some(PhaseRecords::create(raw.dir(), info)?))
    }

    /// Record a fault action's outcome and announce it.
    fn on_fault(&mut self, phase: u32, fired: FiredAction) -> Result<(), RunError> {
        self.progress.line(&format!(
            "  fault {}: {} {}",
            fired.index,
            fired.action,
            fired.outcome()
        ));
        self.record(&Record::Fault { phase, fired })
    }

    /// Record a scrape and keep it for the phase's summary.
    fn on_scrape(
        &mut self,
        phase: u32,
        scraped: Scraped,
        scrapes: &mut Vec<Scrape>,
        failed: &mut BTreeMap<String, u32>,
    ) -> Result<(), RunError> {
        match scraped {
            Scraped::Page(page) => {
                self.record(&Record::Scrape {
                    phase,
                    url: redact_url_credentials(&page.url),
                    at_ms: page.at_ms,
                    types: page.types.clone(),
                    samples: page.samples.clone(),
                })?;
                scrapes.push(page);
            }
            Scraped::Failed { url, at_ms, reason } => {
                let (url, reason) = (
                    redact_url_credentials(&url),
                    redact_url_credentials(&reason),
                );
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
}

//! The load engine: runs this agent's share of one phase.
//!
//! Open loop: the phase's arrival sequence is defined once for the cluster
//! (see [`crate::arrivals`]) and this agent sends the arrivals k its shard
//! owns (k mod n with equal weights, in proportion to the weights otherwise:
//! [`stampede_common::shard`]), so the union of all agents is exactly the
//! phase's sequence. Each arrival is sent at its intended time; latency is measured
//! from that intended time (coordinated-omission-correct) and the
//! intended→actual gap is recorded as schedule lag. Arrivals beyond the
//! in-flight bound are counted as skipped, never queued. Under a
//! concurrency cap ([`crate::cap`]) an arrival waits for a free slot instead.
//!
//! Replay: a trace's arrival times, sharded the same way, each arrival with
//! its record's lengths.
//!
//! Closed loop: cluster-wide user u runs on the shard that owns number u; each user sends its
//! next request when the previous one ends (intended = actual send).
//!
//! Resharding: when the controller loses an agent mid-phase it hands every
//! remaining agent a new slice (index, count, weights) from a window boundary on.
//! Open loop: arrivals intended from then on follow the new slice, so the
//! survivors again send the whole sequence. Closed loop: the agent starts the
//! extra users its new slice gives it.

use crate::arrivals::Schedule;
use crate::cap::{Cap, Slot};
use crate::client::{self, Target};
use crate::gate::{Miss, WriteGate};
use crate::pacer::PreciseTimer;
use crate::recorder::Recorder;
use crate::records::Draft;
use crate::replay::Replay;
use crate::slices::Slices;
use crate::spans::PhaseTrace;
use crate::workload::WorkloadGen;
use stampede_common::proto::{self, load_shape::Shape};
use stampede_common::shard::ShardMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Default in-flight bound when the assignment leaves it 0.
const DEFAULT_MAX_IN_FLIGHT: u32 = 10_000;

/// What the engine sends to the session.
#[derive(Debug)]
pub enum Report {
    /// One finished window (boxed: it is far larger than `Done`).
    Window(Box<proto::WindowReport>),
    /// The phase is over; no more windows follow.
    Done(proto::PhaseDone),
}

/// The assignment cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A field of the assignment is invalid.
    #[error("invalid phase assignment: {0}")]
    Invalid(String),
}

/// The agent's wall clock, possibly skewed (to test clock-offset estimation).
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentClock {
    /// Added to the system clock, in nanoseconds.
    pub skew_nanos: i64,
}

impl AgentClock {
    /// Now, as Unix nanoseconds in this agent's clock.
    pub fn now_unix_nanos(&self) -> i64 {
        let sys = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        sys.saturating_add(self.skew_nanos)
    }

    /// The monotonic instant at which this clock will read `unix_nanos`.
    pub fn instant_at(&self, unix_nanos: i64) -> Instant {
        let now = Instant::now();
        let delta = unix_nanos.saturating_sub(self.now_unix_nanos());
        if delta >= 0 {
            now + Duration::from_nanos(delta.unsigned_abs())
        } else {
            now.checked_sub(Duration::from_nanos(delta.unsigned_abs()))
                .unwrap_or(now)
        }
    }
}

/// Validated view of an assignment.
struct Spec {
    phase_index: u32,
    start: Instant,
    end: Instant,
    drain: Duration,
    window: Duration,
    max_requests: u64,
    max_arrivals: u64,
    /// Who owns which arrival or user, and this agent's index.
    shard: (Arc<ShardMap>, u32),
    /// Joining a running phase: nothing before this offset is this agent's.
    join_from: Duration,
    shape: Shape,
    /// The cluster-wide open-loop sequence (open-loop phases only).
    schedule: Option<Schedule>,
    /// The replayed trace (replay phases only).
    replay: Option<Arc<Replay>>,
    timeout: Duration,
    max_in_flight: u32,
    /// Which requests are recorded one by one, when any are.
    records: Option<crate::records::Sampler>,
    /// Cluster-wide cap on requests in flight (open loop); 0: none.
    max_concurrency: u32,
}

fn validate(a: &proto::PhaseAssignment, clock: &AgentClock) -> Result<Spec, EngineError> {
    let bad = |m: String| EngineError::Invalid(m);
    let shard = ShardMap::from_proto(&a.shard.clone().unwrap_or_default())
        .map(|(map, index)| (Arc::new(map), index))
        .map_err(|e| bad(e.to_string()))?;
    if a.window_ms == 0 {
        return Err(bad("window_ms = 0".into()));
    }
    let Some(shape) = a.load.clone().and_then(|l| l.shape) else {
        return Err(bad("no load shape".into()));
    };
    let schedule = match &shape {
        Shape::OpenLoop(o) => Some(Schedule::from_proto(o).map_err(|e| bad(e.to_string()))?),
        Shape::Concurrency(_) | Shape::Replay(_) => None,
    };
    let replay = match &shape {
        Shape::Replay(r) => Some(Arc::new(Replay::from_proto(r).map_err(bad)?)),
        _ => None,
    };
    let request = a
        .request
        .as_ref()
        .ok_or_else(|| bad("no request template".into()))?;
    if request.timeout_ms == 0 {
        return Err(bad("timeout_ms = 0".into()));
    }
    let start = clock.instant_at(a.start_unix_nanos);
    Ok(Spec {
        phase_index: a.phase_index,
        start,
        end: start + Duration::from_millis(a.duration_ms),
        drain: Duration::from_millis(a.drain_ms),
        window: Duration::from_millis(a.window_ms),
        max_requests: a.max_requests,
        max_arrivals: a.max_arrivals,
        shard,
        join_from: Duration::from_millis(a.join_from_ms),
        shape,
        schedule,
        replay,
        timeout: Duration::from_millis(request.timeout_ms),
        max_in_flight: if a.max_in_flight == 0 {
            DEFAULT_MAX_IN_FLIGHT
        } else {
            a.max_in_flight
        },
        records: crate::records::Sampler::from_assignment(a),
        max_concurrency: a.max_concurrency,
    })
}

struct Ctx {
    target: Target,
    /// Per-request variation, when the template has a workload (or the phase
    /// replays a trace).
    workload: Option<WorkloadGen>,
    /// Per-arrival lengths of a replayed trace.
    replay: Option<Arc<Replay>>,
    /// Per workload entry, the target with that entry's API path and
    /// streaming (empty without a workload).
    entry_targets: Vec<Target>,
    /// The phase start (intended send times are logged relative to it).
    start: Instant,
    /// The end of the phase's arrivals (no session turn starts after it).
    end: Instant,
    /// Closed-loop requests sent by this agent (numbers its requests).
    closed_count: AtomicU64,
    /// Output tokens one response is expected to carry (sizes the ITL buffer).
    expected_tokens: usize,
    rec: Recorder,
    timeout: Duration,
    in_flight: AtomicU32,
    /// The open loop's concurrency cap, when the phase has one.
    cap: Option<Cap>,
    abandon: CancellationToken,
    /// Spans of sampled requests, when the phase is traced.
    trace: Option<PhaseTrace>,
}

impl Ctx {
    /// The phase's shared state: the target the template describes, the
    /// workload varying its requests and the recorder of its windows.
    fn new(
        request: &proto::RequestTemplate,
        spec: &Spec,
        http: crate::http::Client,
        trace: Option<PhaseTrace>,
        goodput: Option<proto::GoodputBounds>,
    ) -> Result<Self, EngineError> {
        let api = proto::Api::try_from(request.api).unwrap_or(proto::Api::Chat);
        let headers = crate::http::request_headers(request).map_err(EngineError::Invalid)?;
        let target = Target {
            client: http,
            url: format!("{}{}", request.base_url, crate::openai::path(api)),
            body: crate::openai::body(request).into(),
            stream: request.stream,
            headers,
            first_token_timeout: (request.first_token_timeout_ms > 0)
                .then(|| Duration::from_millis(request.first_token_timeout_ms)),
        };
        let mut workload = request
            .workload
            .as_ref()
            .map(|w| WorkloadGen::from_proto(w, request))
            .transpose()
            .map_err(EngineError::Invalid)?;
        if spec.replay.is_some() && workload.is_none() {
            // A replayed record's lengths need a generated body.
            workload = Some(WorkloadGen::plain(request).map_err(EngineError::Invalid)?);
        }
        let entry_targets = workload.as_ref().map_or_else(Vec::new, |w| {
            (0..)
                .map_while(|i| w.route(i))
                .map(|(api, stream)| Target {
                    url: format!("{}{}", request.base_url, crate::openai::path(api)),
                    stream,
                    ..target.clone()
                })
                .collect()
        });
        let parts = workload
            .as_ref()
            .is_some_and(|w| (2..=stampede_common::MAX_WINDOW_PARTS).contains(&w.entries()));
        Ok(Self {
            entry_targets,
            target,
            workload,
            replay: spec.replay.clone(),
            start: spec.start,
            end: spec.end,
            closed_count: AtomicU64::new(0),
            expected_tokens: (request.max_tokens as usize).min(4096),
            rec: Recorder::new(spec.start, spec.window)
                .with_goodput(goodput)
                .with_records(spec.records)
                .with_parts(parts),
            timeout: spec.timeout,
            in_flight: AtomicU32::new(0),
            cap: Cap::new(spec.max_concurrency),
            abandon: CancellationToken::new(),
            trace,
        })
    }

    /// Send request `k` of the phase, intended at `intended` and free to go
    /// at `ready` (later when it waited for a slot under the cap).
    async fn one_request(&self, (intended, ready): (Instant, Instant), k: u64) {
        /// Counts the request out of the live in-flight gauge however it ends.
        struct InFlight;
        impl Drop for InFlight {
            fn drop(&mut self) {
                crate::live::LIVE.in_flight(-1);
            }
        }
        crate::live::LIVE.in_flight(1);
        let _guard = InFlight;
        self.one_request_inner((intended, ready), k).await;
    }

    async fn one_request_inner(&self, (intended, ready): (Instant, Instant), k: u64) {
        let picked = Instant::now();
        let lengths = self.replay.as_ref().and_then(|r| r.lengths(k));
        let (body, expected, target, entry) = match &self.workload {
            Some(w) => {
                let g = w.request_with(k, lengths);
                if let (Some(session), None) = (w.session(g.entry), lengths) {
                    return self
                        .session(w, (k, ready, picked), (intended, g), session)
                        .await;
                }
                let target = self.entry_targets.get(g.entry).unwrap_or(&self.target);
                let entry = u32::try_from(g.entry).ok();
                (g.body, (g.max_tokens as usize).min(4096), target, entry)
            }
            None => (
                self.target.body.clone(),
                self.expected_tokens,
                &self.target,
                None,
            ),
        };
        let draft = self.rec.sample(k, 0, intended, picked, entry);
        let on_sent = || self.count_sent((k, entry), (intended, ready), picked, true);
        let gate = WriteGate::new(intended, intended + self.timeout).on_sent(&on_sent);
        let mut gaps = Vec::with_capacity(expected);
        let result = self.exchange(k, target, body, &gate, &mut gaps, None).await;
        self.record((intended, entry), result, &gaps, draft);
    }

    /// Request `k` (of workload entry `entry`), intended at `intended`, free
    /// to go at `ready` (later when it waited for a slot under the cap) and
    /// picked up at `picked`, is being written (or failed trying): count it
    /// as sent, its schedule lag being how late it was picked up, and `log` it.
    fn count_sent(
        &self,
        (k, entry): (u64, Option<u32>),
        (intended, ready): (Instant, Instant),
        picked: Instant,
        log: bool,
    ) {
        self.rec.sent_after(
            picked.saturating_duration_since(intended),
            picked.saturating_duration_since(ready),
            entry,
        );
        if log {
            tracing::trace!(
                target: "stampede::send",
                k,
                intended_us = client::micros(intended.saturating_duration_since(self.start)),
                sent_us = client::micros(picked.saturating_duration_since(self.start)),
                "request sent"
            );
        }
    }

    /// Record how a request of workload entry `entry`, intended at
    /// `intended`, ended; whether it succeeded.
    fn record(
        &self,
        (intended, entry): (Instant, Option<u32>),
        result: Result<client::Success, Miss>,
        gaps: &[u64],
        draft: Option<Draft>,
    ) -> bool {
        match result {
            Ok(s) => {
                self.rec.success((intended, entry), &s, gaps, draft);
                true
            }
            Err(Miss::Failed(class)) => {
                self.rec.failure(class, entry, draft);
                false
            }
            Err(Miss::Expired) => {
                self.rec.expired(1);
                false
            }
        }
    }

    /// One exchange of request `k` through `gate` (abandoned on the drain
    /// deadline), inside a request span when the phase is traced and `k` is
    /// sampled.
    async fn exchange(
        &self,
        k: u64,
        target: &Target,
        body: bytes::Bytes,
        gate: &WriteGate<'_>,
        gaps: &mut Vec<u64>,
        text: Option<&mut String>,
    ) -> Result<client::Success, Miss> {
        let traced = match &self.trace {
            Some(t) if t.sampled(k) => Some(t.start(k, target)),
            _ => None,
        };
        let target = traced.as_ref().map_or(target, |(_, t)| t);
        let abandon = Some(&self.abandon);
        let result = client::execute_gated(target, body, gate, gaps, text, abandon).await;
        if let Some((span, _)) = traced {
            span.finish(&result);
        }
        result
    }
}

impl Ctx {
    /// Multi-turn session `k`, whose first turn is `first` (free to go at
    /// `ready`, picked up at `picked`): each later turn is intended `think`
    /// after the previous answer and carries every earlier question and answer.
    async fn session(
        &self,
        w: &WorkloadGen,
        (k, ready, picked): (u64, Instant, Instant),
        (first_intended, first): (Instant, crate::workload::Generated),
        (turns, think): (u32, Duration),
    ) {
        let target = self.entry_targets.get(first.entry).unwrap_or(&self.target);
        let entry = u32::try_from(first.entry).ok();
        let mut history: Vec<(String, String)> = Vec::with_capacity(turns as usize);
        let (mut g, mut intended, mut ready, mut picked) = (first, first_intended, ready, picked);
        for turn in 0..turns {
            if turn > 0 {
                picked = Instant::now();
            }
            let draft = self.rec.sample(k, turn, intended, picked, entry);
            let on_sent = || self.count_sent((k, entry), (intended, ready), picked, turn == 0);
            let gate = WriteGate::new(intended, intended + self.timeout).on_sent(&on_sent);
            let mut gaps = Vec::with_capacity((g.max_tokens as usize).min(4096));
            let mut answer = String::new();
            let result = self
                .exchange(
                    k,
                    target,
                    g.body.clone(),
                    &gate,
                    &mut gaps,
                    Some(&mut answer),
                )
                .await;
            if !self.record((intended, entry), result, &gaps, draft) {
                return;
            }
            if turn + 1 == turns {
                return;
            }
            history.push((std::mem::take(&mut g.question), answer));
            intended = Instant::now() + think;
            ready = intended;
            if intended >= self.end {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(intended) => {}
                () = self.abandon.cancelled() => return,
            }
            g = w.request_turn(k, turn + 1, &history);
        }
    }
}

/// Run this agent's share of a phase, streaming windows into `reports`.
/// `stop` ends arrivals early; in-flight requests still get the drain period.
pub async fn run_phase(
    assignment: proto::PhaseAssignment,
    http: crate::http::Client,
    clock: AgentClock,
    reports: mpsc::Sender<Report>,
    stop: CancellationToken,
    reshards: watch::Receiver<Vec<proto::Reshard>>,
) -> Result<(), EngineError> {
    let spec = validate(&assignment, &clock)?;
    let trace = PhaseTrace::from_assignment(&assignment);
    let request = assignment.request.unwrap_or_default();
    let ctx = Arc::new(Ctx::new(&request, &spec, http, trace, assignment.goodput)?);

    let flusher_stop = CancellationToken::new();
    let flusher = tokio::spawn(flush_loop(
        ctx.clone(),
        spec.phase_index,
        spec.start,
        spec.window,
        reports.clone(),
        flusher_stop.clone(),
    ));

    crate::live::LIVE.phase(spec.phase_index, Some(&assignment.phase_name));
    let tracker = TaskTracker::new();
    let started_unix_nanos = tokio::select! {
        () = tokio::time::sleep_until(spec.start) => {
            // Joining late is no start at the agreed instant: not one for the spread.
            let started = if spec.join_from.is_zero() { clock.now_unix_nanos() } else { 0 };
            send_arrivals(&ctx, &spec, &tracker, &stop, reshards).await;
            started
        }
        () = stop.cancelled() => 0,
    };
    let arrivals_end = drain(&ctx, &spec, &tracker, &stop).await;

    crate::live::LIVE.phase(spec.phase_index, None);
    flusher_stop.cancel();
    let (flushed, cpu_at) = flusher.await.unwrap_or((0, cpu_micros()));
    let windows = flushed + send_last_windows(&ctx, &spec, &reports, cpu_at).await;
    let since_start = |t: Instant| client::micros(t.saturating_duration_since(spec.start));
    let _ = reports
        .send(Report::Done(proto::PhaseDone {
            phase_index: spec.phase_index,
            windows,
            arrivals_micros: since_start(arrivals_end.min(spec.end.max(spec.start))),
            finished_micros: ctx.rec.last_completion().map_or(0, since_start),
            started_unix_nanos,
            halted: false,
        }))
        .await;
    Ok(())
}

/// From the phase's start: send its arrivals, or start its closed-loop users,
/// until the phase ends, its bound is spent or `stop`.
async fn send_arrivals(
    ctx: &Arc<Ctx>,
    spec: &Spec,
    tracker: &TaskTracker,
    stop: &CancellationToken,
    reshards: watch::Receiver<Vec<proto::Reshard>>,
) {
    // Open loop: the whole cluster-wide sequence; the pacer keeps
    // this agent's slice of it (which a reshard may change).
    match (&spec.shape, &spec.schedule, &spec.replay) {
        (Shape::Concurrency(c), _, _) => closed_loop(ctx, spec, c.users, tracker, stop, reshards),
        (_, Some(schedule), _) => {
            let arrivals = Box::new(schedule.clone());
            let ended = open_loop(ctx, spec, arrivals, tracker, stop, reshards).await;
            run_out_window(ended, spec.end, stop).await;
        }
        (_, None, Some(replay)) => {
            let arrivals = Box::new(replay.clone().arrivals());
            let ended = open_loop(ctx, spec, arrivals, tracker, stop, reshards).await;
            run_out_window(ended, spec.end, stop).await;
        }
        (_, None, None) => {}
    }
}

/// Wait for the requests in flight, abandoning those still running when the
/// drain period is over. Returns when arrivals ended.
async fn drain(ctx: &Ctx, spec: &Spec, tracker: &TaskTracker, stop: &CancellationToken) -> Instant {
    let mut arrivals_end = Instant::now();
    tracker.close();
    // In-flight requests get `drain` past the phase's end (or past a stop).
    let drain_from = if stop.is_cancelled() {
        arrivals_end
    } else {
        arrivals_end.max(spec.end)
    };
    if tokio::time::timeout_at(drain_from + spec.drain, tracker.wait())
        .await
        .is_err()
    {
        ctx.abandon.cancel();
        tracker.wait().await;
    }
    if matches!(spec.shape, Shape::Concurrency(_)) {
        // Closed-loop users send until the phase ends or their budget runs out.
        arrivals_end = Instant::now().min(spec.end);
    }
    arrivals_end
}

/// Report the windows the flusher left (the CPU used since `cpu_at` goes to
/// the last one); returns how many.
async fn send_last_windows(
    ctx: &Ctx,
    spec: &Spec,
    reports: &mpsc::Sender<Report>,
    cpu_at: u64,
) -> u32 {
    let cpu_now = cpu_micros();
    let rest = ctx.rec.take_all();
    let count = rest.len();
    let mut windows = 0;
    for (i, (idx, data)) in rest.into_iter().enumerate() {
        // Attribute the remaining CPU to the last window.
        let cpu = if i + 1 == count {
            cpu_now.saturating_sub(cpu_at)
        } else {
            0
        };
        let _ = reports
            .send(Report::Window(Box::new(data.into_report(
                spec.phase_index,
                idx,
                cpu,
                spec.window,
            ))))
            .await;
        windows += 1;
    }
    windows
}

/// How an open loop's arrivals ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArrivalsEnd {
    /// The schedule passed the phase's end (or ran out): the phase still
    /// runs its planned duration.
    Window,
    /// The request bound was spent.
    Bound,
    /// Stopped from outside.
    Stopped,
}

/// Open-loop arrivals, each sent at its intended time on a precise timer
/// ([`crate::pacer`]): tokio's own fires on millisecond ticks. An arrival
/// whose deadline (intended time + request timeout) has passed by the time
/// the agent gets to it — the agent was stalled — expires unsent.
async fn open_loop(
    ctx: &Arc<Ctx>,
    spec: &Spec,
    arrivals: Box<dyn Iterator<Item = (u64, f64)> + Send>,
    tracker: &TaskTracker,
    stop: &CancellationToken,
    mut reshards: watch::Receiver<Vec<proto::Reshard>>,
) -> ArrivalsEnd {
    let (start, end, max_in_flight, phase_index) =
        (spec.start, spec.end, spec.max_in_flight, spec.phase_index);
    let mut slices = Slices::new(spec.shard.clone(), spec.join_from);
    // Without a global bound, the per-agent one (older controllers).
    let (max_arrivals, mut mine_left) = match (spec.max_arrivals, spec.max_requests) {
        (0, 0) => (u64::MAX, u64::MAX),
        (0, m) => (u64::MAX, m),
        (m, _) => (m, u64::MAX),
    };
    let mut timer = PreciseTimer::new();
    for (k, at) in arrivals {
        if k >= max_arrivals || mine_left == 0 {
            return ArrivalsEnd::Bound;
        }
        if reshards.has_changed().unwrap_or(false) {
            slices.update(&reshards.borrow_and_update(), phase_index);
        }
        if !slices.owns(k, at) {
            continue;
        }
        let Some(due) = Duration::try_from_secs_f64(at)
            .ok()
            .and_then(|d| start.checked_add(d))
        else {
            return ArrivalsEnd::Window;
        };
        if due >= end {
            return ArrivalsEnd::Window;
        }
        if Instant::now() < due {
            tokio::select! {
                biased;
                () = stop.cancelled() => return ArrivalsEnd::Stopped,
                () = timer.sleep_until(due) => {}
            }
        } else if stop.is_cancelled() {
            return ArrivalsEnd::Stopped;
        } else {
            // Behind schedule: catch up, but let other tasks run.
            tokio::task::consume_budget().await;
        }
        mine_left -= 1;
        if Instant::now() >= due + ctx.timeout {
            ctx.rec.expired(1);
            continue;
        }
        // Free to go at `ready`: when its slot freed, if it waited for one.
        let mut ready = due;
        if let Some(cap) = &ctx.cap {
            let part = slices.cap_part(at, cap.total);
            match cap
                .slot(&ctx.in_flight, part, due + ctx.timeout, stop)
                .await
            {
                Slot::Free => {}
                Slot::Freed => ready = Instant::now(),
                Slot::Expired => {
                    ctx.rec.expired_waiting(1);
                    continue;
                }
                Slot::Stopped => return ArrivalsEnd::Stopped,
            }
        }
        if ctx.in_flight.load(Ordering::Relaxed) >= max_in_flight {
            ctx.rec.skipped(1);
            continue;
        }
        ctx.in_flight.fetch_add(1, Ordering::AcqRel);
        let ctx = ctx.clone();
        tracker.spawn(async move {
            ctx.one_request((due, ready), k).await;
            ctx.in_flight.fetch_sub(1, Ordering::AcqRel);
            if let Some(cap) = &ctx.cap {
                cap.freed();
            }
        });
    }
    ArrivalsEnd::Window
}

/// After the schedule's last arrival, the phase still runs to its planned
/// end (a sparse phase is as long as planned, and its arrival window is the
/// planned one), unless stopped or its request bound was spent.
async fn run_out_window(ended: ArrivalsEnd, end: Instant, stop: &CancellationToken) {
    if ended == ArrivalsEnd::Window {
        tokio::select! {
            () = tokio::time::sleep_until(end) => {}
            () = stop.cancelled() => {}
        }
    }
}

fn closed_loop(
    ctx: &Arc<Ctx>,
    spec: &Spec,
    users: u32,
    tracker: &TaskTracker,
    stop: &CancellationToken,
    mut reshards: watch::Receiver<Vec<proto::Reshard>>,
) {
    let (map, index) = &spec.shard;
    let mine = map.owned_below(*index, u64::from(users)) as u32;
    let (count, index) = (u64::from(map.count()), u64::from(*index));
    let budget = Arc::new(AtomicU64::new(if spec.max_requests == 0 {
        u64::MAX
    } else {
        spec.max_requests
    }));
    let max_in_flight = spec.max_in_flight;
    // Users still running, and a signal when the last one stops: the phase
    // ends early when its request budget is spent.
    let live = Arc::new(AtomicU32::new(0));
    let all_done = Arc::new(tokio::sync::Notify::new());
    let user = {
        let (ctx, stop, end) = (ctx.clone(), stop.clone(), spec.end);
        let (live, all_done) = (live.clone(), all_done.clone());
        move |tracker: &TaskTracker, from: Instant| {
            let (ctx, stop, budget) = (ctx.clone(), stop.clone(), budget.clone());
            let (live, all_done) = (live.clone(), all_done.clone());
            live.fetch_add(1, Ordering::AcqRel);
            tracker.spawn(async move {
                let started = tokio::select! {
                    () = tokio::time::sleep_until(from) => true,
                    () = stop.cancelled() => false,
                };
                if started {
                    loop {
                        let now = Instant::now();
                        if now >= end || stop.is_cancelled() {
                            break;
                        }
                        let took = budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                            b.checked_sub(1)
                        });
                        if took.is_err() {
                            break;
                        }
                        // Not raced against `stop`: a request once sent is always
                        // recorded (the drain deadline cancels it as `cancelled`).
                        // Request j of this agent is number j·n + i of the phase.
                        let j = ctx.closed_count.fetch_add(1, Ordering::Relaxed);
                        ctx.one_request((now, now), j * count + index).await;
                    }
                }
                if live.fetch_sub(1, Ordering::AcqRel) == 1 {
                    all_done.notify_waiters();
                }
            });
        }
    };
    let started = mine.min(max_in_flight);
    for _ in 0..started {
        user(tracker, spec.start + spec.join_from);
    }
    if mine > max_in_flight {
        tracing::warn!(
            users = mine,
            max_in_flight,
            "more users than the in-flight bound; extra users not started"
        );
    }
    // Reshards give this agent more users (never fewer: its own keep going),
    // until the phase ends or every user has stopped.
    let (stop, end, start, phase) = (stop.clone(), spec.end, spec.start, spec.phase_index);
    let spawner = tracker.clone();
    tracker.spawn(async move {
        let mut running = started;
        loop {
            let finished = all_done.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            if live.load(Ordering::Acquire) == 0 {
                break;
            }
            tokio::select! {
                changed = reshards.changed() => if changed.is_err() { break },
                () = &mut finished => break,
                () = tokio::time::sleep_until(end) => break,
                () = stop.cancelled() => break,
            }
            let latest = reshards
                .borrow_and_update()
                .iter()
                .rfind(|r| r.phase_index == phase)
                .cloned();
            let Some(r) = latest else { continue };
            let Ok((map, index)) = ShardMap::from_proto(&r.shard.unwrap_or_default()) else {
                continue;
            };
            let want = (map.owned_below(index, u64::from(r.users)) as u32).min(max_in_flight);
            let from = start + Duration::from_millis(r.from_ms);
            while running < want {
                user(&spawner, from);
                running += 1;
            }
        }
    });
}

/// Emit every window as soon as it has elapsed; returns (windows sent, CPU reading at the last one).
async fn flush_loop(
    ctx: Arc<Ctx>,
    phase_index: u32,
    start: Instant,
    window: Duration,
    reports: mpsc::Sender<Report>,
    stop: CancellationToken,
) -> (u32, u64) {
    let mut next: u32 = 0;
    let mut cpu_before = cpu_micros();
    loop {
        let boundary = start + window * (next + 1);
        tokio::select! {
            () = tokio::time::sleep_until(boundary) => {}
            () = stop.cancelled() => break,
        }
        let cpu_now = cpu_micros();
        // Woken well past the boundary: the agent did not run for part of the window.
        let late = Instant::now().saturating_duration_since(boundary);
        for (idx, mut data) in ctx.rec.take_before(next + 1) {
            let cpu = cpu_now.saturating_sub(cpu_before);
            cpu_before = cpu_now;
            data.flushed_late(late);
            if reports
                .send(Report::Window(Box::new(data.into_report(
                    phase_index,
                    idx,
                    cpu,
                    window,
                ))))
                .await
                .is_err()
            {
                return (next, cpu_before);
            }
        }
        next += 1;
    }
    (next, cpu_before)
}

/// CPU time (user + system) used by this process so far, in microseconds
/// (0 where `/proc` is unavailable).
pub fn cpu_micros() -> u64 {
    cpu_micros_of("self")
}

/// CPU time (user + system) of process `pid` (or `"self"`) so far, in
/// microseconds; 0 where `/proc` is unavailable.
pub fn cpu_micros_of(pid: &str) -> u64 {
    // Fields 14 and 15 of /proc/<pid>/stat, in clock ticks (USER_HZ = 100 on Linux).
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some(after_name) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0;
    };
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After "pid (comm)", utime is the 12th field (index 11) and stime the 13th.
    (tick(11) + tick(12)) * 10_000
}

#[cfg(test)]
mod expiry_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_maps_future_and_past() {
        let clock = AgentClock { skew_nanos: 0 };
        let now = Instant::now();
        let later = clock.instant_at(clock.now_unix_nanos() + 1_000_000_000);
        assert!(
            later >= now + Duration::from_millis(990) && later <= now + Duration::from_millis(1010)
        );
        let skewed = AgentClock {
            skew_nanos: 200_000_000,
        };
        let t = skewed.instant_at(skewed.now_unix_nanos() + 100_000_000);
        assert!(t <= Instant::now() + Duration::from_millis(110));
    }

    #[test]
    fn cpu_reading_is_monotonic() {
        let a = cpu_micros();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(cpu_micros() >= a);
    }
}

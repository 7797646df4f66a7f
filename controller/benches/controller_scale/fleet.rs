//! The simulated agents: N sessions over real gRPC on loopback, each doing
//! what `agent/src/session.rs` does on the wire — Hello, answers to clock
//! probes, then for its `PhaseAssignment` a `WindowReport` at the end of
//! every window (all agents' windows end at the same instants, as real
//! agents' do), gathered `windows_per_report` to a message as the
//! assignment asks (with the agent's own [`Gather`]), then `PhaseDone`,
//! until the controller's Stop. Nothing is sent to a target: the reports
//! come from [`super::windows`].
//!
//! Sessions share connections `per_connection` at a time (1: one connection
//! per agent, like real agents; the controller allows 8 streams per
//! connection), with the agent's HTTP/2 keepalive and socket settings. Everything the
//! fleet sees is stamped in nanoseconds since its start into a [`Timeline`].

use super::windows::TEMPLATES;
use stampede_agent::gather::Gather;
use stampede_agent::link;
use stampede_common::proto::{
    self, ClockProbeReply, Hello, PhaseAssignment, SessionRequest,
    coordinator_service_client::CoordinatorServiceClient, session_request::Kind as Up,
    session_response::Kind as Down,
};
use stampede_common::{MAX_MESSAGE_BYTES, PROTOCOL_VERSION, VERSION};
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

/// What the fleet saw, in nanoseconds since it started dialing.
pub struct Timeline {
    t0: Instant,
    /// Sessions welcomed, and when the last one was.
    pub welcomed: AtomicUsize,
    pub last_welcome: AtomicU64,
    /// The first clock probe received and the last reply sent, by any agent.
    pub first_probe: AtomicU64,
    pub last_reply: AtomicU64,
    /// Assignments received, and when the last one was.
    pub assigned: AtomicUsize,
    pub last_assignment: AtomicU64,
    /// Smallest time left before the phase's start when an assignment
    /// arrived (negative: it arrived after the start).
    pub min_lead_nanos: AtomicI64,
    /// The phase's start (Unix ns), as assigned.
    pub start_unix: AtomicI64,
    /// Windows per message, as assigned.
    pub windows_per_report: AtomicU32,
    /// Per window index: acknowledgements received, and the longest time
    /// from sending a message that carried the window to its acknowledgement.
    pub acks: Vec<(AtomicUsize, AtomicU64)>,
    /// Sessions refused or dropped before their phase and dialed again
    /// (as a real agent does, after a pause).
    pub retries: AtomicUsize,
    /// Sessions that ended, and what went wrong in those that failed.
    pub ended: AtomicUsize,
    pub errors: Mutex<Vec<String>>,
}

impl Timeline {
    fn new(windows: usize) -> Self {
        Self {
            t0: Instant::now(),
            welcomed: AtomicUsize::new(0),
            last_welcome: AtomicU64::new(0),
            first_probe: AtomicU64::new(u64::MAX),
            last_reply: AtomicU64::new(0),
            assigned: AtomicUsize::new(0),
            last_assignment: AtomicU64::new(0),
            min_lead_nanos: AtomicI64::new(i64::MAX),
            start_unix: AtomicI64::new(0),
            windows_per_report: AtomicU32::new(0),
            acks: (0..windows)
                .map(|_| (AtomicUsize::new(0), AtomicU64::new(0)))
                .collect(),
            retries: AtomicUsize::new(0),
            ended: AtomicUsize::new(0),
            errors: Mutex::new(Vec::new()),
        }
    }

    /// Nanoseconds since the fleet started.
    pub fn now(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// `ns` since the start, as a duration.
    pub fn at(ns: &AtomicU64) -> Duration {
        Duration::from_nanos(ns.load(Ordering::Relaxed))
    }

    /// Acknowledgements received over all windows.
    pub fn acked(&self) -> usize {
        self.acks
            .iter()
            .map(|(n, _)| n.load(Ordering::Relaxed))
            .sum()
    }

    fn fail(&self, why: String) {
        self.errors.lock().expect("not poisoned").push(why);
    }
}

/// The fleet's shape.
pub struct FleetConfig {
    /// gRPC base URL of the controller.
    pub url: String,
    pub agents: usize,
    pub per_connection: usize,
    /// Windows of the phase (for the acknowledgement table).
    pub windows: usize,
    pub reports: Arc<Vec<proto::WindowReport>>,
    /// The HTTP/2 keepalive interval of each connection.
    pub ping: Duration,
    /// Whether each socket is set as the agent's (`link::tune`: TCP
    /// keepalive probes); otherwise only without Nagle's delay.
    pub tcp_keepalive: bool,
}

/// Dial the controller and run every session; the timeline fills as they go.
pub fn start(cfg: FleetConfig) -> (Arc<Timeline>, JoinSet<()>) {
    let timeline = Arc::new(Timeline::new(cfg.windows));
    let mut tasks = JoinSet::new();
    let ids: Vec<usize> = (0..cfg.agents).collect();
    for group in ids.chunks(cfg.per_connection.max(1)) {
        let (group, url, tl) = (group.to_vec(), cfg.url.clone(), timeline.clone());
        let (reports, ping, probes) = (cfg.reports.clone(), cfg.ping, cfg.tcp_keepalive);
        tasks.spawn(async move {
            let channel = match connect(&url, ping, probes).await {
                Ok(c) => c,
                Err(e) => {
                    tl.fail(format!("connect: {e}"));
                    tl.ended.fetch_add(group.len(), Ordering::Relaxed);
                    return;
                }
            };
            let mut sessions = JoinSet::new();
            for id in group {
                let (ch, tl, reports) = (channel.clone(), tl.clone(), reports.clone());
                sessions.spawn(async move {
                    let mut seen = Seen::default();
                    for attempt in 1.. {
                        match session(id, ch.clone(), &tl, &reports, &mut seen).await {
                            Ok(()) => break,
                            Err((false, _)) if attempt < 20 => {
                                tl.retries.fetch_add(1, Ordering::Relaxed);
                                let pause = 100u64 << attempt.min(5);
                                tokio::time::sleep(Duration::from_millis(pause)).await;
                            }
                            Err((_, e)) => {
                                tl.fail(format!("agent {id}: {e}"));
                                break;
                            }
                        }
                    }
                    tl.ended.fetch_add(1, Ordering::Relaxed);
                });
            }
            while sessions.join_next().await.is_some() {}
        });
    }
    (timeline, tasks)
}

/// One connection with the agent's settings (`agent/src/session.rs`): its
/// HTTP/2 keepalive pings `ping` apart, its socket set by
/// [`link::tune`] when `probes`.
async fn connect(
    url: &str,
    ping: Duration,
    probes: bool,
) -> Result<Channel, tonic::transport::Error> {
    let dial = tower::service_fn(move |uri: tonic::codegen::http::Uri| async move {
        let host = uri.host().unwrap_or("127.0.0.1").to_string();
        let stream = tokio::net::TcpStream::connect((host, uri.port_u16().unwrap_or(80))).await?;
        if probes {
            link::tune(&stream)?;
        } else {
            stream.set_nodelay(true)?;
        }
        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
    });
    Endpoint::from_shared(url.to_string())?
        .connect_timeout(Duration::from_secs(60))
        .http2_keep_alive_interval(ping)
        .keep_alive_timeout(link::HTTP2_PING_TIMEOUT)
        .keep_alive_while_idle(true)
        .connect_with_connector(dial)
        .await
}

fn unix_nanos() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The phase as this agent runs it: its next window and when it is due.
struct Running {
    slot: u32,
    windows: u32,
    window: Duration,
    next: u32,
    due: Instant,
    start_unix: i64,
    gather: Gather,
}

/// One session; an error says whether the session had its phase yet
/// (before that, a real agent dials again after a pause, and so does this).
async fn session(
    id: usize,
    channel: Channel,
    tl: &Timeline,
    reports: &[proto::WindowReport],
    seen: &mut Seen,
) -> Result<(), (bool, String)> {
    session_after(id, channel, tl, reports, seen)
        .await
        .map_err(|e| (seen.phase, e))
}

/// What an agent has had over its sessions.
#[derive(Default)]
struct Seen {
    welcome: bool,
    phase: bool,
}

async fn session_after(
    id: usize,
    channel: Channel,
    tl: &Timeline,
    reports: &[proto::WindowReport],
    seen: &mut Seen,
) -> Result<(), String> {
    let mut client = CoordinatorServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let (tx, rx) = mpsc::channel::<SessionRequest>(64);
    let hello = Hello {
        agent_id: format!("agent-{id:05}"),
        node_name: format!("node-{}", id % 100),
        version: VERSION.to_string(),
        cores: 1,
        protocol_version: PROTOCOL_VERSION,
        incarnation: id as u64 + 1,
    };
    let send = |kind: Up| {
        let tx = tx.clone();
        async move {
            tx.send(SessionRequest { kind: Some(kind) })
                .await
                .map_err(|_| "outbound stream closed".to_string())
        }
    };
    send(Up::Hello(hello)).await?;
    let mut inbound = client
        .session(ReceiverStream::new(rx))
        .await
        .map_err(|s| s.to_string())?
        .into_inner();
    let mut running: Option<Running> = None;
    // When the message carrying each window was sent (ns on the timeline).
    let mut sent_at = vec![0u64; tl.acks.len()];
    loop {
        let due = running.as_ref().map(|r| r.due);
        let msg = tokio::select! {
            msg = inbound.message() => msg.map_err(|s| s.to_string())?,
            () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                let r = running.as_mut().expect("due only while running");
                for kind in window_due(id, r, reports) {
                    let now = tl.now();
                    for w in carried(&kind) {
                        if let Some(t) = sent_at.get_mut(w as usize) {
                            *t = now;
                        }
                    }
                    send(kind).await?;
                }
                if r.next == r.windows {
                    running = None;
                }
                continue;
            }
        };
        let Some(kind) = msg.and_then(|m| m.kind) else {
            return Err("controller closed the session".into());
        };
        match kind {
            Down::Welcome(_) if !seen.welcome => {
                seen.welcome = true;
                tl.welcomed.fetch_add(1, Ordering::Relaxed);
                tl.last_welcome.fetch_max(tl.now(), Ordering::Relaxed);
            }
            Down::ClockProbe(p) => {
                tl.first_probe.fetch_min(tl.now(), Ordering::Relaxed);
                let now = unix_nanos();
                let reply = ClockProbeReply {
                    probe_id: p.probe_id,
                    agent_receive_unix_nanos: now,
                    agent_send_unix_nanos: now,
                };
                send(Up::ClockProbeReply(reply)).await?;
                tl.last_reply.fetch_max(tl.now(), Ordering::Relaxed);
            }
            Down::PhaseAssignment(a) => {
                seen.phase = true;
                running = Some(assigned(id, tl, &a));
            }
            Down::Ack(a) => {
                let now = tl.now();
                for seq in std::iter::once(a.sequence).chain(a.more_sequences) {
                    let w = seq.saturating_sub(1) as usize;
                    if let (Some((n, lag)), Some(sent)) = (tl.acks.get(w), sent_at.get(w)) {
                        n.fetch_add(1, Ordering::Relaxed);
                        lag.fetch_max(now.saturating_sub(*sent), Ordering::Relaxed);
                    }
                }
            }
            Down::Stop(s) if s.abort => return Ok(()),
            Down::Welcome(_) | Down::Stop(_) | Down::Reshard(_) => {}
        }
    }
}

/// Take an assignment: note when it came and how far ahead of the start.
fn assigned(id: usize, tl: &Timeline, a: &PhaseAssignment) -> Running {
    let lead = a.start_unix_nanos - unix_nanos();
    tl.assigned.fetch_add(1, Ordering::Relaxed);
    tl.last_assignment.fetch_max(tl.now(), Ordering::Relaxed);
    tl.min_lead_nanos.fetch_min(lead, Ordering::Relaxed);
    tl.start_unix.store(a.start_unix_nanos, Ordering::Relaxed);
    tl.windows_per_report
        .store(a.windows_per_report.max(1), Ordering::Relaxed);
    let mut gather = Gather::default();
    gather.start(a.windows_per_report, id as u64);
    let start = Instant::now() + Duration::from_nanos(u64::try_from(lead).unwrap_or(0));
    let window = Duration::from_millis(a.window_ms.max(1));
    Running {
        slot: a.phase_index,
        windows: u32::try_from(a.duration_ms / a.window_ms.max(1)).unwrap_or(u32::MAX),
        window,
        next: 0,
        due: start + window,
        start_unix: a.start_unix_nanos,
        gather,
    }
}

/// The window indices a message carries.
fn carried(kind: &Up) -> Vec<u32> {
    match kind {
        Up::WindowReport(w) => vec![w.window_index],
        Up::WindowReports(b) => b.reports.iter().map(|w| w.window_index).collect(),
        _ => Vec::new(),
    }
}

/// The messages due at `r.due`: the next window's report (when its group is
/// complete), and after the last one what is still gathered and the phase's
/// end.
fn window_due(id: usize, r: &mut Running, reports: &[proto::WindowReport]) -> Vec<Up> {
    let w = r.next;
    let mut report = reports[(id + w as usize) % TEMPLATES].clone();
    report.sequence = u64::from(w) + 1;
    report.phase_index = r.slot;
    report.window_index = w;
    report.incarnation = id as u64 + 1;
    let mut out: Vec<Up> = r.gather.push(report).into_iter().collect();
    r.next += 1;
    r.due += r.window;
    if r.next == r.windows {
        out.extend(r.gather.flush());
        let micros = u64::try_from((r.window * r.windows).as_micros()).unwrap_or(u64::MAX);
        out.push(Up::PhaseDone(proto::PhaseDone {
            phase_index: r.slot,
            windows: r.windows,
            arrivals_micros: micros,
            finished_micros: micros,
            started_unix_nanos: r.start_unix,
            halted: false,
        }));
    }
    out
}

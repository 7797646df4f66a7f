//! The agent's side of the gRPC session: dial the controller with capped,
//! jittered backoff, register, answer clock probes, run assigned phases and
//! stream their windows back with sequence numbers.
//!
//! A lost session does not stop a running phase at once: the agent keeps
//! sending while it reconnects, up to the phase's `halt_after` (the
//! dead-man's switch, [`dead_mans_switch`]); then it stops its arrivals, so a
//! controller that died or is cut off cannot leave load running against the
//! target. How a controller that stopped answering without closing the
//! connection is found is [`link`]'s.

use crate::backoff::Backoff;
use crate::engine::{self, AgentClock, Report};
use crate::gather::Gather;
use crate::link::{self, AckWatch};
use crate::security::{self, ClientSecurity};
use stampede_common::proto::{
    self, ClockProbeReply, Hello, SessionRequest,
    coordinator_service_client::CoordinatorServiceClient, session_request::Kind as Up,
    session_response::Kind as Down,
};
use stampede_common::{MAX_MESSAGE_BYTES, PROTOCOL_VERSION, VERSION};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

/// The session's gRPC client, with the join token on every call.
type Client = CoordinatorServiceClient<
    tonic::service::interceptor::InterceptedService<Channel, security::Credentials>,
>;

/// How an agent is configured.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Controller URL, e.g. `http://127.0.0.1:7600`.
    pub controller: String,
    /// Agent identity, unique within a run.
    pub agent_id: String,
    /// Node (host) name.
    pub node_name: String,
    /// Cores the agent may use.
    pub cores: u32,
    /// Give up when the controller has been unreachable this long.
    pub give_up_after: Duration,
    /// The agent's clock.
    pub clock: AgentClock,
    /// TLS, join token and plaintext policy towards the controller.
    pub security: ClientSecurity,
}

/// Why an agent stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The controller could not be reached for the whole grace period.
    #[error("controller {url} unreachable for {}s (last error: {last_error}); giving up", after.as_secs())]
    Unreachable {
        /// The controller URL.
        url: String,
        /// How long the agent tried.
        after: Duration,
        /// The last connection error.
        last_error: String,
    },
    /// The security settings cannot be used (plaintext to a remote host,
    /// unreadable or mismatched TLS files, a bad token).
    #[error("{0}")]
    Config(String),
    /// The controller refused this agent.
    #[error("controller {url} refused this agent: {message} ({code:?})")]
    Refused {
        /// The controller URL.
        url: String,
        /// gRPC status code.
        code: tonic::Code,
        /// The controller's message.
        message: String,
    },
}

impl AgentError {
    /// Exit code: 2 for a configuration the agent cannot use, 1 for a run
    /// that could not complete (unreachable or refused).
    pub fn exit_code(&self) -> u8 {
        match self {
            AgentError::Config(_) => 2,
            AgentError::Unreachable { .. } | AgentError::Refused { .. } => 1,
        }
    }
}

enum SessionEnd {
    Finished,
    /// The session ended; `joined` tells whether it got as far as `Welcome`.
    Lost {
        joined: bool,
        why: String,
    },
    Refused(tonic::Status),
}

fn lost(joined: bool, why: impl Into<String>) -> SessionEnd {
    SessionEnd::Lost {
        joined,
        why: why.into(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// A client with default options (HTTP/1.1, 10 s connect timeout).
pub fn http_client() -> crate::http::Client {
    crate::http::build(&crate::http::ClientOptions::default())
        .unwrap_or_else(|_| crate::http::Client::basic())
}

/// Run the agent until the controller ends the run, `shutdown` fires, or the
/// controller stays unreachable for `give_up_after`.
pub async fn run(cfg: AgentConfig, shutdown: CancellationToken) -> Result<(), AgentError> {
    let endpoint = security::endpoint(&cfg.controller, &cfg.security)
        .map_err(|e| AgentError::Config(e.0))?
        .connect_timeout(Duration::from_secs(3))
        .http2_keep_alive_interval(link::HTTP2_PING_INTERVAL)
        .keep_alive_timeout(link::HTTP2_PING_TIMEOUT)
        .keep_alive_while_idle(true);
    let credentials =
        security::Credentials::new(&cfg.security).map_err(|e| AgentError::Config(e.0))?;
    let mut carry = Carry::new(&cfg.agent_id);
    let result = connect_loop(&cfg, &endpoint, &credentials, &mut carry, &shutdown).await;
    carry.stop_phase();
    result
}

async fn connect_loop(
    cfg: &AgentConfig,
    endpoint: &Endpoint,
    credentials: &security::Credentials,
    carry: &mut Carry,
    shutdown: &CancellationToken,
) -> Result<(), AgentError> {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut unreachable_since = Instant::now();
    let mut last_error: String;
    loop {
        let connected = tokio::select! {
            c = endpoint.connect_with_connector(one_connection()) => c,
            () = shutdown.cancelled() => return Ok(()),
        };
        match connected {
            Ok(channel) => {
                match session(channel, credentials.clone(), cfg, carry, shutdown).await {
                    SessionEnd::Finished => return Ok(()),
                    SessionEnd::Refused(status) => {
                        return Err(AgentError::Refused {
                            url: cfg.controller.clone(),
                            code: status.code(),
                            message: status.message().to_string(),
                        });
                    }
                    SessionEnd::Lost { joined, why } => {
                        if joined {
                            // A real session existed: start a fresh grace period.
                            tracing::warn!(controller = %cfg.controller, "session lost: {why}; reconnecting");
                            unreachable_since = Instant::now();
                            carry.link.send_replace(Some(unreachable_since));
                            backoff.reset();
                        }
                        last_error = why;
                    }
                }
            }
            Err(e) => {
                if let Some(why) = security::tls_refusal(&e) {
                    return Err(AgentError::Refused {
                        url: cfg.controller.clone(),
                        code: tonic::Code::Unauthenticated,
                        message: format!("TLS handshake failed: {why}"),
                    });
                }
                last_error = error_chain(&e);
            }
        }
        let elapsed = unreachable_since.elapsed();
        if elapsed >= cfg.give_up_after {
            return Err(AgentError::Unreachable {
                url: cfg.controller.clone(),
                after: elapsed,
                last_error,
            });
        }
        let delay = backoff.next_delay().min(cfg.give_up_after - elapsed);
        tracing::debug!(?delay, error = %last_error, "controller not reachable; retrying");
        // Keep taking the running phase's reports while disconnected; they
        // are sent when the next session starts.
        let wake = Instant::now() + delay;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(wake) => break,
                Some(report) = carry.report_rx.recv() => { carry.absorb(report); }
                () = shutdown.cancelled() => return Ok(()),
            }
        }
    }
}

/// Most window reports kept for resending while unacknowledged; beyond it
/// the oldest are dropped and counted (`reports_dropped`).
pub const MAX_UNACKED: usize = 1024;

/// The dead-man's switch when the assignment does not set one.
pub const DEFAULT_HALT_AFTER: Duration = Duration::from_secs(5);

/// What outlives one session: the running phase, its report stream, and the
/// reports the controller has not acknowledged yet. A dropped connection
/// does not stop the load; the reports are resent on the next session with
/// their original sequence numbers, and the controller ignores duplicates.
struct Carry {
    /// This process's incarnation (see `Hello.incarnation`).
    incarnation: u64,
    /// Since when the controller has been unreachable (`None` in a session).
    link: watch::Sender<Option<Instant>>,
    http: crate::http::ClientCache,
    report_tx: mpsc::Sender<Report>,
    report_rx: mpsc::Receiver<Report>,
    phase: Option<RunningPhase>,
    sequence: u64,
    unacked: VecDeque<proto::WindowReport>,
    dropped: u64,
    last_done: Option<proto::PhaseDone>,
    /// Windows numbered but not sent yet (see [`Gather`]).
    gather: Gather,
    /// Time between the running phase's report messages (window length ×
    /// windows per message), which sets [`link::ack_deadline`].
    report_interval: Duration,
}

impl Carry {
    fn new(agent_id: &str) -> Self {
        let (report_tx, report_rx) = mpsc::channel::<Report>(64);
        Self {
            incarnation: rand::random::<u64>() | 1,
            link: watch::Sender::new(None),
            http: crate::http::ClientCache::new(agent_id),
            report_tx,
            report_rx,
            phase: None,
            sequence: 0,
            unacked: VecDeque::new(),
            dropped: 0,
            last_done: None,
            gather: Gather::default(),
            report_interval: Duration::from_secs(1),
        }
    }

    /// Number a report and keep it until acknowledged; returns what to send
    /// now (a window may wait to go with others; a phase's end sends what
    /// waits first).
    fn absorb(&mut self, report: Report) -> Vec<Up> {
        match report {
            Report::Window(mut w) => {
                self.sequence += 1;
                w.sequence = self.sequence;
                w.incarnation = self.incarnation;
                if self.unacked.len() >= MAX_UNACKED {
                    self.unacked.pop_front();
                    self.dropped += 1;
                }
                w.reports_dropped = self.dropped;
                self.unacked.push_back((*w).clone());
                self.gather.push(*w).into_iter().collect()
            }
            Report::Done(mut d) => {
                d.halted = self
                    .phase
                    .as_ref()
                    .is_some_and(|p| p.index == d.phase_index && p.halted.load(Ordering::Relaxed));
                self.last_done = Some(d);
                let mut out: Vec<Up> = self.gather.flush().into_iter().collect();
                out.push(Up::PhaseDone(d));
                out
            }
        }
    }

    fn ack(&mut self, ack: &proto::Ack) {
        for sequence in std::iter::once(ack.sequence).chain(ack.more_sequences.iter().copied()) {
            // Acknowledgements come in sending order: the report is near the front.
            if let Some(pos) = self.unacked.iter().position(|w| w.sequence == sequence) {
                self.unacked.remove(pos);
            }
        }
    }

    /// What a new session must (re)send first, in order: every
    /// unacknowledged window (those still gathering too), in groups.
    fn backlog(&mut self) -> Vec<Up> {
        self.gather.clear();
        let mut out = self.gather.messages(self.unacked.iter().cloned());
        out.extend(self.last_done.map(Up::PhaseDone));
        out
    }

    /// Start an assigned phase (unless one is running).
    async fn assigned(&mut self, a: proto::PhaseAssignment, clock: AgentClock) {
        if let Some(p) = &self.phase
            && !p.task.is_finished()
        {
            tracing::warn!(
                phase = a.phase_index,
                "assignment while a phase runs; ignored"
            );
            return;
        }
        let template = a.request.clone().unwrap_or_default();
        self.last_done = None;
        match self.http.get(&template) {
            Ok(client) => {
                self.gather.start(a.windows_per_report, self.incarnation);
                self.report_interval = Duration::from_millis(a.window_ms) * self.gather.every();
                let (reports, link) = (self.report_tx.clone(), self.link.subscribe());
                self.phase = Some(start_phase(a, client, clock, reports, link));
            }
            Err(e) => {
                tracing::error!(phase = a.phase_index, "cannot run the phase: {e}");
                let done = proto::PhaseDone {
                    phase_index: a.phase_index,
                    ..Default::default()
                };
                let _ = self.report_tx.send(Report::Done(done)).await;
            }
        }
    }

    fn stop_phase(&mut self) {
        if let Some(p) = self.phase.take() {
            p.stop.cancel();
            p.task.abort();
        }
    }
}

/// A connector that dials once. tonic's channel redials on its own, without
/// delay, whenever its connection drops; with this connector a dropped
/// connection fails the session instead, and the next dial goes through
/// [`Backoff`].
fn one_connection() -> impl tower::Service<
    tonic::codegen::http::Uri,
    Response = hyper_util::rt::TokioIo<tokio::net::TcpStream>,
    Error = std::io::Error,
    Future = impl Send,
> + Send
+ Clone
+ 'static {
    let used = Arc::new(AtomicBool::new(false));
    tower::service_fn(move |uri: tonic::codegen::http::Uri| {
        let used = used.clone();
        async move {
            if used.swap(true, Ordering::SeqCst) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "connection to the controller lost",
                ));
            }
            let host = uri
                .host()
                .unwrap_or("localhost")
                .trim_start_matches('[')
                .trim_end_matches(']');
            let port = uri.port_u16().unwrap_or(80);
            let stream = tokio::net::TcpStream::connect((host, port)).await?;
            link::tune(&stream)?;
            Ok(hyper_util::rt::TokioIo::new(stream))
        }
    })
}

fn is_refusal(status: &tonic::Status) -> bool {
    use tonic::Code;
    matches!(
        status.code(),
        Code::Unauthenticated
            | Code::PermissionDenied
            | Code::InvalidArgument
            | Code::FailedPrecondition
    )
}

fn ended(status: tonic::Status, joined: bool) -> SessionEnd {
    if is_refusal(&status) {
        return SessionEnd::Refused(status);
    }
    if status.code() == tonic::Code::AlreadyExists {
        // Another process with this id, or this agent's previous process
        // whose connection the controller has not seen close yet: retried
        // until `give_up_after`.
        tracing::warn!("{}; retrying", status.message());
    }
    if let Some(why) = security::tls_refusal(&status) {
        return SessionEnd::Refused(tonic::Status::unauthenticated(format!(
            "TLS handshake failed: {why}"
        )));
    }
    lost(
        joined,
        format!("{}: {}", status.code(), error_chain(&status)),
    )
}

async fn session(
    channel: Channel,
    credentials: security::Credentials,
    cfg: &AgentConfig,
    carry: &mut Carry,
    shutdown: &CancellationToken,
) -> SessionEnd {
    let mut client: Client = CoordinatorServiceClient::with_interceptor(channel, credentials)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let (tx, rx) = mpsc::channel::<SessionRequest>(256);
    let hello = Hello {
        agent_id: cfg.agent_id.clone(),
        node_name: cfg.node_name.clone(),
        version: VERSION.to_string(),
        cores: cfg.cores,
        protocol_version: PROTOCOL_VERSION,
        incarnation: carry.incarnation,
    };
    let _ = tx
        .send(SessionRequest {
            kind: Some(Up::Hello(hello)),
        })
        .await;
    let opened = async {
        let mut inbound = client.session(ReceiverStream::new(rx)).await?.into_inner();
        let first = inbound.message().await?;
        Ok::<_, tonic::Status>((inbound, first))
    };
    let (mut inbound, first) = match tokio::time::timeout(link::WELCOME_TIMEOUT, opened).await {
        Ok(Ok(opened)) => opened,
        Ok(Err(status)) => return ended(status, false),
        Err(_) => {
            let waited = link::WELCOME_TIMEOUT;
            return lost(false, format!("no Welcome within {waited:?} of Hello"));
        }
    };
    match first {
        Some(proto::SessionResponse {
            kind: Some(Down::Welcome(w)),
        }) => {
            tracing::info!(agent = %cfg.agent_id, run = %w.run_id, "joined controller {}", cfg.controller);
            carry.link.send_replace(None);
        }
        Some(_) => return lost(false, "controller did not answer Hello with Welcome"),
        None => return lost(false, "controller closed the session before Welcome"),
    }

    let backlog = carry.backlog();
    if !backlog.is_empty() {
        tracing::info!(reports = backlog.len(), "resending unacknowledged reports");
    }
    let mut watch = AckWatch::default();
    for kind in backlog {
        watch.sent(&kind, Instant::now());
        if tx.send(SessionRequest { kind: Some(kind) }).await.is_err() {
            return lost(true, "outbound stream closed");
        }
    }
    // A ping in flight (see [`link`]): whether the controller answered.
    let mut asking: Option<Pin<Box<dyn Future<Output = bool> + Send>>> = None;
    loop {
        let due = watch.due(link::ack_deadline(carry.report_interval));
        tokio::select! {
            msg = inbound.message() => match msg {
                Ok(Some(m)) => {
                    if let Some(end) = on_message(m, &tx, cfg, carry, &mut watch).await {
                        return end;
                    }
                }
                Ok(None) => return lost(true, "controller closed the session"),
                Err(status) => return ended(status, true),
            },
            Some(report) = carry.report_rx.recv() => {
                for kind in carry.absorb(report) {
                    watch.sent(&kind, Instant::now());
                    if tx.send(SessionRequest { kind: Some(kind) }).await.is_err() {
                        return lost(true, "outbound stream closed");
                    }
                }
            }
            () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() && asking.is_none() => {
                asking = Some(Box::pin(controller_answers(client.clone())));
            }
            answered = async { asking.as_mut().expect("guarded").await }, if asking.is_some() => {
                asking = None;
                if !answered {
                    return lost(true, format!(
                        "a report waited {:?} for its acknowledgement and a ping went unanswered for {:?}",
                        link::ack_deadline(carry.report_interval), link::PING_TIMEOUT
                    ));
                }
                tracing::debug!("a report waits for its acknowledgement, but the controller answers");
                watch.answered();
            }
            () = shutdown.cancelled() => return SessionEnd::Finished,
        }
    }
}

/// Whether the controller's process answers a ping within
/// [`link::PING_TIMEOUT`] (a controller without the call answers too).
async fn controller_answers(mut client: Client) -> bool {
    match tokio::time::timeout(link::PING_TIMEOUT, client.ping(proto::PingRequest {})).await {
        Ok(Ok(_)) => true,
        Ok(Err(status)) => status.code() == tonic::Code::Unimplemented,
        Err(_) => false,
    }
}

/// Act on one message from the controller; `Some` ends the session.
async fn on_message(
    m: proto::SessionResponse,
    tx: &mpsc::Sender<SessionRequest>,
    cfg: &AgentConfig,
    carry: &mut Carry,
    watch: &mut AckWatch,
) -> Option<SessionEnd> {
    match m.kind {
        Some(Down::ClockProbe(p)) => {
            let received = cfg.clock.now_unix_nanos();
            let reply = ClockProbeReply {
                probe_id: p.probe_id,
                agent_receive_unix_nanos: received,
                agent_send_unix_nanos: cfg.clock.now_unix_nanos(),
            };
            let up = SessionRequest {
                kind: Some(Up::ClockProbeReply(reply)),
            };
            if tx.send(up).await.is_err() {
                return Some(lost(true, "outbound stream closed"));
            }
        }
        Some(Down::PhaseAssignment(a)) => carry.assigned(a, cfg.clock).await,
        Some(Down::Ack(a)) => {
            watch.acked(&a);
            carry.ack(&a);
        }
        Some(Down::Reshard(r)) => match &carry.phase {
            Some(p) if !p.task.is_finished() => {
                tracing::info!(
                    phase = r.phase_index,
                    from_ms = r.from_ms,
                    "taking a new slice of the phase"
                );
                p.reshards.send_modify(|all| all.push(r));
            }
            _ => tracing::debug!(
                phase = r.phase_index,
                "reshard for a phase not running; ignored"
            ),
        },
        Some(Down::Welcome(_)) | None => {}
        Some(Down::Stop(s)) => {
            tracing::debug!(reason = %s.reason, abort = s.abort, "stop order");
            if let Some(p) = &carry.phase {
                p.stop.cancel();
            }
            if s.abort {
                return Some(SessionEnd::Finished);
            }
        }
    }
    None
}

/// The phase this agent is running.
struct RunningPhase {
    /// Its assignment's number.
    index: u32,
    task: JoinHandle<()>,
    stop: CancellationToken,
    /// Every reshard of the phase so far.
    reshards: watch::Sender<Vec<proto::Reshard>>,
    /// Whether the dead-man's switch stopped it.
    halted: Arc<AtomicBool>,
}

fn start_phase(
    a: proto::PhaseAssignment,
    http: crate::http::Client,
    clock: AgentClock,
    reports: mpsc::Sender<Report>,
    link: watch::Receiver<Option<Instant>>,
) -> RunningPhase {
    let stop = CancellationToken::new();
    let (reshards, reshards_rx) = watch::channel(Vec::new());
    let phase_index = a.phase_index;
    let halted = Arc::new(AtomicBool::new(false));
    let halt_after = match a.halt_after_ms {
        0 => DEFAULT_HALT_AFTER,
        ms => Duration::from_millis(ms),
    };
    tokio::spawn(dead_mans_switch(
        link,
        halt_after,
        stop.clone(),
        halted.clone(),
    ));
    let task = tokio::spawn({
        let stop = stop.clone();
        async move {
            let ran = engine::run_phase(a, http, clock, reports.clone(), stop.clone(), reshards_rx);
            let ran = ran.await;
            // The phase is over: its dead-man's switch with it.
            stop.cancel();
            if let Err(e) = ran {
                tracing::error!(phase = phase_index, "{e}");
                let _ = reports
                    .send(Report::Done(proto::PhaseDone {
                        phase_index,
                        ..Default::default()
                    }))
                    .await;
            }
        }
    });
    RunningPhase {
        index: phase_index,
        task,
        stop,
        reshards,
        halted,
    }
}

/// Stop the phase (`stop`) once the controller has been unreachable for
/// `halt_after`, and say so in `halted`; ends with the phase.
async fn dead_mans_switch(
    mut link: watch::Receiver<Option<Instant>>,
    halt_after: Duration,
    stop: CancellationToken,
    halted: Arc<AtomicBool>,
) {
    loop {
        let lost_since = *link.borrow_and_update();
        let halt_at = lost_since.map(|t| t + halt_after);
        tokio::select! {
            () = stop.cancelled() => return,
            changed = link.changed() => if changed.is_err() { return },
            () = tokio::time::sleep_until(halt_at.unwrap_or_else(Instant::now)), if halt_at.is_some() => {
                tracing::warn!(
                    after = ?halt_after,
                    "controller unreachable: stopping this phase's load (dead-man's switch)"
                );
                halted.store(true, Ordering::Relaxed);
                stop.cancel();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> Report {
        Report::Window(Box::default())
    }

    #[test]
    fn reports_are_numbered_kept_until_acked_and_resent_in_order() {
        let mut c = Carry::new("a");
        for _ in 0..3 {
            c.absorb(window());
        }
        c.absorb(Report::Done(proto::PhaseDone {
            phase_index: 0,
            windows: 3,
            ..Default::default()
        }));
        c.ack(&proto::Ack {
            sequence: 2,
            more_sequences: vec![],
        });
        let seqs: Vec<u64> = c
            .backlog()
            .iter()
            .filter_map(|k| match k {
                Up::WindowReport(w) => Some(w.sequence),
                _ => None,
            })
            .collect();
        assert_eq!(seqs, vec![1, 3]);
        assert!(matches!(c.backlog().last(), Some(Up::PhaseDone(d)) if d.windows == 3));
    }

    #[test]
    fn gathered_windows_go_before_the_phase_end_and_one_ack_takes_them_all() {
        let mut c = Carry::new("a");
        c.gather.start(10, 0);
        for i in 0..3 {
            let w = proto::WindowReport {
                window_index: i,
                ..Default::default()
            };
            assert!(c.absorb(Report::Window(Box::new(w))).is_empty());
        }
        let sent = c.absorb(Report::Done(proto::PhaseDone::default()));
        let [Up::WindowReports(b), Up::PhaseDone(_)] = sent.as_slice() else {
            panic!("expected the gathered windows, then the phase's end: {sent:?}");
        };
        let seqs: Vec<u64> = b.reports.iter().map(|w| w.sequence).collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        c.ack(&proto::Ack {
            sequence: 1,
            more_sequences: vec![2, 3],
        });
        assert!(c.unacked.is_empty());
    }

    #[test]
    fn the_buffer_is_bounded_and_drops_are_counted() {
        let mut c = Carry::new("a");
        for _ in 0..MAX_UNACKED + 5 {
            c.absorb(window());
        }
        assert_eq!(c.unacked.len(), MAX_UNACKED);
        assert_eq!(c.dropped, 5);
        assert_eq!(c.unacked.front().map(|w| w.sequence), Some(6));
        assert_eq!(c.unacked.back().map(|w| w.reports_dropped), Some(5));
    }
}

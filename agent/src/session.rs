//! The agent's side of the gRPC session: dial the controller with capped,
//! jittered backoff, register, answer clock probes, run assigned phases and
//! stream their windows back with sequence numbers.

use crate::backoff::Backoff;
use crate::engine::{self, AgentClock, Report};
use stampede_common::proto::{
    self, ClockProbeReply, Hello, SessionRequest,
    coordinator_service_client::CoordinatorServiceClient, session_request::Kind as Up,
    session_response::Kind as Down,
};
use stampede_common::{MAX_MESSAGE_BYTES, PROTOCOL_VERSION, VERSION};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

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
}

/// Why an agent stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The controller URL cannot be used.
    #[error("invalid controller URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// Why it is invalid.
        reason: String,
    },
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
pub fn http_client() -> reqwest::Client {
    crate::http::build(&crate::http::ClientOptions::default())
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Run the agent until the controller ends the run, `shutdown` fires, or the
/// controller stays unreachable for `give_up_after`.
pub async fn run(cfg: AgentConfig, shutdown: CancellationToken) -> Result<(), AgentError> {
    let endpoint = Endpoint::from_shared(cfg.controller.clone())
        .map_err(|e| AgentError::BadUrl {
            url: cfg.controller.clone(),
            reason: error_chain(&e),
        })?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true);
    let mut http = crate::http::ClientCache::new(&cfg.agent_id);
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut unreachable_since = Instant::now();
    let mut last_error: String;
    loop {
        let connected = tokio::select! {
            c = endpoint.connect_with_connector(one_connection()) => c,
            () = shutdown.cancelled() => return Ok(()),
        };
        match connected {
            Ok(channel) => match session(channel, &cfg, &mut http, &shutdown).await {
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
                        backoff.reset();
                    }
                    last_error = why;
                }
            },
            Err(e) => last_error = error_chain(&e),
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
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return Ok(()),
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
            stream.set_nodelay(true)?;
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
            | Code::AlreadyExists
            | Code::FailedPrecondition
    )
}

fn ended(status: tonic::Status, joined: bool) -> SessionEnd {
    if is_refusal(&status) {
        SessionEnd::Refused(status)
    } else {
        lost(
            joined,
            format!("{}: {}", status.code(), error_chain(&status)),
        )
    }
}

async fn session(
    channel: Channel,
    cfg: &AgentConfig,
    http: &mut crate::http::ClientCache,
    shutdown: &CancellationToken,
) -> SessionEnd {
    let mut client = CoordinatorServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let (tx, rx) = mpsc::channel::<SessionRequest>(256);
    let hello = Hello {
        agent_id: cfg.agent_id.clone(),
        node_name: cfg.node_name.clone(),
        version: VERSION.to_string(),
        cores: cfg.cores,
        protocol_version: PROTOCOL_VERSION,
    };
    let _ = tx
        .send(SessionRequest {
            kind: Some(Up::Hello(hello)),
        })
        .await;
    let mut inbound = match client.session(ReceiverStream::new(rx)).await {
        Ok(r) => r.into_inner(),
        Err(status) => return ended(status, false),
    };
    match inbound.message().await {
        Ok(Some(proto::SessionResponse {
            kind: Some(Down::Welcome(w)),
        })) => {
            tracing::info!(agent = %cfg.agent_id, run = %w.run_id, "joined controller {}", cfg.controller);
        }
        Ok(Some(_)) => {
            return lost(false, "controller did not answer Hello with Welcome");
        }
        Ok(None) => return lost(false, "controller closed the session before Welcome"),
        Err(status) => return ended(status, false),
    }

    let (report_tx, mut report_rx) = mpsc::channel::<Report>(64);
    let mut phase: Option<(JoinHandle<()>, CancellationToken)> = None;
    let mut sequence: u64 = 0;
    let end = loop {
        tokio::select! {
            msg = inbound.message() => match msg {
                Ok(Some(m)) => match m.kind {
                    Some(Down::ClockProbe(p)) => {
                        let received = cfg.clock.now_unix_nanos();
                        let reply = ClockProbeReply {
                            probe_id: p.probe_id,
                            agent_receive_unix_nanos: received,
                            agent_send_unix_nanos: cfg.clock.now_unix_nanos(),
                        };
                        if tx.send(SessionRequest { kind: Some(Up::ClockProbeReply(reply)) }).await.is_err() {
                            break lost(true, "outbound stream closed");
                        }
                    }
                    Some(Down::PhaseAssignment(a)) => {
                        if let Some((task, _)) = &phase
                            && !task.is_finished()
                        {
                                tracing::warn!(phase = a.phase_index, "assignment while a phase runs; ignored");
                                continue;
                        }
                        let template = a.request.clone().unwrap_or_default();
                        match http.get(&template) {
                            Ok(client) => phase = Some(start_phase(a, client, cfg.clock, report_tx.clone())),
                            Err(e) => {
                                tracing::error!(phase = a.phase_index, "cannot run the phase: {e}");
                                let done = proto::PhaseDone { phase_index: a.phase_index, ..Default::default() };
                                let _ = report_tx.send(Report::Done(done)).await;
                            }
                        }
                    }
                    Some(Down::Ack(_)) | Some(Down::Welcome(_)) | None => {}
                    Some(Down::Stop(s)) => {
                        tracing::debug!(reason = %s.reason, abort = s.abort, "stop order");
                        if let Some((_, stop)) = &phase {
                            stop.cancel();
                        }
                        if s.abort {
                            break SessionEnd::Finished;
                        }
                    }
                },
                Ok(None) => break lost(true, "controller closed the session"),
                Err(status) => break ended(status, true),
            },
            Some(report) = report_rx.recv() => {
                let kind = match report {
                    Report::Window(mut w) => {
                        sequence += 1;
                        w.sequence = sequence;
                        Up::WindowReport(w)
                    }
                    Report::Done(d) => Up::PhaseDone(d),
                };
                if tx.send(SessionRequest { kind: Some(kind) }).await.is_err() {
                    break lost(true, "outbound stream closed");
                }
            }
            () = shutdown.cancelled() => break SessionEnd::Finished,
        }
    };
    if let Some((task, stop)) = phase {
        stop.cancel();
        task.abort();
    }
    end
}

fn start_phase(
    a: proto::PhaseAssignment,
    http: reqwest::Client,
    clock: AgentClock,
    reports: mpsc::Sender<Report>,
) -> (JoinHandle<()>, CancellationToken) {
    let stop = CancellationToken::new();
    let phase_index = a.phase_index;
    let task = tokio::spawn({
        let stop = stop.clone();
        async move {
            if let Err(e) = engine::run_phase(a, http, clock, reports.clone(), stop).await {
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
    (task, stop)
}

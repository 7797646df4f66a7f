//! A dropped controller connection neither stops the load nor loses
//! reports: the agent keeps running its phase, reconnects, and resends every
//! unacknowledged report with its original sequence number.
//!
//! A controller that acknowledges nothing but answers the agent's `Ping`
//! call keeps its session (it is behind, not gone); one that answers neither
//! is left once a report has waited out the deadline and the ping its
//! timeout (`stampede_agent::link`).

use stampede_agent::{AgentClock, AgentConfig};
use stampede_common::proto::{
    self, SessionRequest, SessionResponse, Welcome,
    coordinator_service_server::{CoordinatorService, CoordinatorServiceServer},
    session_request::Kind as Up,
    session_response::Kind as Down,
};
use stampede_sim::SimConfig;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

/// What the fake controller saw: (session number, sequence) of each window
/// report, and the PhaseDone messages.
#[derive(Default)]
struct Seen {
    windows: Vec<(u32, u64)>,
    /// When the first window report arrived.
    first_window_at: Option<tokio::time::Instant>,
    done: u32,
}

/// How the fake controller treats window reports.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Session 1 acknowledges nothing and hangs up after two reports; later
    /// sessions acknowledge every report.
    HangUpOnce,
    /// No report is ever acknowledged; `Ping` calls are answered or not.
    NeverAck { answer_pings: bool },
}

#[derive(Clone)]
struct Fake {
    mode: Mode,
    sessions: Arc<Mutex<u32>>,
    /// When each session started.
    started: Arc<Mutex<Vec<tokio::time::Instant>>>,
    pings: Arc<Mutex<u32>>,
    seen: Arc<Mutex<Seen>>,
    assignment: proto::PhaseAssignment,
}

#[tonic::async_trait]
impl CoordinatorService for Fake {
    type SessionStream = ReceiverStream<Result<SessionResponse, Status>>;

    async fn session(
        &self,
        request: Request<Streaming<SessionRequest>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let mut inbound = request.into_inner();
        let _hello = inbound.message().await?;
        let session = {
            let mut n = self.sessions.lock().unwrap();
            *n += 1;
            *n
        };
        self.started
            .lock()
            .unwrap()
            .push(tokio::time::Instant::now());
        let (tx, rx) = mpsc::channel(16);
        let welcome = Welcome {
            agent_id: "a".into(),
            run_id: "r".into(),
            controller_version: "t".into(),
        };
        tx.send(Ok(SessionResponse {
            kind: Some(Down::Welcome(welcome)),
        }))
        .await
        .unwrap();
        if session == 1 {
            tx.send(Ok(SessionResponse {
                kind: Some(Down::PhaseAssignment(self.assignment.clone())),
            }))
            .await
            .unwrap();
        }
        let (seen, mode) = (self.seen.clone(), self.mode);
        tokio::spawn(async move {
            let mut windows_this_session = 0;
            while let Ok(Some(m)) = inbound.message().await {
                match m.kind {
                    Some(Up::WindowReport(w)) => {
                        {
                            let mut seen = seen.lock().unwrap();
                            seen.windows.push((session, w.sequence));
                            seen.first_window_at
                                .get_or_insert_with(tokio::time::Instant::now);
                        }
                        windows_this_session += 1;
                        if mode != Mode::HangUpOnce {
                            continue;
                        }
                        if session == 1 {
                            // Acknowledge nothing, and hang up after two reports.
                            if windows_this_session == 2 {
                                return;
                            }
                            continue;
                        }
                        let ack = proto::Ack {
                            sequence: w.sequence,
                            more_sequences: Vec::new(),
                        };
                        let _ = tx
                            .send(Ok(SessionResponse {
                                kind: Some(Down::Ack(ack)),
                            }))
                            .await;
                    }
                    Some(Up::PhaseDone(_)) => {
                        seen.lock().unwrap().done += 1;
                        let stop = proto::Stop {
                            reason: "done".into(),
                            abort: true,
                        };
                        let _ = tx
                            .send(Ok(SessionResponse {
                                kind: Some(Down::Stop(stop)),
                            }))
                            .await;
                    }
                    _ => {}
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn ping(
        &self,
        _: Request<proto::PingRequest>,
    ) -> Result<Response<proto::PingResponse>, Status> {
        *self.pings.lock().unwrap() += 1;
        if self.mode
            == (Mode::NeverAck {
                answer_pings: false,
            })
        {
            std::future::pending::<()>().await;
        }
        Ok(Response::new(proto::PingResponse {}))
    }
}

/// A simulator, a fake controller in `mode` assigning one phase of
/// `duration_ms` in 250 ms windows at 40 req/s, and an agent's settings
/// for it.
async fn start(mode: Mode, duration_ms: u64) -> (Fake, AgentConfig, CancellationToken) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stop = CancellationToken::new();
    let sim_cfg = SimConfig {
        ttft: Duration::from_millis(2),
        itl: Duration::from_millis(1),
        output_tokens: 4,
        ..SimConfig::default()
    };
    let sim = stampede_sim::start(sim_cfg, "127.0.0.1:0".parse().unwrap(), stop.clone())
        .await
        .unwrap();

    let clock = AgentClock::default();
    let assignment = proto::PhaseAssignment {
        phase_index: 0,
        phase_name: "p".into(),
        start_unix_nanos: clock.now_unix_nanos() + 200_000_000,
        duration_ms,
        drain_ms: 2_000,
        window_ms: 250,
        shard: Some(proto::Shard {
            index: 0,
            count: 1,
            ..Default::default()
        }),
        load: Some(proto::LoadShape {
            shape: Some(proto::load_shape::Shape::OpenLoop(proto::OpenLoop {
                profile: Some(proto::RateProfile {
                    profile: Some(proto::rate_profile::Profile::Constant(
                        proto::ConstantRate {
                            requests_per_second: 40.0,
                        },
                    )),
                }),
                arrival: proto::Arrival::Uniform as i32,
                ..Default::default()
            })),
        }),
        request: Some(proto::RequestTemplate {
            base_url: format!("http://{}", sim.addr),
            api: proto::Api::Chat as i32,
            model: "stampede-sim".into(),
            prompt: "hello".into(),
            max_tokens: 4,
            stream: true,
            timeout_ms: 5_000,
            ..Default::default()
        }),
        ..Default::default()
    };
    let fake = Fake {
        mode,
        sessions: Arc::default(),
        started: Arc::default(),
        pings: Arc::default(),
        seen: Arc::default(),
        assignment,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(CoordinatorServiceServer::new(fake.clone()))
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(listener),
                stop.clone().cancelled_owned(),
            ),
    );

    let cfg = AgentConfig {
        controller: format!("http://{addr}"),
        agent_id: "a".into(),
        node_name: "n".into(),
        cores: 1,
        give_up_after: Duration::from_secs(10),
        clock,
        security: Default::default(),
    };
    (fake, cfg, stop)
}

/// Run the agent to its end (at most 30 s).
async fn run_agent(cfg: AgentConfig, stop: &CancellationToken) {
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        stampede_agent::run(cfg, stop.clone()),
    )
    .await;
    assert!(matches!(result, Ok(Ok(()))), "agent ended with {result:?}");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_reports_are_resent_after_reconnecting() {
    let (fake, cfg, stop) = start(Mode::HangUpOnce, 1_500).await;
    run_agent(cfg, &stop).await;
    let seen = fake.seen.lock().unwrap();
    assert_eq!(
        *fake.sessions.lock().unwrap(),
        2,
        "the agent reconnected once"
    );
    let first: Vec<u64> = seen
        .windows
        .iter()
        .filter(|(s, _)| *s == 1)
        .map(|(_, q)| *q)
        .collect();
    let second: Vec<u64> = seen
        .windows
        .iter()
        .filter(|(s, _)| *s == 2)
        .map(|(_, q)| *q)
        .collect();
    assert_eq!(first, vec![1, 2]);
    // Both unacknowledged reports come again first, then the rest in order.
    assert_eq!(&second[..2], &[1, 2], "{second:?}");
    let n = *second.last().unwrap();
    assert_eq!(second[2..].to_vec(), (3..=n).collect::<Vec<_>>());
    // 1.5 s phase in 250 ms windows, plus the drain window(s): every window arrived.
    assert!(n >= 6, "only {n} windows");
    assert_eq!(seen.done, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_that_answers_pings_keeps_its_session_though_it_acknowledges_nothing() {
    let (fake, cfg, stop) = start(Mode::NeverAck { answer_pings: true }, 5_000).await;
    run_agent(cfg, &stop).await;
    let pings = *fake.pings.lock().unwrap();
    // Reports wait from the phase's first window (0.45 s in) to its end
    // (5.2 s), 2 s at a time before each ping.
    assert!((2..=4).contains(&pings), "{pings} pings");
    assert_eq!(*fake.sessions.lock().unwrap(), 1, "the agent stayed");
    assert_eq!(fake.seen.lock().unwrap().done, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_that_answers_neither_reports_nor_pings_is_left() {
    let (fake, cfg, stop) = start(
        Mode::NeverAck {
            answer_pings: false,
        },
        5_000,
    )
    .await;
    run_agent(cfg, &stop).await;
    let first_report = fake.seen.lock().unwrap().first_window_at.expect("a report");
    let started = fake.started.lock().unwrap().clone();
    assert!(
        started.len() >= 2,
        "the agent never left: {} session(s)",
        started.len()
    );
    // The first report's deadline (2 s), then the ping's timeout (2 s).
    let left_after = started[1] - first_report;
    assert!(
        left_after >= Duration::from_millis(3_800) && left_after <= Duration::from_secs(8),
        "the second session began {left_after:?} after the first report"
    );
    assert!(*fake.pings.lock().unwrap() >= 1);
    assert_eq!(fake.seen.lock().unwrap().done, 1, "PhaseDone still arrived");
}

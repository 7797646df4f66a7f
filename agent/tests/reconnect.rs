//! A dropped controller connection neither stops the load nor loses
//! reports: the agent keeps running its phase, reconnects, and resends every
//! unacknowledged report with its original sequence number.

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
    done: u32,
}

#[derive(Clone)]
struct Fake {
    sessions: Arc<Mutex<u32>>,
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
        let seen = self.seen.clone();
        tokio::spawn(async move {
            let mut windows_this_session = 0;
            while let Ok(Some(m)) = inbound.message().await {
                match m.kind {
                    Some(Up::WindowReport(w)) => {
                        seen.lock().unwrap().windows.push((session, w.sequence));
                        windows_this_session += 1;
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
        Ok(Response::new(proto::PingResponse {}))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_reports_are_resent_after_reconnecting() {
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
        duration_ms: 1_500,
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
        sessions: Arc::default(),
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
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        stampede_agent::run(cfg, stop.clone()),
    )
    .await;
    assert!(matches!(result, Ok(Ok(()))), "agent ended with {result:?}");
    stop.cancel();

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

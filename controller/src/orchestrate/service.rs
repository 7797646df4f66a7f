//! The gRPC `CoordinatorService`: accepts agent sessions and turns each into
//! events for the run loop. Validation happens at the boundary with precise
//! status codes: a first frame that is not `Hello` is `INVALID_ARGUMENT`, an
//! unknown protocol revision `FAILED_PRECONDITION`, a duplicate agent id
//! `ALREADY_EXISTS`, no Hello within [`HELLO_TIMEOUT`] `DEADLINE_EXCEEDED`.

use stampede_common::PROTOCOL_VERSION;
use stampede_common::proto::{
    Hello, SessionRequest, SessionResponse, Welcome,
    coordinator_service_server::CoordinatorService, session_request::Kind as Up,
    session_response::Kind as Down,
};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// Sender half of an agent's downstream.
pub type AgentTx = mpsc::Sender<Result<SessionResponse, Status>>;

/// What happened on an agent session.
#[derive(Debug)]
pub enum Event {
    /// An agent registered.
    Joined {
        /// Its hello.
        hello: Hello,
        /// Where to send it messages.
        tx: AgentTx,
    },
    /// An agent sent a message.
    Message {
        /// Agent id.
        agent: String,
        /// The message.
        kind: Up,
        /// When it arrived (Unix ns, controller clock).
        at_unix_nanos: i64,
    },
    /// An agent's session ended.
    Left {
        /// Agent id.
        agent: String,
        /// Why.
        reason: String,
    },
}

/// Longest agent id accepted.
const MAX_AGENT_ID: usize = 253;

/// How long a new session may take to send its Hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// The service; cheap to clone.
#[derive(Clone)]
pub struct Coordinator {
    run_id: String,
    events: mpsc::Sender<Event>,
    live: Arc<Mutex<HashSet<String>>>,
}

impl Coordinator {
    /// A service that reports sessions into `events`.
    pub fn new(run_id: String, events: mpsc::Sender<Event>) -> Self {
        Self {
            run_id,
            events,
            live: Arc::default(),
        }
    }
}

fn check_hello(h: &Hello) -> Result<(), Status> {
    if h.agent_id.is_empty()
        || h.agent_id.len() > MAX_AGENT_ID
        || h.agent_id.chars().any(char::is_control)
    {
        return Err(Status::invalid_argument(format!(
            "agent_id {:?} must be 1..={MAX_AGENT_ID} printable characters",
            h.agent_id
        )));
    }
    if h.protocol_version != PROTOCOL_VERSION {
        return Err(Status::failed_precondition(format!(
            "agent speaks protocol {}, this controller speaks {PROTOCOL_VERSION}",
            h.protocol_version
        )));
    }
    Ok(())
}

#[tonic::async_trait]
impl CoordinatorService for Coordinator {
    type SessionStream = ReceiverStream<Result<SessionResponse, Status>>;

    async fn session(
        &self,
        request: Request<Streaming<SessionRequest>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| {
                Status::deadline_exceeded(format!(
                    "no Hello within {HELLO_TIMEOUT:?}: the first message of a session must be Hello"
                ))
            })?;
        let hello = match first? {
            Some(SessionRequest {
                kind: Some(Up::Hello(h)),
            }) => h,
            Some(_) => {
                return Err(Status::invalid_argument(
                    "the first message of a session must be Hello",
                ));
            }
            None => return Err(Status::invalid_argument("session closed before Hello")),
        };
        check_hello(&hello)?;
        let agent = hello.agent_id.clone();
        {
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            if !live.insert(agent.clone()) {
                return Err(Status::already_exists(format!(
                    "an agent with id {agent:?} is already connected"
                )));
            }
        }
        let (tx, rx) = mpsc::channel(64);
        let welcome = Welcome {
            agent_id: agent.clone(),
            run_id: self.run_id.clone(),
            controller_version: stampede_common::VERSION.to_string(),
        };
        let _ = tx
            .send(Ok(SessionResponse {
                kind: Some(Down::Welcome(welcome)),
            }))
            .await;
        if self.events.send(Event::Joined { hello, tx }).await.is_err() {
            self.live
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&agent);
            return Err(Status::unavailable("the controller is shutting down"));
        }
        let events = self.events.clone();
        let live = self.live.clone();
        tokio::spawn(async move {
            let reason = loop {
                match inbound.message().await {
                    Ok(Some(SessionRequest { kind: Some(kind) })) => {
                        let at_unix_nanos = crate::orchestrate::clock::now_unix_nanos();
                        if events
                            .send(Event::Message {
                                agent: agent.clone(),
                                kind,
                                at_unix_nanos,
                            })
                            .await
                            .is_err()
                        {
                            break "controller stopped".to_string();
                        }
                    }
                    Ok(Some(SessionRequest { kind: None })) => {}
                    Ok(None) => break "session closed by the agent".to_string(),
                    Err(status) => break format!("{}: {}", status.code(), status.message()),
                }
            };
            live.lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&agent);
            let _ = events.send(Event::Left { agent, reason }).await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

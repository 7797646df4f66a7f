//! The gRPC `CoordinatorService`: accepts agent sessions and turns each into
//! events for the run loop. Validation happens at the boundary with precise
//! status codes: a first frame that is not `Hello` is `INVALID_ARGUMENT`, an
//! unknown protocol revision `FAILED_PRECONDITION`, a duplicate agent id
//! `ALREADY_EXISTS`, no Hello within [`HELLO_TIMEOUT`] `DEADLINE_EXCEEDED`.
//! A second session of the same agent process (same id and incarnation: it
//! saw its connection drop before this side did) takes over from the first.

use stampede_common::PROTOCOL_VERSION;
use stampede_common::proto::{
    Hello, PingRequest, PingResponse, SessionRequest, SessionResponse, Welcome,
    coordinator_service_server::CoordinatorService, session_request::Kind as Up,
    session_response::Kind as Down,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
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
        /// The session's number, unique in this process.
        session: u64,
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
        /// The session that ended (a later one may have taken over).
        session: u64,
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
    /// Connected agents: incarnation and session number, by id.
    live: Arc<Mutex<HashMap<String, (u64, u64)>>>,
    sessions: Arc<AtomicU64>,
}

impl Coordinator {
    /// A service that reports sessions into `events`.
    pub fn new(run_id: String, events: mpsc::Sender<Event>) -> Self {
        Self {
            run_id,
            events,
            live: Arc::default(),
            sessions: Arc::default(),
        }
    }
}

impl Coordinator {
    /// Take `hello`'s agent as connected in `session`: refused while another
    /// process with its id is connected; the same process (same non-zero
    /// incarnation) replaces its older session.
    fn register(&self, hello: &Hello, session: u64) -> Result<(), Status> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        match live.get(&hello.agent_id) {
            Some((incarnation, _)) if *incarnation != hello.incarnation || *incarnation == 0 => {
                Err(Status::already_exists(format!(
                    "an agent with id {:?} is already connected",
                    hello.agent_id
                )))
            }
            _ => {
                live.insert(hello.agent_id.clone(), (hello.incarnation, session));
                Ok(())
            }
        }
    }

    /// `session` of `agent` ended; a session that took over stays.
    fn unregister(&self, agent: &str, session: u64) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if live.get(agent).is_some_and(|(_, s)| *s == session) {
            live.remove(agent);
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
        let session = self.sessions.fetch_add(1, Ordering::Relaxed) + 1;
        self.register(&hello, session)?;
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
        let joined = Event::Joined { hello, tx, session };
        if self.events.send(joined).await.is_err() {
            self.unregister(&agent, session);
            return Err(Status::unavailable("the controller is shutting down"));
        }
        let events = self.events.clone();
        let this = self.clone();
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
            this.unregister(&agent, session);
            let left = Event::Left {
                agent,
                reason,
                session,
            };
            let _ = events.send(left).await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    /// Answered here, not by the run loop: an agent whose report waits for
    /// its acknowledgement learns the controller is there, only behind.
    async fn ping(&self, _: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        Ok(Response::new(PingResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(id: &str, incarnation: u64) -> Hello {
        Hello {
            agent_id: id.into(),
            incarnation,
            protocol_version: PROTOCOL_VERSION,
            ..Default::default()
        }
    }

    #[test]
    fn the_same_process_takes_over_its_session_and_another_is_refused() {
        let (tx, _rx) = mpsc::channel(1);
        let c = Coordinator::new("run".into(), tx);
        c.register(&hello("a", 7), 1).unwrap();
        // Its own second session replaces the first…
        c.register(&hello("a", 7), 2).unwrap();
        // …so the first one's end changes nothing.
        c.unregister("a", 1);
        let refused = c.register(&hello("a", 8), 3).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::AlreadyExists);
        c.unregister("a", 2);
        c.register(&hello("a", 8), 3).unwrap();
        // An agent that does not say its incarnation is never replaced.
        c.register(&hello("b", 0), 4).unwrap();
        let refused = c.register(&hello("b", 0), 5).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::AlreadyExists);
    }
}

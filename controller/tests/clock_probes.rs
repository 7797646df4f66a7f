//! Clock probing against fake agents, in paused time: each agent is probed
//! at its own pace rather than in rounds as slow as the slowest reply, and
//! one that comes back on a new session mid-probing is probed there, with
//! probe ids its old session never had.

mod fake;

use fake::now_nanos;
use stampede_common::proto::{ClockProbeReply, Hello, SessionResponse};
use stampede_common::proto::{session_request::Kind as Up, session_response::Kind as Down};
use stampede_controller::orchestrate::runner::Orchestrator;
use stampede_controller::orchestrate::service::Event;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Every fake agent's clock runs this far ahead of the controller's.
const AHEAD_NANOS: i64 = 5_000_000_000;

const PLAN: &str = r#"
[agents]
remote = 2
[target]
url = "http://127.0.0.1:9"
model = "m"
[[phase]]
name = "p"
kind = "constant"
rate = 1.0
duration = "1s"
"#;

/// How a fake agent answers its probes.
#[derive(Clone, Copy)]
enum Answer {
    /// At once.
    AtOnce,
    /// Each a second late.
    Late,
    /// The first two at once, then it leaves and joins again on a new
    /// session, where it answers at once.
    Rejoins,
}

/// Probes an agent received: (when, session, probe id).
type Probes = Arc<Mutex<Vec<(Instant, u64, u64)>>>;

fn hello(id: &str) -> Hello {
    Hello {
        agent_id: id.into(),
        node_name: "node".into(),
        cores: 1,
        incarnation: 1,
        ..Default::default()
    }
}

/// An orchestrator with one fake agent per `(id, answer)`, and each one's probes.
fn setup(agents: &[(&str, Answer)]) -> (Orchestrator, Vec<Probes>) {
    let (orch, events) = fake::orchestrator(PLAN);
    let mut all = Vec::new();
    for &(id, answer) in agents {
        let (tx, rx) = mpsc::channel(256);
        let joined = Event::Joined {
            hello: hello(id),
            tx,
            session: 1,
        };
        events.try_send(joined).expect("event queue");
        let probes = Probes::default();
        all.push(probes.clone());
        tokio::spawn(fake_agent(id.into(), answer, rx, events.clone(), probes));
    }
    (orch, all)
}

async fn fake_agent(
    id: String,
    answer: Answer,
    mut rx: mpsc::Receiver<Result<SessionResponse, tonic::Status>>,
    events: mpsc::Sender<Event>,
    probes: Probes,
) {
    let mut session = 1;
    while let Some(Ok(SessionResponse {
        kind: Some(Down::ClockProbe(p)),
    })) = rx.recv().await
    {
        probes
            .lock()
            .unwrap()
            .push((Instant::now(), session, p.probe_id));
        if matches!(answer, Answer::Late) {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if matches!(answer, Answer::Rejoins) && session == 1 && p.probe_id == 2 {
            // Gone with the probe unanswered; back as the same process.
            let left = Event::Left {
                agent: id.clone(),
                reason: "connection reset".into(),
                session,
            };
            let _ = events.send(left).await;
            session = 2;
            let (tx, new_rx) = mpsc::channel(256);
            rx = new_rx;
            let joined = Event::Joined {
                hello: hello(&id),
                tx,
                session,
            };
            let _ = events.send(joined).await;
            continue;
        }
        let t = now_nanos() + AHEAD_NANOS;
        let reply = ClockProbeReply {
            probe_id: p.probe_id,
            agent_receive_unix_nanos: t,
            agent_send_unix_nanos: t,
        };
        let up = Event::Message {
            agent: id.clone(),
            kind: Up::ClockProbeReply(reply),
            at_unix_nanos: now_nanos(),
        };
        let _ = events.send(up).await;
    }
}

/// Each agent's clock offset (ms) as estimated.
fn offsets(orch: &Orchestrator) -> Vec<f64> {
    orch.agent_infos()
        .iter()
        .map(|a| a.clock_offset_ms)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_late_agent_does_not_hold_back_the_others_probes() {
    let (mut orch, probes) = setup(&[("fast", Answer::AtOnce), ("late", Answer::Late)]);
    orch.wait_for_agents().await.unwrap();
    let began = Instant::now();
    orch.estimate_clocks().await.unwrap();
    // The late agent's 8 answers take 8 s; the fast one has all its probes
    // before the late one has its second.
    assert!(
        began.elapsed() >= Duration::from_secs(8),
        "{:?}",
        began.elapsed()
    );
    let (fast, late) = (probes[0].lock().unwrap(), probes[1].lock().unwrap());
    assert_eq!(fast.len(), 8, "{fast:?}");
    assert_eq!(late.len(), 8, "{late:?}");
    let fast_done = fast.last().unwrap().0;
    assert!(fast_done < late[1].0, "fast: {fast:?}\nlate: {late:?}");
    for ms in offsets(&orch) {
        assert!((ms - 5_000.0).abs() < 50.0, "offset {ms} ms");
    }
}

#[tokio::test(start_paused = true)]
async fn an_agent_back_mid_probing_is_probed_afresh_on_its_new_session() {
    let (mut orch, probes) = setup(&[("back", Answer::Rejoins), ("fast", Answer::AtOnce)]);
    orch.wait_for_agents().await.unwrap();
    orch.estimate_clocks().await.unwrap();
    let back = probes[0].lock().unwrap();
    let ids = |session: u64| -> Vec<u64> {
        back.iter()
            .filter(|p| p.1 == session)
            .map(|p| p.2)
            .collect()
    };
    // Probes 0 and 1 answered, 2 left unanswered; the new session continues
    // with ids never used, until 8 samples in all.
    assert_eq!(ids(1), [0, 1, 2]);
    assert_eq!(ids(2), [3, 4, 5, 6, 7, 8]);
    for ms in offsets(&orch) {
        assert!((ms - 5_000.0).abs() < 50.0, "offset {ms} ms");
    }
}

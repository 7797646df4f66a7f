//! The run loop's timing and transitions, in paused time: fake agents answer
//! clock probes and assignments through the same events the gRPC service
//! produces, so whole stress searches and agent losses run in milliseconds
//! of real time and their timing is exact.

mod fake;

use fake::now_nanos;
use stampede_common::histogram::{encode, new_histogram};
use stampede_common::proto::{
    self, ClockProbeReply, Hello, SessionResponse, load_shape::Shape, rate_profile::Profile,
    session_request::Kind as Up, session_response::Kind as Down,
};
use stampede_controller::model::PhaseSummary;
use stampede_controller::orchestrate::runner::Orchestrator;
use stampede_controller::orchestrate::service::Event;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What a fake agent saw: (when, message).
type Seen = Arc<Mutex<Vec<(Instant, Down)>>>;

/// How a fake agent behaves.
#[derive(Clone, Copy, Default)]
struct Behaviour {
    /// Requests above this rate (cluster-wide) get a 1 s TTFT, below it 10 ms.
    capacity: f64,
    /// Drop the session this long after the first assignment arrives.
    leave_after: Option<Duration>,
    /// Having left, join again this much later as a new process.
    restart_after: Option<Duration>,
    /// Report the first phase done and halted (its dead-man's switch) this
    /// long after it starts.
    halt_after: Option<Duration>,
    /// Split the share into the assignment's `windows_per_report` windows,
    /// sent as one `WindowReports` message.
    gather: bool,
}

/// Join `ids` to an orchestrator for `plan`, each answering as `behaviour(id)` says.
fn setup(
    plan: &str,
    ids: &[&str],
    behaviour: impl Fn(&str) -> Behaviour,
) -> (Orchestrator, Vec<(String, Seen)>) {
    let (orch, events_tx) = fake::orchestrator(plan);
    let mut seen = Vec::new();
    for id in ids {
        let (tx, rx) = mpsc::channel(256);
        let log: Seen = Arc::default();
        seen.push((id.to_string(), log.clone()));
        let events = events_tx.clone();
        let hello = Hello {
            agent_id: id.to_string(),
            node_name: "node".into(),
            // Unequal sizes: shares follow cores.
            cores: if *id == "b" { 3 } else { 1 },
            incarnation: 1,
            ..Default::default()
        };
        events
            .try_send(Event::Joined {
                hello: hello.clone(),
                tx,
                session: 1,
            })
            .expect("event queue");
        tokio::spawn(fake_agent(hello, rx, events, behaviour(id), log));
    }
    (orch, seen)
}

async fn fake_agent(
    mut hello: Hello,
    mut rx: mpsc::Receiver<Result<SessionResponse, tonic::Status>>,
    events: mpsc::Sender<Event>,
    mut b: Behaviour,
    seen: Seen,
) {
    let id = hello.agent_id.clone();
    let mut sequence = 0;
    let mut first_assignment: Option<Instant> = None;
    // Each phase's start, in (paused) tokio time.
    let mut starts: std::collections::BTreeMap<u32, Instant> = Default::default();
    // What the process is running: it dies with it.
    let mut running: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    loop {
        let leave = first_assignment
            .zip(b.leave_after)
            .map(|(t, after)| t + after);
        let msg = tokio::select! {
            m = rx.recv() => m,
            () = async { tokio::time::sleep_until(leave.unwrap()).await }, if leave.is_some() => {
                let session = hello.incarnation;
                running.drain(..).for_each(|t| t.abort());
                let left = Event::Left { agent: id.clone(), reason: "killed".into(), session };
                let _ = events.send(left).await;
                let Some(after) = b.restart_after else { return };
                // A new process: new incarnation, new session, nothing carried over.
                tokio::time::sleep(after).await;
                hello.incarnation += 1;
                let (tx, new_rx) = mpsc::channel(256);
                rx = new_rx;
                (b.leave_after, first_assignment) = (None, None);
                let session = hello.incarnation;
                let _ = events.send(Event::Joined { hello: hello.clone(), tx, session }).await;
                continue;
            }
        };
        let Some(Ok(SessionResponse { kind: Some(kind) })) = msg else {
            return;
        };
        seen.lock().unwrap().push((Instant::now(), kind.clone()));
        let up = |kind: Up| Event::Message {
            agent: id.clone(),
            kind,
            at_unix_nanos: now_nanos(),
        };
        match kind {
            Down::ClockProbe(p) => {
                let t = now_nanos();
                let reply = ClockProbeReply {
                    probe_id: p.probe_id,
                    agent_receive_unix_nanos: t,
                    agent_send_unix_nanos: t,
                };
                let _ = events.send(up(Up::ClockProbeReply(reply))).await;
            }
            Down::PhaseAssignment(a) => {
                first_assignment.get_or_insert_with(Instant::now);
                sequence += 1;
                let lead = (a.start_unix_nanos - now_nanos()).max(0).unsigned_abs();
                let start = *starts
                    .entry(a.phase_index)
                    .or_insert(Instant::now() + Duration::from_nanos(lead));
                if let Some(after) = b.halt_after.take() {
                    let halt = halt_phase(a, start + after, events.clone(), id.clone());
                    running.push(tokio::spawn(halt));
                    continue;
                }
                let run = (start, sequence);
                let finish = finish_phase(a, run, b, events.clone(), id.clone());
                running.push(tokio::spawn(finish));
            }
            _ => {}
        }
    }
}

/// Report one window for the whole share at the phase's end, then done.
async fn finish_phase(
    a: proto::PhaseAssignment,
    (start, sequence): (Instant, u64),
    b: Behaviour,
    events: mpsc::Sender<Event>,
    id: String,
) {
    let duration = Duration::from_millis(a.duration_ms);
    tokio::time::sleep_until(start + duration).await;
    let Some(Shape::OpenLoop(o)) = a.load.and_then(|l| l.shape) else {
        panic!("open loop expected")
    };
    let Some(Profile::Constant(c)) = o.profile.and_then(|p| p.profile) else {
        panic!("constant rate expected")
    };
    let shard = a.shard.unwrap();
    let sent = (c.requests_per_second * duration.as_secs_f64() / f64::from(shard.count)) as u64;
    let ttft_micros = if c.requests_per_second <= b.capacity {
        10_000
    } else {
        1_000_000
    };
    let windows = if b.gather {
        a.windows_per_report.max(1)
    } else {
        1
    };
    let reports: Vec<proto::WindowReport> = (0..windows)
        .map(|w| {
            // The share split evenly, the rest in the last window.
            let n = sent / u64::from(windows)
                + if w + 1 == windows {
                    sent % u64::from(windows)
                } else {
                    0
                };
            let mut h = new_histogram();
            h.record_n(ttft_micros, n).unwrap();
            proto::WindowReport {
                sequence: sequence * 1000 + u64::from(w),
                phase_index: a.phase_index,
                window_index: w,
                histograms: vec![proto::MetricHistogram {
                    metric: proto::Metric::Ttft as i32,
                    encoding: Some(proto::metric_histogram::Encoding::HdrV2(
                        encode(&h).unwrap(),
                    )),
                }],
                counters: Some(proto::Counters {
                    sent: n,
                    ok: n,
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
        .collect();
    let window = if b.gather {
        Up::WindowReports(proto::WindowReports { reports })
    } else {
        Up::WindowReport(reports.into_iter().next().unwrap())
    };
    let micros = u64::try_from(duration.as_micros()).unwrap();
    let done = proto::PhaseDone {
        phase_index: a.phase_index,
        windows,
        arrivals_micros: micros,
        finished_micros: micros,
        // Began exactly on time, in its own clock.
        started_unix_nanos: a.start_unix_nanos,
        halted: false,
    };
    for kind in [window, Up::PhaseDone(done)] {
        let _ = events
            .send(Event::Message {
                agent: id.clone(),
                kind,
                at_unix_nanos: now_nanos(),
            })
            .await;
    }
}

/// Stop the phase `at` an instant, as the dead-man's switch does: done, halted.
async fn halt_phase(
    a: proto::PhaseAssignment,
    at: Instant,
    events: mpsc::Sender<Event>,
    id: String,
) {
    tokio::time::sleep_until(at).await;
    let done = proto::PhaseDone {
        phase_index: a.phase_index,
        halted: true,
        ..Default::default()
    };
    let kind = Up::PhaseDone(done);
    let at_unix_nanos = now_nanos();
    let _ = events
        .send(Event::Message {
            agent: id,
            kind,
            at_unix_nanos,
        })
        .await;
}

const STRESS: &str = r#"
[agents]
remote = 2
[target]
url = "http://127.0.0.1:9"
model = "m"
[[phase]]
name = "knee"
kind = "stress"
from = 10.0
to = 1000.0
step_duration = "10s"
precision = 0.05
slo = ["ttft.p99 < 100ms"]
"#;

#[tokio::test(start_paused = true)]
async fn a_stress_phase_steps_to_the_fake_capacity_and_stops() {
    let capacity = 137.0;
    let (mut orch, seen) = setup(STRESS, &["a", "b"], |_| Behaviour {
        capacity,
        ..Behaviour::default()
    });
    orch.wait_for_agents().await.unwrap();
    let began = Instant::now();
    let steps: Vec<PhaseSummary> = orch.run_phase(0, 0).await.unwrap();
    let took = began.elapsed();

    let rates: Vec<f64> = steps.iter().map(|s| s.step.unwrap().rate).collect();
    // Doubling to the first failure, then bisection.
    assert_eq!(&rates[..5], &[10.0, 20.0, 40.0, 80.0, 160.0]);
    assert_eq!(rates[5], 120.0);
    let passed: Vec<f64> = steps
        .iter()
        .filter(|s| s.slo_passed == Some(true))
        .map(|s| s.step.unwrap().rate)
        .collect();
    let knee = passed.iter().copied().fold(0.0, f64::max);
    assert!(
        knee <= capacity && knee >= capacity / 1.05,
        "knee {knee}, steps {rates:?}"
    );
    for s in &steps {
        let rate = s.step.unwrap().rate;
        assert_eq!(s.slo_passed, Some(rate <= capacity), "step at {rate}");
        assert_eq!(s.offered_rate, Some(rate));
        assert_eq!(s.requests.sent, (rate * 10.0) as u64 / 2 * 2);
        // Both agents began on time; only the offset estimates' error is left.
        assert!(s.start_spread_ms.unwrap() < 1.0, "{:?}", s.start_spread_ms);
    }
    // Each step lasts its 10 s plus the start lead (clock probes are instant
    // here), and steps follow each other without overlap.
    let n = steps.len() as u32;
    assert!(
        took >= Duration::from_secs(10) * n,
        "{took:?} for {n} steps"
    );
    assert!(
        took < (Duration::from_secs(10) + Duration::from_millis(400)) * n,
        "{took:?} for {n} steps"
    );
    for (_, log) in &seen {
        let starts: Vec<Instant> = log
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, m)| matches!(m, Down::PhaseAssignment(_)))
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(starts.len(), steps.len());
        for w in starts.windows(2) {
            assert!(w[1] - w[0] >= Duration::from_secs(10), "{:?}", w[1] - w[0]);
        }
        // Every step is its own assignment number.
        let slots: Vec<u32> = log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, m)| match m {
                Down::PhaseAssignment(a) => Some(a.phase_index),
                _ => None,
            })
            .collect();
        assert_eq!(slots, (0..n).collect::<Vec<_>>());
    }
}

/// Run the first phase of `plan` on agents a, b and c, each behaving as
/// `behaviour(id)`: its summary, what each agent saw, and when it began.
async fn run_three(
    plan: &str,
    behaviour: impl Fn(&str) -> Behaviour,
) -> (PhaseSummary, Vec<(String, Seen)>, Instant) {
    let (mut orch, seen) = setup(plan, &["a", "b", "c"], behaviour);
    orch.wait_for_agents().await.unwrap();
    let began = Instant::now();
    let summary = orch.run_phase(0, 0).await.unwrap().remove(0);
    (summary, seen, began)
}

const CONSTANT: &str = r#"
[run]
window = "1s"
[agents]
remote = 3
reconnect_grace = "2s"
[target]
url = "http://127.0.0.1:9"
model = "m"
[[phase]]
name = "steady"
kind = "constant"
rate = 30.0
duration = "20s"
"#;

#[tokio::test(start_paused = true)]
async fn a_lost_agent_is_declared_after_its_grace_and_its_share_handed_on() {
    let (summary, seen, began) = run_three(CONSTANT, |id| Behaviour {
        capacity: 1e9,
        leave_after: (id == "c").then_some(Duration::from_secs(3)),
        ..Behaviour::default()
    })
    .await;
    // The survivors finish at the phase's planned end: nothing waited on c.
    let took = began.elapsed();
    assert!(took < Duration::from_secs(21), "{took:?}");
    assert_eq!(summary.lost_agents, vec!["c".to_string()]);
    assert_eq!(summary.redistributed.len(), 1);
    let r = &summary.redistributed[0];
    assert_eq!(
        (r.lost.as_str(), r.to.clone()),
        ("c", vec!["a".into(), "b".into()])
    );
    // c left 2.7 s into the phase (3 s after its assignment, which came 0.3 s
    // before the start), was lost 2 s later, and the share moves at the next
    // window boundary at least 100 ms ahead: 5 s.
    assert_eq!(r.from_s, 5.0);
    for (id, log) in &seen {
        let reshards: Vec<(Instant, proto::Reshard)> = log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(t, m)| match m {
                Down::Reshard(r) => Some((*t, r.clone())),
                _ => None,
            })
            .collect();
        if id == "c" {
            assert!(reshards.is_empty());
            continue;
        }
        assert_eq!(reshards.len(), 1, "{id}");
        let (at, r) = reshards[0].clone();
        let index = if id == "a" { 0 } else { 1 };
        assert_eq!(
            r.shard,
            Some(proto::Shard {
                index,
                count: 2,
                weights: vec![1, 3]
            }),
            "{id}"
        );
        assert_eq!((r.from_ms, r.phase_index, r.users), (5000, 0, 0));
        // Sent when c was declared lost: 0.3 s lead + 2.7 s + 2 s grace.
        let sent_at = at - began;
        assert!(
            (Duration::from_millis(4990)..Duration::from_millis(5100)).contains(&sent_at),
            "{sent_at:?}"
        );
    }
}

/// Each fake agent's messages of one kind, with when they arrived.
fn received<T>(
    seen: &[(String, Seen)],
    id: &str,
    pick: impl Fn(&Down) -> Option<T>,
) -> Vec<(Instant, T)> {
    let log = &seen.iter().find(|(a, _)| a == id).unwrap().1;
    log.lock()
        .unwrap()
        .iter()
        .filter_map(|(t, m)| pick(m).map(|x| (*t, x)))
        .collect()
}

fn assignments(seen: &[(String, Seen)], id: &str) -> Vec<proto::PhaseAssignment> {
    received(seen, id, |m| match m {
        Down::PhaseAssignment(a) => Some(a.clone()),
        _ => None,
    })
    .into_iter()
    .map(|(_, a)| a)
    .collect()
}

fn reshards(seen: &[(String, Seen)], id: &str) -> Vec<proto::Reshard> {
    received(seen, id, |m| match m {
        Down::Reshard(r) => Some(r.clone()),
        _ => None,
    })
    .into_iter()
    .map(|(_, r)| r)
    .collect()
}

#[tokio::test(start_paused = true)]
async fn a_restarted_agent_takes_its_own_slice_back_at_the_next_boundary() {
    let (summary, seen, began) = run_three(CONSTANT, |id| Behaviour {
        capacity: 1e9,
        leave_after: (id == "c").then_some(Duration::from_secs(3)),
        restart_after: Some(Duration::from_millis(700)),
        ..Behaviour::default()
    })
    .await;
    let took = began.elapsed();
    assert!(took < Duration::from_secs(21), "{took:?}");
    // Within its grace: nobody else took its share, so none is lost.
    assert!(summary.lost_agents.is_empty(), "{:?}", summary.lost_agents);
    let r = &summary.redistributed;
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (r[0].rejoined.as_str(), r[0].to.clone()),
        ("c", vec!["c".into()])
    );
    // c left 2.7 s into the phase and came back 0.7 s later, at 3.4 s: its
    // slice starts again at the next window boundary at least 100 ms ahead.
    assert_eq!(r[0].from_s, 4.0);
    let again = assignments(&seen, "c");
    assert_eq!(
        again.len(),
        2,
        "the first assignment and the share taken back"
    );
    assert_eq!(again[1].join_from_ms, 4000);
    assert_eq!(again[1].shard, again[0].shard, "its own slice");
    assert_eq!(
        again[1].start_unix_nanos, again[0].start_unix_nanos,
        "the same phase start"
    );
    for other in ["a", "b"] {
        assert!(reshards(&seen, other).is_empty(), "{other} keeps its slice");
    }
}

#[tokio::test(start_paused = true)]
async fn an_agent_back_after_its_share_was_handed_on_takes_a_share_back() {
    let (summary, seen, _) = run_three(CONSTANT, |id| Behaviour {
        capacity: 1e9,
        leave_after: (id == "c").then_some(Duration::from_secs(3)),
        // Past its 2 s grace: lost at 4.7 s, its share handed on at 5 s.
        restart_after: Some(Duration::from_secs(4)),
        ..Behaviour::default()
    })
    .await;
    assert!(summary.lost_agents.is_empty(), "{:?}", summary.lost_agents);
    let r = &summary.redistributed;
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!((r[0].lost.as_str(), r[0].from_s), ("c", 5.0));
    // Back at 6.7 s: the three split the phase again from 7 s.
    assert_eq!(r[1].rejoined, "c");
    assert_eq!(r[1].to, vec!["a".to_string(), "b".into(), "c".into()]);
    assert_eq!(r[1].from_s, 7.0);
    let back = assignments(&seen, "c");
    assert_eq!(back.len(), 2);
    assert_eq!(back[1].join_from_ms, 7000);
    assert_eq!(back[1].shard, back[0].shard, "the same three-way split");
    for other in ["a", "b"] {
        let from: Vec<u64> = reshards(&seen, other).iter().map(|r| r.from_ms).collect();
        assert_eq!(from, vec![5000, 7000], "{other}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_agent_that_halted_resumes_its_share_when_it_reports_back() {
    let (summary, seen, began) = run_three(CONSTANT, |id| Behaviour {
        capacity: 1e9,
        halt_after: (id == "a").then_some(Duration::from_secs(6)),
        ..Behaviour::default()
    })
    .await;
    let took = began.elapsed();
    assert!(took < Duration::from_secs(21), "{took:?}");
    assert!(summary.lost_agents.is_empty());
    let r = &summary.redistributed;
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!((r[0].rejoined.as_str(), r[0].from_s), ("a", 7.0));
    let back = assignments(&seen, "a");
    assert_eq!(back.len(), 2);
    assert_eq!(back[1].join_from_ms, 7000);
    assert_eq!(back[1].shard, back[0].shard);
}

#[tokio::test(start_paused = true)]
async fn no_phase_waits_past_its_end_for_an_agent_that_left() {
    let plan = CONSTANT.replace("reconnect_grace = \"2s\"", "reconnect_grace = \"60s\"");
    let (summary, _, began) = run_three(&plan, |id| Behaviour {
        capacity: 1e9,
        leave_after: (id == "c").then_some(Duration::from_secs(15)),
        ..Behaviour::default()
    })
    .await;
    // Its 60 s grace would run to 75 s; the phase waits for it only the
    // 10 s reports get after the planned end (20.3 s).
    let took = began.elapsed();
    assert!(took < Duration::from_millis(30_400), "{took:?}");
    assert_eq!(summary.lost_agents, vec!["c".to_string()]);
}

#[tokio::test(start_paused = true)]
async fn windows_sent_together_are_merged_and_acknowledged_together() {
    let plan = CONSTANT.replace("window = \"1s\"", "window = \"1s\"\nreport_every = \"4s\"");
    let (summary, seen, _) = run_three(&plan, |_| Behaviour {
        capacity: 1e9,
        gather: true,
        ..Behaviour::default()
    })
    .await;
    // 30 req/s for 20 s, each agent's share in 4 windows of one message.
    assert_eq!(summary.requests.sent, 600);
    assert_eq!(summary.requests.ok, 600);
    assert!(summary.lost_agents.is_empty());
    // Let the fake agents take what is in their queues.
    tokio::time::sleep(Duration::from_millis(10)).await;
    for id in ["a", "b", "c"] {
        let a = assignments(&seen, id);
        assert_eq!(a[0].windows_per_report, 4, "agent {id}");
        let acks: Vec<proto::Ack> = received(&seen, id, |m| match m {
            Down::Ack(a) => Some(a.clone()),
            _ => None,
        })
        .into_iter()
        .map(|(_, a)| a)
        .collect();
        assert_eq!(
            acks,
            vec![proto::Ack {
                sequence: 1000,
                more_sequences: vec![1001, 1002, 1003],
            }],
            "agent {id}: one acknowledgement for the message's four reports"
        );
    }
}

//! `controller run` on Kubernetes: the join wait over the run loop's
//! events, an end-to-end run with `deploy = true` against the fake API, and
//! the flags of `controller deploy` over a plan.

use crate::orchestrate::runner::{Orchestrator, ResolvedTarget, RunError};
use crate::orchestrate::service::Event;
use stampede_common::proto::Hello;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn orchestrator() -> (Orchestrator, mpsc::Sender<Event>) {
    let text = "[agents]\nremote = 1\njoin_timeout = \"30s\"\n[target]\nurl = \"http://127.0.0.1:9\"\nmodel = \"m\"\n[[phase]]\nkind = \"baseline\"\nduration = \"1s\"\n";
    let plan = stampede_plan::parse(text, Path::new("t.toml"))
        .unwrap()
        .validate(Path::new("t.toml"))
        .unwrap();
    let (tx, rx) = mpsc::channel(16);
    let target = ResolvedTarget {
        base_url: "http://127.0.0.1:9".into(),
        prompt: String::new(),
        metrics_urls: Vec::new(),
        prompt_words: Vec::new(),
    };
    (
        Orchestrator::new(plan, target, rx, CancellationToken::new()),
        tx,
    )
}

async fn join(events: &mpsc::Sender<Event>, node: &str) {
    // Waiting for joins sends agents nothing: the downstream may close.
    let (tx, _) = mpsc::channel(8);
    let hello = Hello {
        agent_id: node.into(),
        node_name: node.into(),
        version: "0".into(),
        cores: 1,
        protocol_version: stampede_common::PROTOCOL_VERSION,
        incarnation: 1,
    };
    let session = 1;
    events
        .send(Event::Joined { hello, tx, session })
        .await
        .unwrap();
}

fn three() -> BTreeSet<String> {
    ["node-a", "node-b", "node-c"].map(String::from).into()
}

#[tokio::test(start_paused = true)]
async fn two_of_three_nodes_time_out_naming_the_missing_one() {
    let (mut orch, events) = orchestrator();
    join(&events, "node-a").await;
    join(&events, "node-c").await;
    let started = tokio::time::Instant::now();
    let e = orch.wait_for_nodes(&three()).await.unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_secs(30),
        "waited the timeout"
    );
    match &e {
        RunError::NodesMissing {
            missing, expected, ..
        } => {
            assert_eq!(missing, &["node-b"]);
            assert_eq!(*expected, 3);
        }
        other => panic!("unexpected {other}"),
    }
    let text = e.to_string();
    assert!(text.contains("node-b") && text.contains("30s"), "{text}");
    assert!(!text.contains("node-a"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn all_nodes_joined_ends_the_wait_early() {
    let (mut orch, events) = orchestrator();
    for n in ["node-c", "node-a", "node-b"] {
        join(&events, n).await;
    }
    let started = tokio::time::Instant::now();
    orch.wait_for_nodes(&three()).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
}

//! What the run-loop tests share: an orchestrator for a plan's text, fed
//! its agents' events by hand, and the controller's clock.

use stampede_controller::orchestrate::runner::{Orchestrator, ResolvedTarget};
use stampede_controller::orchestrate::service::Event;
use stampede_plan as plan;
use std::path::Path;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// An orchestrator for the plan `text` (targeting a closed port), and the
/// sender of its events.
pub fn orchestrator(text: &str) -> (Orchestrator, mpsc::Sender<Event>) {
    let path = Path::new("plan.toml");
    let plan = plan::parse(text, path).unwrap().validate(path).unwrap();
    let (events, events_rx) = mpsc::channel(1024);
    let target = ResolvedTarget {
        base_url: "http://127.0.0.1:9".into(),
        prompt: "hi".into(),
        metrics_urls: Vec::new(),
        prompt_words: Vec::new(),
    };
    let orch = Orchestrator::new(plan, target, events_rx, CancellationToken::new());
    (orch, events)
}

/// The controller's clock (ns since the Unix epoch).
pub fn now_nanos() -> i64 {
    stampede_controller::orchestrate::clock::now_unix_nanos()
}

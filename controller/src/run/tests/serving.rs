//! A run's serving-stack lifecycle against the in-memory API server: deploy,
//! wait for readiness, run, tear down.

use crate::orchestrate::k8s::fake::FakeApi;
use crate::orchestrate::serving::Serving;
use crate::orchestrate::serving::tests::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn lifecycle_plan(dir: &Path, sim_url: &str, timeout: &str) -> (stampede_plan::Plan, String) {
    let text = format!(
        r#"[agents]
local = 1
[serving]
method = "standalone"
server = "simulator"
namespace = "bench"
image = "stampede/sim:0.1.0"
model = "stampede-sim"
args = ["--output-tokens", "8"]
readiness_timeout = "{timeout}"
[target]
url = "{sim_url}"
[request]
max_tokens = 8
[[phase]]
kind = "constant"
rate = 20.0
duration = "1s"
"#
    );
    let path = dir.join("plan.toml");
    std::fs::write(&path, &text).unwrap();
    (stampede_plan::load(&path).unwrap(), text)
}

/// A loopback URL with nothing listening.
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

/// `controller run` options over the fake API, probing `probe`.
fn run_options(dir: &Path, api: &FakeApi, probe: &str) -> crate::run::RunOptions {
    crate::run::RunOptions {
        out: Some(dir.join("run")),
        kube_client: Some(crate::orchestrate::k8s::KubeClient(api.client(NS))),
        serving_probe_url: Some(probe.to_string()),
        ..Default::default()
    }
}

#[tokio::test]
async fn controller_run_deploys_the_simulator_runs_phases_and_tears_down() {
    let (sim, stop) = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (plan, text) = lifecycle_plan(dir.path(), &sim.base_url(), "10s");
    assert_eq!(
        plan.target.model, "stampede-sim",
        "the model comes from [serving]"
    );
    let api = cluster();
    let before = api.all();
    // No probe override: readiness is asked at the plan's target URL.
    let opts = crate::run::RunOptions {
        serving_probe_url: None,
        ..run_options(dir.path(), &api, "http://unused.invalid")
    };
    let outcome = crate::run::run(plan, &text, opts, CancellationToken::new())
        .await
        .unwrap();
    assert!(outcome.summary.phases[0].requests.ok > 0, "the phase ran");
    assert_eq!(api.all(), before, "exactly what was deployed is gone");
    let reqs = api.requests();
    let applied = |what: &str| {
        reqs.iter()
            .any(|r| r.starts_with("PATCH") && r.contains(what))
    };
    assert!(applied("/deployments/stampede-serving") && applied("/services/stampede-serving"));
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(outcome.run_dir.join("manifest.json")).unwrap(),
    )
    .unwrap();
    let s = &manifest["serving"];
    assert_eq!(s["method"], "standalone");
    assert_eq!(
        s["server"]["args"],
        json!([
            "--listen",
            "0.0.0.0:8000",
            "--model",
            "stampede-sim",
            "--output-tokens",
            "8"
        ])
    );
    assert_eq!(s["server"]["image"], "stampede/sim:0.1.0");
    assert_eq!(s["endpoint"]["models"][0]["id"], "stampede-sim");
    stop.cancel();
}

/// `controller run` against a stack that never answers, interrupted after
/// `interrupt_after` if given: the error, and whether the fake's objects
/// are the same before and after.
async fn run_never_ready(timeout: &str, interrupt_after: Option<Duration>) -> (String, bool) {
    let dead = dead_url();
    let dir = tempfile::tempdir().unwrap();
    let (plan, text) = lifecycle_plan(dir.path(), &dead, timeout);
    let api = cluster();
    let before = api.all();
    let opts = run_options(dir.path(), &api, &dead);
    let interrupt = CancellationToken::new();
    if let Some(after) = interrupt_after {
        let later = interrupt.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            later.cancel();
        });
    }
    let e = tokio::time::timeout(
        Duration::from_secs(10),
        crate::run::run(plan, &text, opts, interrupt),
    )
    .await
    .expect("the run ends")
    .unwrap_err();
    (e.to_string(), api.all() == before)
}

#[tokio::test]
async fn a_run_whose_stack_never_gets_ready_still_tears_it_down() {
    let (e, same) = run_never_ready("300ms", None).await;
    assert!(e.contains("not ready within 300ms"), "{e}");
    assert!(e.contains("no pod matches"), "{e}");
    assert!(same, "torn down after the failure");
}

#[tokio::test]
async fn an_interrupt_during_the_readiness_wait_still_tears_down() {
    let (e, same) = run_never_ready("10m", Some(Duration::from_millis(200))).await;
    assert!(e.contains("interrupted"), "{e}");
    assert!(same, "torn down after the interrupt");
}

#[tokio::test]
async fn runs_sharing_a_stack_redeploy_only_when_it_changes_and_leave_it_up() {
    let (sim, stop) = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let api = cluster();
    let before = api.all();
    let shared = crate::run::SharedStack::default();
    // Three cells as a sweep runs them: two load levels on one stack, then other args.
    for (i, output_tokens) in ["8", "8", "4"].into_iter().enumerate() {
        let (plan, text) = lifecycle_plan(dir.path(), &sim.base_url(), "10s");
        let text = text.replace(
            "args = [\"--output-tokens\", \"8\"]",
            &format!("args = [\"--output-tokens\", \"{output_tokens}\"]"),
        );
        let path = dir.path().join("plan.toml");
        std::fs::write(&path, &text).unwrap();
        let plan = if output_tokens == "8" {
            plan
        } else {
            stampede_plan::load(&path).unwrap()
        };
        let opts = crate::run::RunOptions {
            out: Some(dir.path().join(format!("cell{i}"))),
            shared_stack: Some(shared.clone()),
            ..run_options(dir.path(), &api, &sim.base_url())
        };
        let outcome = crate::run::run(plan, &text, opts, CancellationToken::new())
            .await
            .unwrap();
        assert!(outcome.summary.phases[0].requests.ok > 0, "cell {i} ran");
        assert!(
            api.get(DEPLOYS, "stampede-serving").is_some(),
            "cell {i}: the stack stays up between cells"
        );
    }
    assert_eq!(
        shared.deploys().await,
        2,
        "one deploy, one redeploy on new args"
    );
    let deletes = api
        .requests()
        .iter()
        .filter(|r| r.starts_with("DELETE"))
        .count();
    assert_eq!(deletes, 2, "the first stack's Deployment and Service, once");
    let lines = shared.finish().await.unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(api.all(), before, "after the sweep nothing is left");
    stop.cancel();
}

#[tokio::test]
async fn controller_teardown_removes_labelled_serving_objects_only() {
    let api = cluster();
    let (url, _) = turns_healthy(0).await;
    let mut serving = Serving::new(opts(&api, &url));
    serving
        .ensure(&parse(VLLM), &CancellationToken::new())
        .await
        .unwrap();
    let text = crate::run::cluster::teardown_with(&api.client(NS), NS)
        .await
        .unwrap();
    assert!(
        text.contains("Deployment bench/stampede-serving: deleted"),
        "{text}"
    );
    assert!(
        text.contains("Service bench/stampede-serving: deleted"),
        "{text}"
    );
    assert!(
        text.contains("DaemonSet bench/stampede-agent: not found"),
        "{text}"
    );
    assert!(api.get(DEPLOYS, "other-app").is_some());
    let left: Vec<Value> = api.names(DEPLOYS).into_iter().map(Value::from).collect();
    assert_eq!(left, [json!("other-app")]);
}

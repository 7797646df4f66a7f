//! The fault suite: the target misbehaves (5xx storm, hangs before the
//! first token, malformed SSE) or an agent is killed with SIGKILL and
//! restarted mid-phase. Every case ends with the books checked on the merged
//! results: sent = ok + Σ errors by class, no window merged twice, none
//! rejected or dropped, and the summary equal to the raw window log.
//! Each case is a few seconds of load on loopback.

use stampede_tests::{
    Proc, bin, check_books, get_json, plan_file, post_json, sim_requests_started, start_sim,
};
use std::process::Command;
use std::time::{Duration, Instant};

/// Run `plan` with two local agents against a simulator with `faults`;
/// returns the run's summary after checking its books, and the simulator's stats.
fn run_with_faults(faults: &str, request: &str) -> (serde_json::Value, serde_json::Value) {
    let (_sim, sim_url) = start_sim(&["--ttft", "5ms", "--itl", "1ms", "--output-tokens", "8"]);
    post_json(&format!("{sim_url}/sim/faults"), faults);
    let plan = format!(
        r#"
[run]
name = "faults"
window = "500ms"
[agents]
local = 2
[target]
url = "{sim_url}"
model = "stampede-sim"
[request]
max_tokens = 8
{request}
[[phase]]
kind = "constant"
rate = 20.0
duration = "3s"
"#
    );
    let (dir, path) = plan_file(&plan);
    let out = dir.path().join("run");
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("run").arg(&path).arg("--out").arg(&out);
    let started = Instant::now();
    let (code, output) = Proc::spawn(cmd).wait_exit(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{output}");
    assert!(!output.contains("panicked"), "{output}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(60), "the run took {took:?}");
    let summary = check_books(&out);
    let stats = get_json(&format!("{sim_url}/sim/stats"));
    (summary, stats)
}

fn errors(summary: &serde_json::Value) -> Vec<(String, u64)> {
    summary["phases"][0]["errors"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

fn requests(summary: &serde_json::Value, key: &str) -> u64 {
    summary["phases"][0]["requests"][key].as_u64().unwrap()
}

#[test]
fn a_5xx_storm_is_counted_by_status() {
    let (summary, stats) = run_with_faults(r#"{"error_500": 0.3, "error_503": 0.3}"#, "");
    assert_eq!(requests(&summary, "sent"), 60, "{summary:#}");
    let errs = errors(&summary);
    let classes: Vec<&str> = errs.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(classes, ["http_5xx:500", "http_5xx:503"], "{errs:?}");
    let injected = &stats["faults_injected"];
    for (class, n) in &errs {
        let key = format!("error_{}", &class[class.len() - 3..]);
        assert_eq!(injected[&key].as_u64(), Some(*n), "{class} vs {stats}");
    }
    assert_eq!(
        requests(&summary, "ok"),
        stats["requests_served"].as_u64().unwrap(),
        "{stats}"
    );
}

#[test]
fn a_server_hanging_before_the_first_token_is_bounded_by_the_first_token_timeout() {
    let (summary, stats) = run_with_faults(
        r#"{"hang": 0.3}"#,
        "timeout = \"5s\"\nfirst_token_timeout = \"500ms\"",
    );
    assert_eq!(requests(&summary, "sent"), 60, "{summary:#}");
    let errs = errors(&summary);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, "timeout_first_token", "{errs:?}");
    assert_eq!(
        Some(errs[0].1),
        stats["faults_injected"]["hang"].as_u64(),
        "every hung request, and only those, timed out: {stats}"
    );
    // Hung requests end at the first-token timeout, not the whole-request one.
    let e2e_max = summary["phases"][0]["metrics"]["e2e"]["max"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(e2e_max < 500.0, "e2e max {e2e_max} ms");
}

#[test]
fn malformed_sse_is_a_classified_failure() {
    let (summary, stats) = run_with_faults(r#"{"malformed": 0.3}"#, "");
    assert_eq!(requests(&summary, "sent"), 60, "{summary:#}");
    let errs = errors(&summary);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, "malformed_body", "{errs:?}");
    assert_eq!(
        Some(errs[0].1),
        stats["faults_injected"]["malformed"].as_u64(),
        "{stats}"
    );
}

#[test]
fn an_agent_killed_and_restarted_mid_phase_takes_its_share_back_and_nothing_is_counted_twice() {
    let (_sim, sim_url) = start_sim(&["--ttft", "5ms", "--itl", "1ms", "--output-tokens", "8"]);
    let plan = format!(
        r#"
[run]
name = "kill"
window = "500ms"
[agents]
remote = 2
reconnect_grace = "20s"
[target]
url = "{sim_url}"
model = "stampede-sim"
[request]
max_tokens = 8
timeout = "2s"
[[phase]]
name = "hit"
kind = "constant"
rate = 20.0
duration = "5s"
[[phase]]
name = "after"
kind = "constant"
rate = 20.0
duration = "2s"
"#
    );
    let (dir, path) = plan_file(&plan);
    let out = dir.path().join("run");
    let (mut controller, url) = stampede_tests::start_remote_controller(&path, &out);
    let agent = |id: &str| stampede_tests::remote_agent(&url, id, &[]);
    let mut a = agent("a");
    let mut b = agent("b");
    controller.wait_for_line("  hit [", Duration::from_secs(60));
    controller.wait_for_line("  hit [", Duration::from_secs(10));
    a.child.kill().expect("kill -9 agent a");
    a.child.wait().expect("reap");
    controller.wait_for_line("agent a left", Duration::from_secs(10));
    let mut a2 = agent("a");
    controller.wait_for_line("agent a restarted", Duration::from_secs(30));
    controller.wait_for_line("agent a takes a share back", Duration::from_secs(10));

    let (code, output) = controller.wait_exit(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{output}");
    for p in [&mut a2, &mut b] {
        let (code, text) = p.wait_exit(Duration::from_secs(30));
        assert_eq!(code, Some(0), "{text}");
    }
    let summary = check_books(&out);
    let phases = summary["phases"].as_array().unwrap();
    // The killed process's acknowledged windows are in the first phase, and
    // so are its successor's: it took its share back within its grace. What
    // the killed process had in flight died with it and is counted lost.
    let raw = std::fs::read_to_string(out.join("windows.jsonl")).unwrap();
    let mut a_windows: std::collections::BTreeMap<u64, usize> = Default::default();
    for line in raw.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["record"] == "window" && v["phase"] == 0 && v["agent"] == "a" {
            *a_windows
                .entry(v["incarnation"].as_u64().unwrap())
                .or_default() += 1;
        }
    }
    let counts: Vec<usize> = a_windows.values().copied().collect();
    assert_eq!(counts.len(), 2, "a's two processes: {a_windows:?}");
    assert!(counts.iter().all(|n| *n >= 2), "{a_windows:?}");
    assert_eq!(
        phases[0]["lost_agents"],
        serde_json::json!([]),
        "{:#}",
        phases[0]
    );
    assert_eq!(
        phases[0]["redistributed"][0]["rejoined"], "a",
        "{:#}",
        phases[0]
    );
    assert!(phases[0]["requests"]["sent"].as_u64().unwrap() > 50);
    // The restarted process takes its full share of the next phase.
    assert_eq!(
        phases[1]["lost_agents"],
        serde_json::json!([]),
        "{:#}",
        phases[1]
    );
    assert_eq!(phases[1]["agents"], serde_json::json!(["a", "b"]));
    assert_eq!(
        phases[1]["requests"]["sent"].as_u64(),
        Some(40),
        "{:#}",
        phases[1]
    );
    assert_eq!(
        phases[1]["requests"]["ok"].as_u64(),
        Some(40),
        "{:#}",
        phases[1]
    );
}

#[test]
fn a_killed_controller_leaves_no_load_running() {
    let (_sim, sim_url) = start_sim(&["--ttft", "5ms", "--itl", "1ms", "--output-tokens", "8"]);
    let plan = format!(
        r#"
[run]
name = "orphaned"
window = "500ms"
[agents]
remote = 2
reconnect_grace = "4s"
halt_after = "2s"
[target]
url = "{sim_url}"
model = "stampede-sim"
[request]
max_tokens = 8
timeout = "2s"
[[phase]]
name = "long"
kind = "constant"
rate = 20.0
duration = "60s"
"#
    );
    let (dir, path) = plan_file(&plan);
    let out = dir.path().join("run");
    let (mut controller, url) = stampede_tests::start_remote_controller(&path, &out);
    let mut agents: Vec<Proc> = ["a", "b"]
        .into_iter()
        .map(|id| stampede_tests::remote_agent(&url, id, &["--give-up-after", "12s"]))
        .collect();
    for _ in 0..4 {
        controller.wait_for_line("  long [", Duration::from_secs(60));
    }
    controller.child.kill().expect("kill -9 the controller");
    controller.child.wait().expect("reap");
    let killed = Instant::now();
    // The agents see their sessions drop at once (the kernel closes a dead
    // process's sockets), halt 2 s later, and what was in flight ends
    // within its 2 s timeout.
    std::thread::sleep(Duration::from_secs(5));
    let after_halt = sim_requests_started(&sim_url);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        sim_requests_started(&sim_url),
        after_halt,
        "requests still sent {:?} after the controller died",
        killed.elapsed()
    );
    // 2 s of load and 2 s of switch delay, at 20 req/s, with a second's slack.
    assert!(after_halt < 20 * 5, "{after_halt} requests");
    for a in &mut agents {
        let (code, text) = a.wait_exit(Duration::from_secs(30));
        assert!(text.contains("dead-man's switch"), "{text}");
        assert!(text.contains("unreachable"), "{text}");
        assert_eq!(code, Some(1), "{text}");
    }

    // What the controller received is still a report, its books exact.
    let mut report = Command::new(bin("controller"));
    report.arg("report").arg(&out);
    let (code, text) = Proc::spawn(report).wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{text}");
    let summary = stampede_tests::read_json(&out.join("summary.json"));
    let phase = &summary["phases"][0];
    assert_eq!(phase["complete"], false, "{phase:#}");
    let raw = std::fs::read_to_string(out.join("windows.jsonl")).unwrap();
    let recorded: u64 = raw
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["record"] == "window")
        .map(|v| v["counters"]["sent"].as_u64().unwrap())
        .sum();
    assert_eq!(
        phase["requests"]["sent"].as_u64(),
        Some(recorded),
        "{phase:#}"
    );
    assert!(
        recorded > 0 && recorded <= after_halt,
        "{recorded} of {after_halt}"
    );
}

#[test]
fn an_agent_stopped_past_its_grace_takes_a_share_back_when_it_resumes() {
    let (_sim, sim_url) = start_sim(&["--ttft", "5ms", "--itl", "1ms", "--output-tokens", "8"]);
    let plan = format!(
        r#"
[run]
name = "frozen"
window = "500ms"
[agents]
remote = 2
reconnect_grace = "3s"
halt_after = "2s"
[target]
url = "{sim_url}"
model = "stampede-sim"
[request]
max_tokens = 8
timeout = "2s"
[[phase]]
name = "long"
kind = "constant"
rate = 20.0
duration = "26s"
"#
    );
    let (dir, path) = plan_file(&plan);
    let out = dir.path().join("run");
    let (mut controller, url) = stampede_tests::start_remote_controller(&path, &out);
    let agent = |id: &str| stampede_tests::remote_agent(&url, id, &[]);
    let (mut a, mut b) = (agent("a"), agent("b"));
    for _ in 0..4 {
        controller.wait_for_line("  long [", Duration::from_secs(60));
    }
    // Frozen: its connection stays open but nothing answers the controller's
    // pings (5 s, 3 s to answer); then 3 s of grace, and its share moves.
    a.signal("-STOP");
    controller.wait_for_line("agent a's share goes to b", Duration::from_secs(20));
    a.signal("-CONT");
    controller.wait_for_line("agent a reconnected", Duration::from_secs(20));
    controller.wait_for_line("agent a takes a share back", Duration::from_secs(20));

    let (code, output) = controller.wait_exit(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{output}");
    for p in [&mut a, &mut b] {
        let (code, text) = p.wait_exit(Duration::from_secs(30));
        assert_eq!(code, Some(0), "{text}");
    }
    let summary = check_books(&out);
    let phase = &summary["phases"][0];
    assert_eq!(phase["lost_agents"], serde_json::json!([]), "{phase:#}");
    let moves = phase["redistributed"].as_array().unwrap();
    assert_eq!(moves.len(), 2, "{phase:#}");
    assert_eq!(
        (moves[0]["lost"].as_str(), moves[1]["rejoined"].as_str()),
        (Some("a"), Some("a"))
    );
    // What stampede says it sent is what the server saw.
    let served = sim_requests_started(&sim_url);
    assert_eq!(
        phase["requests"]["sent"].as_u64(),
        Some(served),
        "{phase:#}"
    );
}

//! Every request accounted, whatever happens to an agent process:
//! `sent = ok + Σ failure classes + lost`, with arrivals that were never sent
//! (skipped, expired) outside `sent`.
//! - SIGKILL: what the killed agent had in flight is `lost`, not a gap.
//! - SIGSTOP past the request timeout: arrivals whose deadline passed while
//!   the agent was stopped are `expired` — never sent, never a server
//!   timeout — and every window of the stall is flagged saturated.
//! - SIGSTOP within the timeout: every arrival is sent late, none expires.

use stampede_tests::{Proc, assert_reconciles, get_json, plan_file, read_json, start_sim};
use std::collections::BTreeMap;
use std::time::Duration;

fn agent(addr: &str, id: &str) -> Proc {
    stampede_tests::remote_agent(addr, id, &[])
}

#[test]
fn a_killed_agents_requests_in_flight_are_lost_not_missing() {
    // 1.5 s to the first token: a killed agent always has requests in flight
    // that were counted as sent in windows it had already reported.
    let (_sim, sim_url) = start_sim(&["--ttft", "1500ms", "--itl", "1ms", "--output-tokens", "4"]);
    let plan = format!(
        r#"
[run]
name = "killed-agent"
window = "500ms"
[agents]
remote = 2
reconnect_grace = "1s"
[target]
url = "{sim_url}"
model = "stampede-sim"
[request]
max_tokens = 4
timeout = "10s"
[[phase]]
name = "steady"
kind = "constant"
rate = 10.0
duration = "8s"
"#
    );
    let (dir, path) = plan_file(&plan);
    let out = dir.path().join("run");
    let (mut controller, addr) = stampede_tests::start_remote_controller(&path, &out);
    let mut agents: BTreeMap<&str, Proc> = ["a", "b"]
        .into_iter()
        .map(|id| (id, agent(&addr, id)))
        .collect();
    controller.wait_for_line("phase steady", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    // SIGKILL: no goodbye, no last reports.
    drop(agents.remove("b"));

    let (code, output) = controller.wait_exit(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{output}");
    let summary = read_json(&out.join("summary.json"));
    let phase = &summary["phases"][0];
    assert_eq!(phase["lost_agents"], serde_json::json!(["b"]), "{phase}");
    let lost = phase["requests"]["lost"].as_u64().expect("requests.lost");
    // b sent 5 req/s, each in flight 1.5 s, and reports every 0.5 s.
    assert!(lost >= 3, "lost {lost}: {phase:#}");
    let (sent, ok) = assert_reconciles(phase);
    eprintln!("killed agent: sent {sent}, ok {ok}, lost {lost}");
    let stats = std::fs::read_to_string(out.join("stats.txt")).unwrap();
    assert!(
        stats.contains(&format!(
            "lost {lost} (in flight on lost or restarted agents)"
        )),
        "{stats}"
    );
}

#[test]
fn a_stalled_agents_expired_arrivals_are_not_blamed_on_the_server() {
    let (_sim, sim_url) = start_sim(&["--ttft", "5ms", "--itl", "1ms", "--output-tokens", "4"]);
    let plan = format!(
        r#"
[run]
name = "stalled-agent"
window = "500ms"
[agents]
remote = 1
reconnect_grace = "60s"
[target]
url = "{sim_url}"
model = "stampede-sim"
[request]
max_tokens = 4
timeout = "1s"
[[phase]]
name = "steady"
kind = "constant"
rate = 20.0
duration = "9s"
"#
    );
    let (dir, path) = plan_file(&plan);
    let out = dir.path().join("run");
    let (mut controller, addr) = stampede_tests::start_remote_controller(&path, &out);
    let a = agent(&addr, "a");
    controller.wait_for_line("phase steady", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    let stall = Duration::from_secs(3);
    a.signal("-STOP");
    std::thread::sleep(stall);
    a.signal("-CONT");

    let (code, output) = controller.wait_exit(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{output}");
    let summary = read_json(&out.join("summary.json"));
    let phase = &summary["phases"][0];
    let (sent, _) = assert_reconciles(phase);
    let served = stampede_tests::sim_requests_started(&sim_url);
    // What stampede says it sent is what the server saw.
    assert_eq!(sent, served, "{phase:#}");
    let r = &phase["requests"];
    let expired = r["expired"].as_u64().expect("requests.expired");
    // 20 req/s over a 3 s stall, less the last second's arrivals (still
    // within their 1 s timeout at the resume, so sent late).
    assert!(expired >= 30, "expired {expired}: {phase:#}");
    // At most the requests in flight when the agent stopped can have failed.
    let failed = r["failed"].as_u64().unwrap();
    assert!(
        failed <= 2,
        "{failed} failures blamed on the server: {phase:#}"
    );
    // Every arrival the schedule defines: sent, skipped or expired.
    let skipped = r["skipped"].as_u64().unwrap();
    assert_eq!(
        Some(sent + skipped + expired),
        phase["scheduled"].as_u64(),
        "{phase:#}"
    );
    // The stall covers six 500 ms windows; each is flagged.
    let saturated = phase["saturated_windows"]["a"].as_u64().unwrap_or(0);
    eprintln!(
        "stalled agent: sent {sent} (server saw {served}), expired {expired}, failed {failed}, \
         {saturated} saturated windows"
    );
    assert!(saturated >= 6, "{saturated} saturated windows: {phase:#}");
    drop(a);
}

#[test]
fn a_short_stall_within_the_timeout_expires_and_loses_nothing() {
    let (_sim, sim_url) = start_sim(&["--ttft", "5ms", "--itl", "1ms", "--output-tokens", "4"]);
    let plan = format!(
        r#"
[run]
name = "short-stall"
window = "500ms"
[agents]
remote = 1
[target]
url = "{sim_url}"
model = "stampede-sim"
[request]
max_tokens = 4
timeout = "3s"
[[phase]]
name = "steady"
kind = "constant"
rate = 20.0
duration = "6s"
"#
    );
    let (dir, path) = plan_file(&plan);
    let out = dir.path().join("run");
    let (mut controller, addr) = stampede_tests::start_remote_controller(&path, &out);
    let a = agent(&addr, "a");
    controller.wait_for_line("phase steady", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    a.signal("-STOP");
    std::thread::sleep(Duration::from_millis(500));
    a.signal("-CONT");

    let (code, output) = controller.wait_exit(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{output}");
    let summary = stampede_tests::check_books(&out);
    let phase = &summary["phases"][0];
    let r = &phase["requests"];
    // Every arrival of the stall was still within its 3 s timeout: sent late, not expired.
    assert_eq!(r["expired"].as_u64(), Some(0), "{phase:#}");
    assert_eq!(r["lost"].as_u64(), Some(0), "{phase:#}");
    assert_eq!(r["sent"].as_u64(), phase["scheduled"].as_u64(), "{phase:#}");
    let served = get_json(&format!("{sim_url}/sim/stats"))["requests_started"].as_u64();
    assert_eq!(r["sent"].as_u64(), served, "{phase:#}");
    drop(a);
}

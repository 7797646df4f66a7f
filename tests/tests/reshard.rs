//! An agent killed mid-ramp: once it is declared lost, the remaining agents
//! take its share from the next window, the phase completes, the achieved
//! rate matches the offered one again, and the report names the lost agent.

use stampede_tests::{Proc, bin, plan_file, start_sim};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

#[test]
fn a_killed_agents_share_is_carried_by_the_others() {
    let (_sim, sim_url) = start_sim(&["--ttft", "5ms", "--itl", "1ms", "--output-tokens", "8"]);
    // 20 → 60 req/s over 14 s; arrival k is intended at the time the ramp's
    // cumulative rate reaches k.
    let (from, to, secs) = (20.0, 60.0, 14.0);
    let plan = format!(
        r#"
[run]
name = "reshard"
window = "1s"
[agents]
remote = 3
reconnect_grace = "1s"
[target]
url = "{sim_url}"
model = "stampede-sim"
[request]
max_tokens = 8
timeout = "10s"
[[phase]]
name = "ramp"
kind = "ramp"
from = {from:.1}
to = {to:.1}
duration = "{secs}s"
"#
    );
    let (dir, path) = plan_file(&plan);
    let out = dir.path().join("run");
    let (mut controller, addr) = stampede_tests::start_remote_controller(&path, &out);
    let mut agents: BTreeMap<&str, Proc> = ["a", "b", "c"]
        .into_iter()
        .map(|id| {
            let mut cmd = Command::new(bin("agent"));
            cmd.args(["--controller", &addr, "--id", id]);
            (id, Proc::spawn(cmd))
        })
        .collect();
    controller.wait_for_line("phase ramp", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(4));
    // SIGKILL: no goodbye, no last reports.
    drop(agents.remove("c"));

    let (code, output) = controller.wait_exit(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("agent c's share goes to a, b"), "{output}");
    for (_, mut a) in agents {
        let (code, out) = a.wait_exit(Duration::from_secs(30));
        assert_eq!(code, Some(0), "{out}");
    }

    let summary = stampede_tests::read_json(&out.join("summary.json"));
    let phase = &summary["phases"][0];
    assert_eq!(phase["lost_agents"], serde_json::json!(["c"]), "{phase}");
    let r = &phase["redistributed"][0];
    assert_eq!(r["lost"], "c");
    assert_eq!(r["to"], serde_json::json!(["a", "b"]));
    let from_s = r["from_s"].as_f64().unwrap();
    assert!((5.0..=8.0).contains(&from_s), "reshard at {from_s} s");
    let stats = std::fs::read_to_string(out.join("stats.txt")).unwrap();
    assert!(stats.contains("lost agents c"), "{stats}");
    assert!(stats.contains("c's share went to a, b"), "{stats}");
    stampede_tests::assert_reconciles(phase);

    // Requests sent per window, summed over the agents' reports.
    let mut sent: BTreeMap<u64, u64> = BTreeMap::new();
    for line in std::fs::read_to_string(out.join("windows.jsonl"))
        .unwrap()
        .lines()
    {
        let rec: serde_json::Value = serde_json::from_str(line).unwrap();
        if rec["record"] == "window" {
            *sent.entry(rec["window"].as_u64().unwrap()).or_default() +=
                rec["counters"]["sent"].as_u64().unwrap();
        }
    }
    // Offered in window [i, i+1): the ramp's integral over it.
    let offered = |i: f64| {
        let lambda = |t: f64| from * t + (to - from) * t * t / (2.0 * secs);
        lambda(i + 1.0) - lambda(i)
    };
    // The reshard takes effect at a window boundary: that window is whole.
    let first = from_s as u64;
    for i in first..secs as u64 {
        let (got, want) = (sent.get(&i).copied().unwrap_or(0) as f64, offered(i as f64));
        assert!(
            (got - want).abs() <= 0.05 * want,
            "window {i}: sent {got}, offered {want:.1}; all windows {sent:?}"
        );
    }
    // The agent died at least the grace period (1 s) before the boundary, so
    // the window before it lacks the lost third: the load really did drop and
    // really was restored.
    let before = first - 1;
    let got = sent.get(&before).copied().unwrap_or(0) as f64;
    assert!(
        got < 0.9 * offered(before as f64),
        "window {before} shows no lost share: sent {got}; windows {sent:?}"
    );
}

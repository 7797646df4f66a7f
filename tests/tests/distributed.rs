//! The whole path with separate processes on loopback: a simulator, a
//! controller expecting remote agents, and three `agent` processes.

use stampede_tests::{Proc, bin, get_json, plan_file, start_sim};
use std::process::Command;
use std::time::Duration;

const TTFT_MS: f64 = 20.0;

#[test]
fn three_agent_processes_merge_to_the_simulators_count() {
    let (_sim, sim_url) = start_sim(&["--ttft", "20ms", "--itl", "2ms", "--output-tokens", "16"]);
    let plan = format!(
        r#"
[run]
name = "distributed"
window = "500ms"
[agents]
remote = 3
join_timeout = "60s"
[target]
url = "{sim_url}"
model = "stampede-sim"
[request]
prompt_tokens = 32
max_tokens = 16
timeout = "10s"
[[phase]]
name = "baseline"
kind = "baseline"
duration = "2s"
[[phase]]
name = "steady"
kind = "constant"
rate = 15.0
duration = "4s"
"#
    );
    let (dir, path) = plan_file(&plan);
    let out = dir.path().join("run");
    let (mut controller, addr) = stampede_tests::start_remote_controller(&path, &out);

    let mut agents: Vec<Proc> = (0..3)
        .map(|i| {
            let mut cmd = Command::new(bin("agent"));
            cmd.args([
                "--controller",
                &addr,
                "--id",
                &format!("agent-{i}"),
                "--give-up-after",
                "30s",
            ]);
            Proc::spawn(cmd)
        })
        .collect();

    let (code, output) = controller.wait_exit(Duration::from_secs(90));
    assert_eq!(code, Some(0), "controller failed:\n{output}");
    for a in &mut agents {
        let (code, output) = a.wait_exit(Duration::from_secs(15));
        assert_eq!(code, Some(0), "agent failed:\n{output}");
    }

    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("summary.json")).expect("summary.json"),
    )
    .expect("JSON");
    assert!(out.join("stats.txt").exists());
    assert_eq!(summary["agents"].as_array().map(Vec::len), Some(3));

    let phases = summary["phases"].as_array().expect("phases");
    assert_eq!(phases.len(), 2);
    let ok: u64 = phases
        .iter()
        .map(|p| p["requests"]["ok"].as_u64().unwrap())
        .sum();
    let sent: u64 = phases
        .iter()
        .map(|p| p["requests"]["sent"].as_u64().unwrap())
        .sum();
    let served = get_json(&format!("{sim_url}/sim/stats"))["requests_served"]
        .as_u64()
        .expect("requests_served");
    assert_eq!(ok, served, "merged ok count vs simulator's served count");
    assert_eq!(sent, ok, "every sent request succeeded");

    let steady = &phases[1];
    // 15 req/s for 4 s, interleaved over 3 agents: exactly 60 arrivals.
    assert_eq!(steady["requests"]["sent"].as_u64(), Some(60));
    assert_eq!(steady["agents"].as_array().map(Vec::len), Some(3));
    let p50 = steady["metrics"]["ttft"]["p50"].as_f64().expect("ttft p50");
    assert!(
        (p50 - TTFT_MS).abs() < 2.0,
        "merged TTFT p50 {p50} ms vs configured {TTFT_MS} ms"
    );
    let base_p50 = phases[0]["metrics"]["ttft"]["p50"]
        .as_f64()
        .expect("baseline ttft p50");
    assert!(
        (base_p50 - TTFT_MS).abs() < 2.0,
        "baseline TTFT p50 {base_p50} ms"
    );
}

/// Two `agent` processes of 1 and 3 cores share a constant phase in
/// proportion to their cores (and evenly with `shard_weights = "equal"`):
/// exactly the arrivals each shard owns, and together every arrival.
#[test]
fn shards_follow_agent_cores() {
    let (_sim, sim_url) = start_sim(&["--ttft", "5ms", "--itl", "1ms", "--output-tokens", "4"]);
    for (weights, expected) in [("cores", [30u64, 90]), ("equal", [60, 60])] {
        let plan = format!(
            r#"
[run]
name = "weighted"
window = "500ms"
[agents]
remote = 2
join_timeout = "60s"
shard_weights = "{weights}"
[target]
url = "{sim_url}"
model = "stampede-sim"
[request]
prompt_tokens = 8
max_tokens = 4
timeout = "10s"
[[phase]]
name = "steady"
kind = "constant"
rate = 40.0
duration = "3s"
"#
        );
        let (dir, path) = plan_file(&plan);
        let out = dir.path().join("run");
        let (mut controller, addr) = stampede_tests::start_remote_controller(&path, &out);
        // Ids sort in assignment order: a-small is shard 0.
        let mut agents: Vec<Proc> = [("a-small", "1"), ("b-large", "3")]
            .iter()
            .map(|(id, cores)| {
                let mut cmd = Command::new(bin("agent"));
                cmd.args(["--controller", &addr, "--id", id, "--cores", cores]);
                cmd.args(["--give-up-after", "30s"]);
                Proc::spawn(cmd)
            })
            .collect();
        let (code, output) = controller.wait_exit(Duration::from_secs(90));
        assert_eq!(code, Some(0), "controller failed:\n{output}");
        for a in &mut agents {
            let (code, output) = a.wait_exit(Duration::from_secs(15));
            assert_eq!(code, Some(0), "agent failed:\n{output}");
        }

        let mut sent = std::collections::BTreeMap::<String, u64>::new();
        let mut recorded_weights = None;
        for line in std::fs::read_to_string(out.join("windows.jsonl"))
            .expect("windows.jsonl")
            .lines()
        {
            let r: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            match r["record"].as_str() {
                Some("phase_start") => recorded_weights = Some(r["shard_weights"].clone()),
                Some("window") => {
                    *sent
                        .entry(r["agent"].as_str().expect("agent").to_string())
                        .or_default() += r["counters"]["sent"].as_u64().expect("sent");
                }
                _ => {}
            }
        }
        let got = [sent["a-small"], sent["b-large"]];
        assert_eq!(
            got, expected,
            "{weights}: requests sent by a-small, b-large"
        );
        let want_weights = match weights {
            "cores" => serde_json::json!([1, 3]),
            _ => serde_json::json!([1, 1]),
        };
        assert_eq!(recorded_weights, Some(want_weights));
    }
}

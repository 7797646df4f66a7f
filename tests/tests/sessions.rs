//! Multi-turn sessions on the simulator: each later turn carries the earlier
//! questions and the server's answers, so the server-reported prompt tokens
//! grow turn by turn exactly as the history does.

use stampede_tests::{Proc, bin, plan_file};
use std::process::Command;
use std::time::Duration;

#[test]
fn later_turns_carry_the_history() {
    // 3 turns of 10-word questions and 5-token answers: the prompts are 10,
    // 10 + 5 + 10 = 25 and 25 + 5 + 10 = 40 tokens (the simulator counts one
    // token per word), 75 per session.
    let (sessions, turns) = (20u64, 3u64);
    let plan = format!(
        r#"
[run]
name = "sessions"
[agents]
local = 2
[target.simulator]
ttft = "1ms"
itl = "0s"
output_tokens = 100000
[[workload]]
input = {{ dist = "fixed", value = 10 }}
output = {{ dist = "fixed", value = 5 }}
session = {{ turns = {turns}, think_time = "20ms" }}
[[phase]]
kind = "concurrency"
users = 4
requests = {sessions}
duration = "60s"
"#
    );
    let (dir, path) = plan_file(&plan);
    let out = dir.path().join("run");
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("run").arg(&path).arg("--out").arg(&out);
    let (code, output) = Proc::spawn(cmd).wait_exit(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{output}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let phase = &summary["phases"][0];
    assert_eq!(phase["requests"]["ok"], sessions * turns, "{phase}");
    assert_eq!(phase["requests"]["sent"], sessions * turns, "{phase}");
    assert_eq!(phase["output_tokens"], sessions * turns * 5, "{phase}");
    assert_eq!(phase["input_tokens"], sessions * (10 + 25 + 40), "{phase}");
}

//! A controller killed mid-run leaves raw results that `controller report`
//! turns into a report covering every window received before the kill.

use stampede_tests::{Proc, bin, plan_file};
use std::process::Command;
use std::time::Duration;

const PLAN: &str = r#"
[run]
name = "killed"
window = "500ms"
[agents]
local = 2
[target.simulator]
ttft = "10ms"
itl = "2ms"
output_tokens = 8
[request]
max_tokens = 8
timeout = "5s"
[[phase]]
name = "warm"
kind = "baseline"
duration = "1s"
[[phase]]
name = "long"
kind = "constant"
rate = 20.0
duration = "60s"
"#;

fn json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn report_after_kill_covers_the_windows_received() {
    let (dir, path) = plan_file(PLAN);
    let out = dir.path().join("run");
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("run").arg(&path).arg("--out").arg(&out);
    let mut controller = Proc::spawn(cmd);
    // Three complete windows of the long phase, then SIGKILL: no chance to clean up.
    for _ in 0..3 {
        controller.wait_for_line("  long [", Duration::from_secs(60));
    }
    controller.child.kill().expect("kill -9 the controller");
    controller.child.wait().expect("reap");
    let printed_windows = controller
        .seen
        .iter()
        .filter(|l| l.contains("  long ["))
        .count();
    assert!(
        !out.join("summary.json").exists(),
        "a killed run wrote summary.json"
    );

    let mut report = Command::new(bin("controller"));
    report.arg("report").arg(&out);
    let (code, text) = Proc::spawn(report).wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("incomplete"), "{text}");

    // What the raw log holds for the long phase, summed independently.
    let raw = std::fs::read_to_string(out.join("windows.jsonl")).unwrap();
    let mut sent = 0u64;
    let mut windows = std::collections::BTreeSet::new();
    for line in raw.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue; // the line being written at the kill
        };
        if v["record"] == "window" && v["phase"] == 1 {
            sent += v["counters"]["sent"].as_u64().unwrap();
            windows.insert(v["window"].as_u64().unwrap());
        }
    }
    assert!(
        windows.len() >= printed_windows,
        "{} windows in the raw log, {printed_windows} printed before the kill",
        windows.len()
    );

    let summary = json(&out.join("summary.json"));
    let phases = summary["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 2, "{summary:#}");
    assert_eq!(phases[0]["complete"], true);
    assert!(phases[0]["requests"]["ok"].as_u64().unwrap() > 0);
    // The phase that ended before the kill accounts for every request; the
    // one cut short holds exactly what its recorded windows hold.
    stampede_tests::assert_reconciles(&phases[0]);
    assert_eq!(phases[1]["complete"], false);
    assert_eq!(phases[1]["requests"]["sent"].as_u64().unwrap(), sent);
    assert!(sent > 0);
    assert!(summary["finished_at"].is_null(), "{summary:#}");
    for f in ["stats.txt", "manifest.json"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
}

/// One Ctrl-C ends the running phase early and writes results; the exit code
/// says the run was interrupted (4), not that it completed (0).
#[test]
fn a_stopped_run_writes_its_results_and_exits_4() {
    let (dir, path) = plan_file(PLAN);
    let out = dir.path().join("run");
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("run").arg(&path).arg("--out").arg(&out);
    let mut controller = Proc::spawn(cmd);
    controller.wait_for_line("  long [", Duration::from_secs(60));
    let pid = controller.child.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(sent.success());
    let (code, output) = controller.wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(4), "{output}");
    assert!(output.contains("interrupted"), "{output}");
    let summary = json(&out.join("summary.json"));
    assert_eq!(summary["interrupted"], true);
    let long = &summary["phases"][1];
    assert_eq!(long["name"], "long");
    assert_eq!(long["stopped_early"], true);
    assert!(out.join("stats.txt").is_file());
}

#[test]
fn report_on_a_missing_run_dir_names_it() {
    let mut report = Command::new(bin("controller"));
    report.args(["report", "/nonexistent/run-dir"]);
    let (code, text) = Proc::spawn(report).wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("/nonexistent/run-dir"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

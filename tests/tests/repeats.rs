//! `run.repeat = N` runs the phases N times and reports each key metric's
//! mean, standard deviation and 95% interval across the repeats.

use stampede_tests::{Proc, bin, plan_file};
use std::process::Command;
use std::time::Duration;

const PLAN: &str = r#"
[run]
name = "rep"
window = "500ms"
repeat = 3
[agents]
local = 1
[target.simulator]
ttft = "10ms"
itl = "2ms"
output_tokens = 8
[request]
max_tokens = 8
timeout = "5s"
[[phase]]
name = "steady"
kind = "constant"
rate = 20.0
duration = "1s"
drain = "2s"
"#;

#[test]
fn three_repeats_are_summarized() {
    let (dir, path) = plan_file(PLAN);
    let out = dir.path().join("run");
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("run").arg(&path).arg("--out").arg(&out);
    let (code, text) = Proc::spawn(cmd).wait_exit(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{text}");

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let phases = summary["phases"].as_array().unwrap();
    let repeats: Vec<u64> = phases
        .iter()
        .map(|p| p["repeat"].as_u64().unwrap())
        .collect();
    assert_eq!(repeats, [0, 1, 2]);
    let across = &summary["repeats"][0];
    assert_eq!(across["phase"], "steady");
    assert_eq!(across["repeats"], 3);
    let ttft = across["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "ttft p50")
        .expect("ttft p50 across repeats");
    let values: Vec<f64> = ttft["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let per_phase: Vec<f64> = phases
        .iter()
        .map(|p| p["metrics"]["ttft"]["p50"].as_f64().unwrap())
        .collect();
    assert_eq!(values, per_phase);
    let mean = values.iter().sum::<f64>() / 3.0;
    assert!((ttft["mean"].as_f64().unwrap() - mean).abs() < 1e-9);
    let (lo, hi) = (
        ttft["ci95_low"].as_f64().unwrap(),
        ttft["ci95_high"].as_f64().unwrap(),
    );
    assert!(lo <= mean && mean <= hi, "{ttft}");

    let stats = std::fs::read_to_string(out.join("stats.txt")).unwrap();
    assert!(stats.contains("phase steady across 3 repeats"), "{stats}");
    assert!(stats.contains("[repeat 3 of 3]"), "{stats}");
    let reports = std::fs::read_dir(out.join("llmd")).unwrap().count();
    assert_eq!(reports, 3);
    let rows = std::fs::read_to_string(out.join("phases.csv"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(rows, 1 + 3);
}

//! Objectives decide the exit code: a run that completes but misses one
//! exits 3 (not 0, not the 1 of a run that could not complete), and the
//! report says which objective failed and what was measured.

use stampede_tests::{read_json, run_plan};
use std::time::Duration;

fn run(slo: &str) -> (Option<i32>, String, serde_json::Value) {
    let plan = format!(
        r#"
[run]
name = "slo"
slo = [{slo}]
[agents]
local = 1
[target.simulator]
ttft = "20ms"
itl = "1ms"
output_tokens = 8
[request]
max_tokens = 8
[[phase]]
name = "steady"
kind = "constant"
rate = 20.0
duration = "2s"
"#
    );
    let run = run_plan(&plan, Duration::from_secs(120));
    let summary = read_json(&run.out.join("summary.json"));
    (run.code, run.output, summary)
}

#[test]
fn a_missed_objective_exits_3_and_names_the_objective() {
    let (code, output, summary) = run(r#""ttft.p99 < 5ms", "error_rate < 1%""#);
    assert_eq!(code, Some(3), "{output}");
    assert!(output.contains("FAIL ttft.p99 < 5ms"), "{output}");
    assert!(output.contains("objectives failed"), "{output}");
    let phase = &summary["phases"][0];
    assert_eq!(phase["slo_passed"], false);
    let ttft = &phase["slo"][0];
    assert_eq!(ttft["passed"], false);
    assert!(ttft["observed"].as_f64().unwrap() >= 20.0, "{ttft}");
    assert_eq!(phase["slo"][1]["passed"], true);
    assert_eq!(summary["slo_failed"], true);
    // Goodput counts requests within the TTFT bound: none are.
    assert_eq!(phase["good_requests"].as_u64(), Some(0), "{phase}");
}

#[test]
fn met_objectives_exit_0_with_goodput() {
    let (code, output, summary) = run(r#""ttft.p99 < 500ms", "e2e.p99 < 2s""#);
    assert_eq!(code, Some(0), "{output}");
    let phase = &summary["phases"][0];
    assert_eq!(phase["slo_passed"], true, "{phase}");
    let ok = phase["requests"]["ok"].as_u64().unwrap();
    assert_eq!(phase["good_requests"].as_u64(), Some(ok), "{phase}");
    let goodput = phase["goodput"].as_f64().unwrap();
    let throughput = phase["request_throughput"].as_f64().unwrap();
    assert!(
        (goodput - throughput).abs() < 1e-9,
        "{goodput} vs {throughput}"
    );
}

//! End to end on the built-in simulator with a known capacity: the stress
//! phase's knee lands within 10% of it. The capacity comes from the batching
//! engine's settings (docs/simulator.md, "Predicting capacity"): with every
//! slot busy a step takes `step_base + step_per_seq·N`, each request holds a
//! slot for `L` steps, and prefill is free here, so
//! `λ_max = N / ((step_base + step_per_seq·N) · L)`.

use stampede_tests::run_plan;
use std::time::Duration;

#[test]
fn stress_knee_lands_within_ten_percent_of_the_simulators_capacity() {
    let (n, step_base, step_per_seq, l) = (64.0, 5e-3, 100e-6, 64.0);
    let capacity = n / ((step_base + step_per_seq * n) * l);
    let plan = r#"
[run]
name = "knee"
window = "1s"
[agents]
local = 2
[target.simulator]
output_tokens = 64
[target.simulator.engine]
max_num_seqs = 64
step_base = "5ms"
step_per_seq = "100us"
prefill_per_token = "0s"
[request]
prompt_tokens = 128
max_tokens = 64
timeout = "30s"
[[phase]]
name = "knee"
kind = "stress"
from = 40.0
to = 400.0
step_duration = "4s"
precision = 0.05
slo = ["ttft.p99 < 250ms"]
# Agents, simulator and controller share this machine's cores: scheduling
# noise on the load generator is not what this test measures (the
# saturation stop has its own tests).
max_saturated = 1.0
"#;
    let run = run_plan(plan, Duration::from_secs(300));
    assert_eq!(
        run.code,
        Some(0),
        "a knee was found, so no objective failed:\n{}",
        run.output
    );
    let out = &run.out;
    let summary = stampede_tests::read_json(&out.join("summary.json"));
    let stress = &summary["stress"][0];
    let knee = stress["knee_rate"].as_f64().expect("a knee");
    assert_eq!(stress["stopped"], "converged", "{stress}");
    let error = (knee - capacity).abs() / capacity;
    assert!(
        error <= 0.10,
        "knee {knee:.1} req/s vs capacity {capacity:.1} req/s ({:.1}% off)\n{stress}",
        error * 100.0
    );
    // Every step is in the step table and among the phases, in order.
    let steps = stress["steps"].as_array().unwrap();
    let phases = summary["phases"].as_array().unwrap();
    assert_eq!(steps.len(), phases.len());
    for (i, (st, ph)) in steps.iter().zip(phases).enumerate() {
        assert_eq!(ph["step"]["index"].as_u64(), Some(i as u64));
        assert_eq!(ph["step"]["rate"], st["rate"]);
        assert_eq!(ph["kind"], "stress");
    }
    assert_eq!(steps[0]["rate"].as_f64(), Some(40.0));
    assert!(steps.iter().any(|s| s["passed"] == false));
    let text = std::fs::read_to_string(out.join("stats.txt")).unwrap();
    assert!(
        text.contains(&format!("stress knee: knee {knee:.2} req/s")),
        "{text}"
    );

    // The report rebuilt from the raw log names the same knee.
    let (code, output) = stampede_tests::report(out);
    assert_eq!(code, Some(0), "{output}");
    let rebuilt = stampede_tests::read_json(&out.join("summary.json"));
    assert_eq!(rebuilt["stress"], summary["stress"]);
}

//! A rate above what a concurrency cap lets through: the simulator never
//! sees more requests at once than the cap, the arrivals that waited for a
//! slot show their wait as schedule lag, and the books still reconcile.

use stampede_tests::{check_books, get_json, run_plan, start_sim};
use std::time::Duration;

#[test]
fn the_cap_holds_at_the_server_and_its_waits_are_lag() {
    let (_sim, url) = start_sim(&["--ttft", "100ms", "--itl", "0s", "--output-tokens", "2"]);
    // 4 slots of ~100 ms each let ~40 req/s through; 60 req/s are offered.
    let plan = format!(
        r#"
[run]
name = "cap"
[agents]
local = 2
[target]
url = "{url}"
model = "stampede-sim"
[request]
max_tokens = 2
timeout = "10s"
[[phase]]
name = "capped"
kind = "constant"
rate = 60.0
duration = "2s"
max_concurrency = 4
"#
    );
    let run = run_plan(&plan, Duration::from_secs(120));
    assert_eq!(run.code, Some(0), "{}", run.output);
    let summary = check_books(&run.out);
    let phase = &summary["phases"][0];
    let r = &phase["requests"];
    assert_eq!(r["sent"], 120, "every arrival waited its turn: {phase:#}");
    assert_eq!(
        (r["skipped"].as_u64(), r["expired"].as_u64()),
        (Some(0), Some(0))
    );
    let peak = get_json(&format!("{url}/sim/stats"))["peak_running"]
        .as_u64()
        .unwrap();
    assert!((2..=4).contains(&peak), "the server saw {peak} at once");
    let lag_p99 = phase["metrics"]["schedule_lag"]["p99"].as_f64().unwrap();
    assert!(
        lag_p99 > 200.0,
        "waits for a slot are lag: p99 {lag_p99} ms"
    );
    // Latency counts from the intended time, so it includes the wait.
    let e2e_p99 = phase["metrics"]["e2e"]["p99"].as_f64().unwrap();
    assert!(
        e2e_p99 > lag_p99,
        "e2e p99 {e2e_p99} ms, lag p99 {lag_p99} ms"
    );
}

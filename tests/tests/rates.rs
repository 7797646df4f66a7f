//! Offered against achieved load on short and sparse phases: the achieved
//! rate is measured over the planned arrival window, a phase runs its
//! planned duration however sparse, and the arrivals the schedule defines
//! are accounted one for one.

use stampede_tests::{assert_reconciles, read_json, run_plan, start_sim};
use std::time::Duration;

#[test]
fn short_and_sparse_phases_report_their_true_rates() {
    let (_sim, url) = start_sim(&["--ttft", "2ms", "--itl", "0s", "--output-tokens", "2"]);
    let plan = format!(
        r#"
[run]
name = "rates"
seed = 5
[agents]
local = 2
[target]
url = "{url}"
model = "stampede-sim"
[request]
max_tokens = 2
timeout = "5s"
[[phase]]
name = "short"
kind = "constant"
rate = 10.0
duration = "2s"
drain = "1s"
[[phase]]
name = "sparse"
kind = "constant"
rate = 0.1
duration = "3s"
drain = "1s"
[[phase]]
name = "poisson"
kind = "constant"
rate = 50.0
arrival = "poisson"
duration = "2s"
drain = "1s"
"#
    );
    let run = run_plan(&plan, Duration::from_secs(120));
    assert_eq!(run.code, Some(0), "{}", run.output);
    let summary = read_json(&run.out.join("summary.json"));
    let phases = summary["phases"].as_array().unwrap();
    for p in phases {
        assert_reconciles(p);
        let r = &p["requests"];
        // Every scheduled arrival was sent, skipped or expired.
        let handled = ["sent", "skipped", "expired"]
            .iter()
            .map(|k| r[k].as_u64().unwrap())
            .sum::<u64>();
        assert_eq!(Some(handled), p["scheduled"].as_u64(), "{p:#}");
    }
    let field = |i: usize, k: &str| phases[i][k].as_f64().unwrap();

    // 10 req/s for 2 s: 20 arrivals (at 0, 0.1, … 1.9 s) over a 2 s window.
    assert_eq!(phases[0]["scheduled"], 20, "{:#}", phases[0]);
    assert_eq!(phases[0]["requests"]["sent"], 20);
    let achieved = field(0, "achieved_rate");
    assert!(
        (achieved - 10.0).abs() < 0.1,
        "achieved {achieved} req/s of 10"
    );

    // 0.1 req/s for 3 s: one arrival, and the phase still lasts 3 s.
    assert_eq!(phases[1]["scheduled"], 1, "{:#}", phases[1]);
    assert_eq!(phases[1]["requests"]["sent"], 1);
    let window = field(1, "arrivals_s");
    assert!(
        window >= 2.99,
        "the sparse phase ended after {window} s of 3"
    );
    let achieved = field(1, "achieved_rate");
    assert!(
        (achieved - 1.0 / 3.0).abs() < 0.01,
        "achieved {achieved} req/s"
    );

    // Poisson: the count is the schedule's draw; the rate is over 2 s.
    let sent = phases[2]["requests"]["sent"].as_f64().unwrap();
    let achieved = field(2, "achieved_rate");
    assert!(
        (achieved - sent / 2.0).abs() < 0.05,
        "achieved {achieved}, sent {sent}"
    );
    let stats = std::fs::read_to_string(run.out.join("stats.txt")).unwrap();
    assert!(
        stats.contains("20 of 20 scheduled arrivals sent"),
        "{stats}"
    );
}

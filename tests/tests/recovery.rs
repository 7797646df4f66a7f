//! Fault actions inside a phase and the recovery report, end to end on the
//! embedded default (two local agents, the built-in simulator): a soak phase
//! whose simulator answers half its requests with HTTP 500 from t = 20 s to
//! t = 35 s. The report must place impact and recovery within one window of
//! those instants, count exactly the failures the simulator says it injected,
//! and come out the same when rebuilt with `controller report`.

use stampede_tests::{Proc, bin, check_books, plan_file, read_json, report, run_plan};
use std::process::Command;
use std::time::Duration;

const PLAN: &str = r#"
[run]
name = "recovery"
window = "1s"
[agents]
local = 2
[target.simulator]
ttft = "50ms"
itl = "2ms"
output_tokens = 8
[request]
max_tokens = 8
timeout = "5s"
[[phase]]
name = "soak"
kind = "soak"
rate = 30.0
duration = "46s"
drain = "2s"
[[phase.faults]]
at = "20s"
action = "simulator"
set = { error_500 = 0.5 }
[[phase.faults]]
at = "35s"
action = "simulator"
set = {}
"#;

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn a_simulator_fault_is_timed_in_and_out_and_its_failures_counted() {
    let run = run_plan(PLAN, Duration::from_secs(180));
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert!(!run.output.contains("panicked"), "{}", run.output);
    let summary = check_books(&run.out);
    let phase = &summary["phases"][0];
    let faults = &phase["faults"];

    // Both actions fired on the phase clock, close to their planned instants.
    let actions = faults["actions"].as_array().expect("fault actions");
    assert_eq!(actions.len(), 2, "{faults:#}");
    for (a, planned) in actions.iter().zip([20.0, 35.0]) {
        assert!(a["error"].is_null(), "{a}");
        let fired = f(&a["fired_at_s"]);
        assert!(
            (planned..planned + 0.2).contains(&fired),
            "planned {planned} s, fired {fired} s"
        );
    }
    assert_eq!(actions[0]["action"], "simulator error_500=0.5");
    assert_eq!(actions[1]["restores"], true);

    let episodes = faults["episodes"].as_array().expect("episodes");
    assert_eq!(episodes.len(), 1, "{faults:#}");
    let e = &episodes[0];
    assert_eq!(
        (e["fault"].as_u64(), e["restore"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(e["impacted"], true, "{e:#}");
    assert_eq!(e["recovered"], true, "{e:#}");
    // Within one window (1 s) of the true switch instants, never before them.
    let (impact, recovered) = (f(&e["impact_at_s"]), f(&e["recovered_at_s"]));
    let (on, off) = (f(&e["fault_at_s"]), f(&e["restore_at_s"]));
    assert!((20.0..=21.0).contains(&impact) && impact >= on, "{e:#}");
    assert!(
        (35.0..=36.0).contains(&recovered) && recovered >= off,
        "{e:#}"
    );
    assert!((0.0..=1.0).contains(&f(&e["time_to_impact_s"])), "{e:#}");
    assert!((0.0..=1.0).contains(&f(&e["time_to_recovery_s"])), "{e:#}");

    // The failures the run saw in the episode are exactly the simulator's own
    // count of injected failures: read at the end of the run from its
    // counters, and across the episode through its admin API.
    let manifest = read_json(&run.out.join("manifest.json"));
    let injected = &manifest["simulator_stats"]["faults_injected"];
    let injected_500 = injected["error_500"].as_u64().expect("simulator stats");
    let failed = e["failed"].as_u64().unwrap();
    assert!(failed > 100, "about 30/s × 15 s × 0.5 expected: {e:#}");
    assert_eq!(failed, injected_500, "{e:#}\n{injected}");
    assert_eq!(e["target_injected"].as_u64(), Some(injected_500), "{e:#}");
    assert_eq!(e["errors"]["http_5xx:500"].as_u64(), Some(failed), "{e:#}");
    assert_eq!(
        phase["requests"]["failed"].as_u64(),
        Some(failed),
        "{phase:#}"
    );
    let band = &e["band"];
    assert!(f(&band["windows"]) >= 15.0, "{band}");

    let stats = std::fs::read_to_string(run.out.join("stats.txt")).unwrap();
    assert!(stats.contains("episode     fault #0"), "{stats}");
    assert!(stats.contains(&format!("{failed} failed")), "{stats}");
    let csv = std::fs::read_to_string(run.out.join("faults.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(
        csv.lines().nth(1).unwrap().starts_with("soak,0,0,0,"),
        "{csv}"
    );

    // A rebuilt report says the same.
    let before = std::fs::read_to_string(run.out.join("summary.json")).unwrap();
    for file in ["summary.json", "stats.txt", "faults.csv"] {
        std::fs::remove_file(run.out.join(file)).unwrap();
    }
    let (code, out) = report(&run.out);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        std::fs::read_to_string(run.out.join("summary.json")).unwrap(),
        before
    );
    assert_eq!(
        std::fs::read_to_string(run.out.join("faults.csv")).unwrap(),
        csv
    );
    assert_eq!(
        std::fs::read_to_string(run.out.join("stats.txt")).unwrap(),
        stats
    );
}

#[test]
fn a_fault_outside_its_phase_or_without_a_simulator_is_refused() {
    let cases = [
        (
            PLAN.replace("at = \"35s\"", "at = \"46s\""),
            "`phase[0].faults[1].at` = \"46s\"",
        ),
        (
            PLAN.replace(
                "[target.simulator]",
                "[target]\nurl = \"http://127.0.0.1:9\"\nmodel = \"m\"\n[ignored]",
            )
            .replace(
                "[ignored]\nttft = \"50ms\"\nitl = \"2ms\"\noutput_tokens = 8\n",
                "",
            ),
            "`phase[0].faults[0].admin_url` = (missing)",
        ),
        (
            PLAN.replace(
                "action = \"simulator\"\nset = {}",
                "action = \"reboot\"\nset = {}",
            ),
            "`phase[0].faults[1].action` = \"reboot\"",
        ),
    ];
    for (plan, needle) in cases {
        let (_dir, path) = plan_file(&plan);
        let mut cmd = Command::new(bin("controller"));
        cmd.arg("validate").arg(&path);
        let (code, out) = Proc::spawn(cmd).wait_exit(Duration::from_secs(30));
        assert_eq!(code, Some(2), "{out}");
        assert!(out.contains(needle), "{needle} not in: {out}");
    }
}

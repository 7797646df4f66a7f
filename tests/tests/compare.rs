//! `controller compare` on two runs against simulators of different speed
//! calls the faster one better on TTFT, and the slower one worse.
//!
//! 150 requests per run: the 95% interval of a p90 then ends at about rank
//! 142, so a handful of requests stalled by a busy machine cannot reach it.

use stampede_tests::{Proc, bin, plan_file};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn plan(ttft: &str) -> String {
    format!(
        r#"
[run]
name = "cmp"
window = "500ms"
[agents]
local = 1
[target.simulator]
ttft = "{ttft}"
itl = "2ms"
output_tokens = 8
[request]
max_tokens = 8
timeout = "5s"
[[phase]]
name = "steady"
kind = "constant"
rate = 50.0
duration = "3s"
"#
    )
}

fn run(dir: &Path, ttft: &str) -> PathBuf {
    let (_plan_dir, path) = plan_file(&plan(ttft));
    let out = dir.join(format!("run-{ttft}"));
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("run").arg(&path).arg("--out").arg(&out);
    let (code, text) = Proc::spawn(cmd).wait_exit(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{text}");
    out
}

fn compare(a: &Path, b: &Path, png: &Path) -> String {
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("compare").arg(a).arg(b).arg("--png").arg(png);
    let (code, text) = Proc::spawn(cmd).wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{text}");
    text
}

fn row<'a>(table: &'a str, metric: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.trim_start().starts_with(metric))
        .unwrap_or_else(|| panic!("no {metric:?} row in:\n{table}"))
}

#[test]
fn faster_simulator_is_better_on_ttft() {
    let dir = tempfile::tempdir().unwrap();
    let slow = run(dir.path(), "60ms");
    let fast = run(dir.path(), "10ms");

    let png = dir.path().join("compare.png");
    let table = compare(&slow, &fast, &png);
    let bytes = std::fs::read(&png).expect("compare chart written");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 30_000,
        "{} bytes",
        bytes.len()
    );
    for metric in ["ttft p50", "ttft p90"] {
        let r = row(&table, metric);
        assert!(r.trim_end().ends_with("better"), "{r}\n{table}");
        assert!(r.contains("-"), "a negative delta expected: {r}");
    }
    let table = compare(&fast, &slow, &png);
    let r = row(&table, "ttft p50");
    assert!(r.trim_end().ends_with("worse"), "{r}\n{table}");
}

#[test]
fn compare_needs_existing_runs() {
    let mut cmd = Command::new(bin("controller"));
    cmd.args(["compare", "/nonexistent/a", "/nonexistent/b"]);
    let (code, text) = Proc::spawn(cmd).wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("/nonexistent/a"), "{text}");
}

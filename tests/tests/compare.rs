//! `controller compare` on two runs against simulators of different speed
//! calls the faster one better on TTFT, and the slower one worse; with
//! thresholds it is a regression gate (exit 5 on the slower run, 0 otherwise,
//! 2 for a bad threshold) writing Markdown and JUnit, and `controller run
//! --baseline` gates a run when it ends.
//!
//! 150 requests per run: the 95% interval of a p90 then ends at about rank
//! 142, so a handful of requests stalled by a busy machine cannot reach it.

use stampede_tests::{Proc, bin, plan_file};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn plan(ttft: &str) -> String {
    plan_repeated(ttft, 1, "3s")
}

fn plan_repeated(ttft: &str, repeat: u32, duration: &str) -> String {
    format!(
        r#"
[run]
name = "cmp"
window = "500ms"
repeat = {repeat}
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
duration = "{duration}"
"#
    )
}

fn run(dir: &Path, ttft: &str) -> PathBuf {
    run_named(dir, ttft, &format!("run-{ttft}"))
}

fn run_named(dir: &Path, ttft: &str, name: &str) -> PathBuf {
    let (_plan_dir, path) = plan_file(&plan(ttft));
    let out = dir.join(name);
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

/// `controller ARGS...`: exit code and output.
fn controller(args: &[&dyn AsRef<std::ffi::OsStr>]) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin("controller"));
    for a in args {
        cmd.arg(a);
    }
    Proc::spawn(cmd).wait_exit(Duration::from_secs(120))
}

fn attr<'a>(node: roxmltree::Node<'a, '_>, name: &str) -> &'a str {
    node.attribute(name)
        .unwrap_or_else(|| panic!("no {name} on {node:?}"))
}

#[test]
fn gate_fails_a_slower_run_and_passes_the_same_or_faster() {
    let dir = tempfile::tempdir().unwrap();
    let fast = run(dir.path(), "10ms");
    let again = run_named(dir.path(), "10ms", "run-10ms-again");
    let slow = run(dir.path(), "60ms");
    let (md, xml) = (dir.path().join("gate.md"), dir.path().join("gate.xml"));
    let gate = [
        "--fail-on",
        "ttft.p50>+50%",
        "--fail-on",
        "throughput < -50%",
    ];
    let files: [&dyn AsRef<std::ffi::OsStr>; 4] = [&"--markdown", &md, &"--junit", &xml];
    let compare = |a: &Path, b: &Path| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"compare", &a, &b];
        args.extend(gate.iter().map(|g| g as &dyn AsRef<std::ffi::OsStr>));
        args.extend(files);
        controller(&args)
    };

    let (code, text) = compare(&fast, &slow);
    assert_eq!(code, Some(5), "{text}");
    assert!(
        text.contains("regression: ttft.p50>+50% in phase steady: +"),
        "{text}"
    );
    assert!(text.contains("noise could not be estimated"), "{text}");
    let markdown = std::fs::read_to_string(&md).unwrap();
    assert!(
        markdown.starts_with("### ❌ Regression gate failed: 1 of 2 checks"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| steady | `ttft.p50>+50%` |"),
        "{markdown}"
    );
    assert!(markdown.contains("❌ **REGRESSED** |"), "{markdown}");
    let junit = std::fs::read_to_string(&xml).unwrap();
    let doc = roxmltree::Document::parse(&junit).unwrap_or_else(|e| panic!("{e}:\n{junit}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!((attr(root, "tests"), attr(root, "failures")), ("2", "1"));
    let cases: Vec<_> = root
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|c| {
            let failed = c.children().any(|f| f.has_tag_name("failure"));
            (attr(c, "classname"), attr(c, "name"), failed)
        })
        .collect();
    assert_eq!(
        cases,
        [
            ("steady", "ttft.p50>+50%", true),
            ("steady", "throughput<-50%", false)
        ]
    );

    // The same configuration again, the same run, and a faster one: no regression.
    for (a, b) in [(&fast, &again), (&fast, &fast), (&slow, &fast)] {
        let (code, text) = compare(a, b);
        assert_eq!(
            code,
            Some(0),
            "{} against {}:\n{text}",
            b.display(),
            a.display()
        );
        assert!(text.contains("gate: passed (2 checks)"), "{text}");
    }
    let markdown = std::fs::read_to_string(&md).unwrap();
    assert!(
        markdown.starts_with("### ✅ Regression gate passed"),
        "{markdown}"
    );
}

#[test]
fn bad_thresholds_are_exit_2_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = ("/nonexistent/a", "/nonexistent/b");
    // Thresholds are checked before the runs are read.
    let (code, text) = controller(&[&"compare", &a, &b, &"--fail-on", &"throughput>+5%"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("--fail-on \"throughput>+5%\": throughput is worse when lower"),
        "{text}"
    );
    let file = dir.path().join("gate.toml");
    std::fs::write(&file, "fail_on = [\"ttft.p99>+10%\", \"ttft.p42>+1%\"]\n").unwrap();
    let (code, text) = controller(&[&"compare", &a, &b, &"--thresholds", &file]);
    assert_eq!(code, Some(2), "{text}");
    let named = format!(
        "{}: fail_on[1] = \"ttft.p42>+1%\": unknown metric",
        file.display()
    );
    assert!(text.contains(&named), "{text}");
    let (code, text) = controller(&[&"compare", &a, &b, &"--junit", &"x.xml"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("--fail-on or --thresholds"), "{text}");

    // `run` checks the gate and its baseline before anything starts.
    let (_plan_dir, plan) = plan_file(&plan("10ms"));
    let out = dir.path().join("never");
    for (args, needle) in [
        (vec!["--fail-on", "ttft.p99>+10%"], "need --baseline DIR"),
        (vec!["--baseline", "/nonexistent/base"], "give thresholds"),
        (
            vec![
                "--baseline",
                "/nonexistent/base",
                "--fail-on",
                "ttft.p99>+10%",
            ],
            "/nonexistent/base",
        ),
    ] {
        let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"run", &plan, &"--out", &out];
        all.extend(args.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>));
        let (code, text) = controller(&all);
        assert_eq!(code, Some(2), "{args:?}: {text}");
        assert!(text.contains(needle), "{args:?}: {text}");
        assert!(!out.exists(), "{args:?}: a run started");
    }
}

#[test]
fn run_with_a_baseline_gates_its_repeats_beyond_noise() {
    let dir = tempfile::tempdir().unwrap();
    let run_repeated = |ttft: &str, gate: &[&dyn AsRef<std::ffi::OsStr>]| {
        let (_plan_dir, path) = plan_file(&plan_repeated(ttft, 2, "1s"));
        let out = dir.path().join(format!("rep-{ttft}"));
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"run", &path, &"--out", &out];
        args.extend(gate);
        let (code, text) = controller(&args);
        (code, text, out)
    };
    let (code, text, base) = run_repeated("10ms", &[]);
    assert_eq!(code, Some(0), "{text}");

    let xml = dir.path().join("run-gate.xml");
    let (code, text, out) = run_repeated(
        "60ms",
        &[
            &"--baseline",
            &base,
            &"--fail-on",
            &"ttft.p50>+50%",
            &"--junit",
            &xml,
        ],
    );
    assert_eq!(code, Some(5), "{text}");
    assert!(
        out.join("summary.json").is_file(),
        "results written before the gate"
    );
    assert!(
        text.contains("regression: ttft.p50>+50% in phase steady"),
        "{text}"
    );
    assert!(
        text.contains("(mean of 2)") && text.contains("beyond (Welch t = "),
        "{text}"
    );
    assert!(!text.contains("noise could not be estimated"), "{text}");
    let junit = std::fs::read_to_string(&xml).unwrap();
    let doc = roxmltree::Document::parse(&junit).unwrap_or_else(|e| panic!("{e}:\n{junit}"));
    assert_eq!(attr(doc.root_element(), "failures"), "1", "{junit}");
}

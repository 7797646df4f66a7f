//! Bad plans are refused before anything starts, with exit code 2 and a
//! message naming the key.

use stampede_tests::{Proc, bin, plan_file};
use std::process::Command;
use std::time::Duration;

const GOOD: &str = r#"
[agents]
local = 1
[target.simulator]
ttft = "5ms"
[[phase]]
kind = "constant"
rate = 10.0
duration = "1s"
"#;

fn controller(args: &[&str], plan: &std::path::Path) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin("controller"));
    cmd.args(args).arg(plan);
    Proc::spawn(cmd).wait_exit(Duration::from_secs(30))
}

#[test]
fn good_plan_validates() {
    let (_dir, path) = plan_file(GOOD);
    let (code, out) = controller(&["validate"], &path);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("is valid"), "{out}");
}

#[test]
fn bad_plans_exit_2_and_name_the_key() {
    let cases = [
        (
            "unknown key",
            GOOD.replace("rate = 10.0", "rate = 10.0\nrat = 3"),
            "rat",
        ),
        (
            "negative rate",
            GOOD.replace("rate = 10.0", "rate = -10.0"),
            "phase[0].rate",
        ),
        (
            "missing target",
            GOOD.replace("[target.simulator]\nttft = \"5ms\"", ""),
            "target",
        ),
        (
            "wrong type",
            GOOD.replace("rate = 10.0", "rate = \"ten\""),
            "rate",
        ),
        (
            "bad duration",
            GOOD.replace("duration = \"1s\"", "duration = \"soon\""),
            "duration",
        ),
    ];
    for (what, text, key) in cases {
        let (_dir, path) = plan_file(&text);
        for verb in ["validate", "run"] {
            let (code, out) = controller(&[verb], &path);
            assert_eq!(code, Some(2), "{what} ({verb}): exit code; output:\n{out}");
            assert!(
                out.contains(key),
                "{what} ({verb}): message does not name {key:?}:\n{out}"
            );
            assert!(
                out.contains("plan.toml"),
                "{what} ({verb}): message does not name the file:\n{out}"
            );
            assert!(!out.contains("panicked"), "{what} ({verb}): panic:\n{out}");
        }
    }
}

#[test]
fn missing_plan_file_is_a_clear_error() {
    let (code, out) = controller(&["run"], std::path::Path::new("/nonexistent/plan.toml"));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("/nonexistent/plan.toml"), "{out}");
}

#[test]
fn every_example_plan_validates() {
    let dir = stampede_tests::workspace_root().join("examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let (code, out) = controller(&["validate"], &path);
            assert_eq!(code, Some(0), "{}: {out}", path.display());
            n += 1;
        }
    }
    assert!(n >= 2, "found {n} example plans");
}

#[test]
fn every_scenario_preset_validates_when_included() {
    let dir = stampede_tests::workspace_root().join("examples/scenarios");
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/scenarios/") {
        let preset = entry.expect("entry").path();
        if preset.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let name = preset.file_stem().unwrap().to_string_lossy().to_string();
        let parts: Vec<&str> = name.splitn(4, '_').collect();
        assert_eq!(
            parts.len(),
            4,
            "{name}: not {{platform}}_{{hardware}}_{{method}}_{{model}}"
        );
        let plan = tmp.path().join(format!("{name}.toml"));
        std::fs::write(
            &plan,
            format!(
                "include = [{:?}]\n[[phase]]\nkind = \"constant\"\nrate = 2.0\nduration = \"30s\"\n",
                preset.display().to_string()
            ),
        )
        .expect("write plan");
        let (code, out) = controller(&["validate"], &plan);
        assert_eq!(code, Some(0), "{name}: {out}");
        assert!(
            out.contains("serving:"),
            "{name}: validate names the stack: {out}"
        );
        n += 1;
    }
    assert!(n >= 5, "found {n} presets");
}

#[test]
fn included_fragment_is_resolved_and_the_run_keeps_the_resolved_plan() {
    let fragment = r#"
[run]
name = "from-preset"
[agents]
local = 1
[target.simulator]
ttft = "5ms"
[[phase]]
kind = "constant"
rate = 50.0
duration = "5m"
"#;
    let plan = r#"
include = "scenarios/preset.toml"
[[phase]]
kind = "constant"
rate = 10.0
duration = "1s"
"#;
    let (dir, path) = plan_file(plan);
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir_all(&scenarios).expect("mkdir");
    std::fs::write(scenarios.join("preset.toml"), fragment).expect("write");

    let (code, out) = controller(&["validate"], &path);
    assert_eq!(code, Some(0), "{out}");

    let run_dir = dir.path().join("run");
    let (code, out) = stampede_tests::run_plan_file(&path, &run_dir, Duration::from_secs(60));
    assert_eq!(code, Some(0), "{out}");

    // The plan's own phase replaced the preset's; the preset's name stayed.
    let summary = stampede_tests::read_json(&run_dir.join("summary.json"));
    let phases = summary["phases"].as_array().expect("phases");
    assert_eq!(phases.len(), 1, "{summary:#}");
    assert_eq!(
        phases[0]["requests"]["sent"].as_u64(),
        Some(10),
        "{summary:#}"
    );
    let stored = std::fs::read_to_string(run_dir.join("plan.toml")).expect("plan copy");
    assert!(!stored.contains("include"), "{stored}");
    assert!(stored.contains("from-preset"), "{stored}");

    // The results no longer depend on the fragment.
    std::fs::remove_dir_all(&scenarios).expect("rm");
    let (code, out) = stampede_tests::report(&run_dir);
    assert_eq!(code, Some(0), "{out}");

    // A missing fragment is a plan error naming it.
    let (code, out) = controller(&["validate"], &path);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("preset.toml") && out.contains("include"),
        "{out}"
    );
}

/// `controller run` on `text` (a plan file in a fresh directory, run from
/// there) with the variables `unset` removed from its environment: the plan is refused with
/// exit code 2, the message names the plan file, and nothing is written —
/// not even the default `results/` directory. Returns the output.
fn refused_before_writing(text: &str, unset: &[&str]) -> String {
    let (dir, path) = plan_file(text);
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("run").arg(&path).current_dir(dir.path());
    for var in unset {
        cmd.env_remove(var);
    }
    let (code, out) = Proc::spawn(cmd).wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(2), "exit code; output:\n{out}");
    assert!(
        out.contains(&path.display().to_string()),
        "message does not name the plan file:\n{out}"
    );
    let written: Vec<_> = std::fs::read_dir(dir.path())
        .expect("plan dir")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| n != "plan.toml")
        .collect();
    assert!(
        written.is_empty(),
        "written before refusing: {written:?}\n{out}"
    );
    out
}

#[test]
fn a_run_name_too_long_for_a_directory_is_refused_before_anything_is_written() {
    let text = format!("[run]\nname = \"{}\"\n{GOOD}", "n".repeat(300));
    let out = refused_before_writing(&text, &[]);
    assert!(
        out.contains("run.name") && out.contains("at most 200 characters"),
        "{out}"
    );
}

#[test]
fn an_unset_api_key_for_local_agents_names_the_plan_file() {
    const VAR: &str = "STAMPEDE_TEST_UNSET_API_KEY";
    let text = GOOD.replace(
        "[target.simulator]",
        &format!("[target]\napi_key_env = \"{VAR}\"\n[target.simulator]"),
    );
    let out = refused_before_writing(&text, &[VAR]);
    assert!(
        out.contains(&format!("`target.api_key_env` = \"{VAR}\"")) && !out.contains("(plan)"),
        "{out}"
    );
}

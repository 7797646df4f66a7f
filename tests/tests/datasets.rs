//! Datasets end to end: a malformed record is named by file and line — the
//! plan is refused (exit 2) when the plan says malformed records are fatal,
//! or the record is skipped, counted and reported when it says "skip" — and
//! the records the simulator receives are the dataset's.

use stampede_tests::{Proc, bin};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn controller(args: &[&str], plan: &Path) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin("controller"));
    cmd.args(args).arg(plan);
    Proc::spawn(cmd).wait_exit(Duration::from_secs(120))
}

/// A directory with `data/<file>` holding `data` and `plan.toml` holding `plan`.
fn setup(file: &str, data: &str, plan: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data").join(file), data).unwrap();
    let path = dir.path().join("plan.toml");
    std::fs::write(&path, plan).unwrap();
    (dir, path)
}

fn plan(dataset: &str) -> String {
    format!(
        r#"
[run]
name = "ds"
seed = 5
[agents]
local = 2
[target.simulator]
ttft = "1ms"
itl = "0s"
output_tokens = 100000
[request]
stream = false
[[workload]]
dataset = {dataset}
[[phase]]
kind = "concurrency"
users = 4
requests = 60
duration = "60s"
"#
    )
}

const TEN_WORDS: &str = "one two three four five six seven eight nine ten";

#[test]
fn each_malformed_record_fails_validate_naming_file_and_line() {
    let good = format!("{{\"prompt\": \"{TEN_WORDS}\", \"max_tokens\": 7}}\n");
    let cases = [
        (
            "bad JSON",
            "{\"prompt\": \"x\", \"max_tokens\": 7\n",
            "not valid JSON",
        ),
        (
            "missing field",
            "{\"max_tokens\": 7}\n",
            "missing field `prompt`",
        ),
        (
            "negative length",
            "{\"prompt\": \"x\", \"max_tokens\": -3}\n",
            "`max_tokens` = -3",
        ),
    ];
    for (what, bad, reason) in cases {
        let data = format!("{good}{good}{bad}{good}");
        let (dir, path) = setup(
            "d.jsonl",
            &data,
            &plan(r#"{ path = "data/d.jsonl", format = "jsonl" }"#),
        );
        let file = dir.path().join("data/d.jsonl");
        for verb in ["validate", "run"] {
            let (code, out) = controller(&[verb], &path);
            assert_eq!(code, Some(2), "{what} ({verb}): {out}");
            let at = format!("{}:3: ", file.display());
            assert!(out.contains(&at), "{what} ({verb}): no {at:?} in:\n{out}");
            assert!(out.contains(reason), "{what} ({verb}): {out}");
            assert!(out.contains("workload[0].dataset.path"), "{what}: {out}");
            assert!(!out.contains("panicked"), "{what}: {out}");
        }
    }
    // A ShareGPT record without its answer, and a missing file.
    let sharegpt = "[\n{\"conversations\": [{\"from\": \"human\", \"value\": \"hi there\"}, {\"from\": \"gpt\", \"value\": \"hello\"}]},\n{\"conversations\": [{\"from\": \"human\", \"value\": \"bye\"}]}\n]\n";
    let (dir, path) = setup("s.json", sharegpt, &plan(r#"{ path = "data/s.json" }"#));
    let (code, out) = controller(&["validate"], &path);
    assert_eq!(code, Some(2), "{out}");
    let at = format!("{}:3: ", dir.path().join("data/s.json").display());
    assert!(out.contains(&at) && out.contains("no answer"), "{out}");
    let (_dir, path) = setup("s.json", sharegpt, &plan(r#"{ path = "data/none.json" }"#));
    let (code, out) = controller(&["validate"], &path);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("none.json"), "{out}");
}

#[test]
fn skipped_records_are_counted_and_sent_records_are_the_datasets() {
    // Every valid record: 10 words, max_tokens 7 (the simulator counts one
    // token per word), so the server-reported totals are exact.
    let good = format!("{{\"prompt\": \"{TEN_WORDS}\", \"max_tokens\": 7}}\n");
    let chat = "{\"messages\": [{\"role\": \"system\", \"content\": \"one two three four\"}, {\"role\": \"user\", \"content\": \"five six seven eight nine ten\"}], \"max_tokens\": 7}\n";
    let data = format!("{good}{chat}{{\"prompt\": \"x\"}}\n{good}[oops\n{chat}");
    let (dir, path) = setup(
        "d.jsonl",
        &data,
        &plan(r#"{ path = "data/d.jsonl", on_error = "skip" }"#),
    );
    let (code, out) = controller(&["validate"], &path);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("4 valid records") && out.contains("2 malformed records skipped"),
        "{out}"
    );
    assert!(
        out.contains("d.jsonl:3: missing field `max_tokens`"),
        "{out}"
    );
    assert!(out.contains("d.jsonl:5: not valid JSON"), "{out}");

    let run = dir.path().join("run");
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("run").arg(&path).arg("--out").arg(&run);
    let (code, out) = Proc::spawn(cmd).wait_exit(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("2 malformed records skipped"), "{out}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let ds = &summary["datasets"][0];
    assert_eq!(ds["skipped_records"], 2, "{ds}");
    assert_eq!(ds["valid_records"], 4, "{ds}");
    let stats = std::fs::read_to_string(run.join("stats.txt")).unwrap();
    assert!(stats.contains("d.jsonl:3: missing field"), "{stats}");
    let phase = &summary["phases"][0];
    let ok = phase["requests"]["ok"].as_u64().unwrap();
    assert_eq!(ok, 60, "{phase}");
    assert_eq!(phase["input_tokens"].as_u64().unwrap(), 10 * ok, "{phase}");
    assert_eq!(phase["output_tokens"].as_u64().unwrap(), 7 * ok, "{phase}");
    // `controller report` rebuilds the same summary from the run directory
    // (away from the dataset file).
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("report").arg(&run);
    let (code, out) = Proc::spawn(cmd).wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("2 malformed records skipped"), "{out}");
}

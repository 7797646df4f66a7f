//! A matrix sweep on the embedded default — 2 "clusters" (simulators of
//! different capacity) × 2 workloads × 3 rates — stopped twice (SIGTERM,
//! then SIGKILL) and resumed: only the cells not complete run again, the
//! completed ones are left untouched, and the summary covers all 12.

use stampede_tests::{Proc, bin, plan_file, read_json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

/// Small: 2 batch slots, ≈24 req/s of chat (16-token answers); big: 32 slots.
const PLAN: &str = r#"
[run]
name = "sweep"
window = "1s"
[agents]
local = 1
[target.simulator]
output_tokens = 16
[target.simulator.engine]
step_base = "5ms"
step_per_seq = "100us"
prefill_per_token = "2us"
[request]
timeout = "20s"
[[phase]]
name = "steady"
kind = "constant"
rate = 1.0
duration = "2s"

[sweep]
rate = [8, 16, 32]

[[sweep.cluster]]
name = "small"
target.simulator.engine.max_num_seqs = 2

[[sweep.cluster]]
name = "big"
target.simulator.engine.max_num_seqs = 32

[[sweep.workload]]
name = "chat"
workload = [{ profile = "chat" }]

[[sweep.workload]]
name = "classify"
workload = [{ profile = "classification" }]
"#;

const CELLS: usize = 12;

/// Cell statuses from `sweep-state.json` (empty while it is not there yet).
fn statuses(dir: &Path) -> BTreeMap<String, String> {
    let Ok(text) = std::fs::read_to_string(dir.join("sweep-state.json")) else {
        return BTreeMap::new();
    };
    // Written atomically: never a torn file.
    let state: serde_json::Value = serde_json::from_str(&text).expect("state file parses");
    state["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|c| {
            (
                c["slug"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn complete(dir: &Path) -> Vec<String> {
    statuses(dir)
        .into_iter()
        .filter(|(_, s)| s == "complete")
        .map(|(c, _)| c)
        .collect()
}

/// Wait until at least `n` cells are complete; returns them.
fn wait_complete(dir: &Path, n: usize, proc: &mut Proc) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let done = complete(dir);
        if done.len() >= n {
            return done;
        }
        if let Some(status) = proc.child.try_wait().unwrap() {
            let (_, out) = proc.wait_exit(Duration::from_secs(5));
            panic!("the sweep exited ({status}) before {n} cells completed:\n{out}");
        }
        assert!(Instant::now() < deadline, "{n} cells not complete in time");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn controller(cwd: &Path, args: &[&str]) -> Proc {
    let mut cmd = Command::new(bin("controller"));
    cmd.current_dir(cwd).args(args);
    Proc::spawn(cmd)
}

/// What must stay untouched in a completed cell: its files' contents and times.
fn fingerprint(cell: &Path) -> Vec<(PathBuf, SystemTime, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(cell)
        .unwrap_or_else(|e| panic!("{}: {e}", cell.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let modified = std::fs::metadata(&p).unwrap().modified().unwrap();
            let bytes = std::fs::read(&p).unwrap();
            (p, modified, bytes)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn starting_lines(output: &str) -> Vec<String> {
    output
        .lines()
        .filter(|l| l.starts_with("cell ") && l.ends_with(": starting"))
        .map(|l| {
            l.split_whitespace()
                .nth(2)
                .unwrap()
                .trim_end_matches(':')
                .to_string()
        })
        .collect()
}

#[test]
fn interrupted_sweep_resumes_only_the_missing_cells() {
    let (tmp, plan) = plan_file(PLAN);
    let cwd = tmp.path();
    let dir = cwd.join("results").join("sweep-test");
    let dir_arg = dir.to_str().unwrap();

    // 1. SIGTERM during the third cell: it ends early, is recorded as
    //    interrupted, and no further cell starts.
    let mut first = controller(cwd, &["run", "plan.toml", "--out", dir_arg]);
    wait_complete(&dir, 2, &mut first);
    let pid = first.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let (code, out) = first.wait_exit(Duration::from_secs(60));
    assert_eq!(
        code,
        Some(4),
        "an interrupted sweep has its own exit code:\n{out}"
    );
    assert!(out.contains("controller run --resume"), "{out}");
    let after_term = statuses(&dir);
    assert_eq!(after_term.len(), CELLS);
    let done_1: Vec<&String> = after_term
        .keys()
        .filter(|c| after_term[*c] == "complete")
        .collect();
    let interrupted: Vec<&String> = after_term
        .keys()
        .filter(|c| after_term[*c] == "interrupted")
        .collect();
    assert!(done_1.len() >= 2, "{after_term:?}");
    assert!(interrupted.len() <= 1, "{after_term:?}");
    assert_eq!(
        after_term.values().filter(|s| *s == "pending").count(),
        CELLS - done_1.len() - interrupted.len(),
        "no cell starts after the signal: {after_term:?}"
    );

    // 2. Resume, then SIGKILL once more cells are complete: whatever ran
    //    at that instant stays `running` in the state.
    let mut second = controller(cwd, &["run", "--resume", dir_arg]);
    let before_kill = wait_complete(&dir, 6, &mut second);
    second.child.kill().expect("SIGKILL the controller");
    second.child.wait().unwrap();
    let (_, out2) = second.wait_exit(Duration::from_secs(5));
    let started_2 = starting_lines(&out2);
    for c in &done_1 {
        assert!(
            out2.contains(&format!("{c}: complete, skipped")),
            "{c} not named as skipped:\n{out2}"
        );
        assert!(!started_2.contains(c), "{c} ran again:\n{out2}");
    }
    for c in &interrupted {
        assert!(started_2.contains(c), "interrupted {c} not rerun:\n{out2}");
    }
    let after_kill = statuses(&dir);
    let done_2: Vec<String> = complete(&dir);
    assert!(done_2.len() >= before_kill.len());
    let prints: BTreeMap<String, _> = done_2
        .iter()
        .map(|c| (c.clone(), fingerprint(&dir.join(c))))
        .collect();
    let state_2 = read_json(&dir.join("sweep-state.json"));

    // 3. Resume to the end: only the cells not complete run.
    let mut third = controller(cwd, &["run", "--resume", dir_arg]);
    let (code, out3) = third.wait_exit(Duration::from_secs(240));
    assert_eq!(code, Some(0), "{out3}");
    let mut started_3 = starting_lines(&out3);
    started_3.sort();
    let missing: Vec<&String> = after_kill
        .keys()
        .filter(|c| after_kill[*c] != "complete")
        .collect();
    assert_eq!(
        started_3.iter().collect::<Vec<_>>(),
        missing,
        "exactly the missing cells run:\n{out3}"
    );
    for c in &done_2 {
        assert!(out3.contains(&format!("{c}: complete, skipped")), "{out3}");
        assert_eq!(fingerprint(&dir.join(c)), prints[c], "{c} was touched");
    }
    if let Some(running) = after_kill.iter().find(|(_, s)| *s == "running") {
        assert!(
            out3.contains(&format!(
                "{}: removing the results of its incomplete attempt",
                running.0
            )),
            "{out3}"
        );
    }
    assert!(
        out3.contains("12 of 12 cell(s) complete, 0 failed"),
        "{out3}"
    );

    // The state lists all 12 complete; earlier records are kept as they were.
    let state = read_json(&dir.join("sweep-state.json"));
    let cells = state["cells"].as_array().unwrap();
    assert_eq!(cells.len(), CELLS);
    for c in cells {
        assert_eq!(c["status"], "complete", "{c}");
        let slug = c["slug"].as_str().unwrap();
        let attempts = c["attempts"].as_u64().unwrap();
        let before = state_2["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["slug"] == slug)
            .unwrap();
        if done_2.iter().any(|d| d == slug) {
            assert_eq!(c, before, "record of {slug} changed");
        }
        let reran = interrupted.iter().any(|i| *i == slug)
            || after_kill.get(slug).is_some_and(|s| s == "running");
        assert_eq!(attempts, if reran { 2 } else { 1 }, "{c}");
    }

    // sweep.csv: a row per cell with plausible metrics.
    let csv = std::fs::read_to_string(dir.join("sweep.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("{name} in {header:?}"))
    };
    let rows: Vec<Vec<String>> = lines.map(split_csv).collect();
    assert_eq!(rows.len(), CELLS, "{csv}");
    let num = |row: &[String], name: &str| -> f64 {
        row[col(name)]
            .parse()
            .unwrap_or_else(|e| panic!("{name} = {:?}: {e}", row[col(name)]))
    };
    let mut ttft_top = BTreeMap::new();
    for row in &rows {
        assert_eq!(row[col("status")], "complete", "{row:?}");
        let rate: f64 = row[col("rate")].parse().unwrap();
        assert!([8.0, 16.0, 32.0].contains(&rate), "{row:?}");
        assert_eq!(num(row, "offered_rate"), rate);
        let achieved = num(row, "achieved_rate");
        assert!(
            (achieved - rate).abs() <= rate * 0.25,
            "achieved {achieved} at {rate}: {row:?}"
        );
        assert!(num(row, "requests") >= rate, "{row:?}");
        assert!(num(row, "request_throughput") > 0.0, "{row:?}");
        assert!(num(row, "output_token_throughput") > 0.0, "{row:?}");
        let (p50, p99) = (num(row, "ttft_p50_ms"), num(row, "ttft_p99_ms"));
        assert!(p50 > 0.0 && p50 <= p99, "{row:?}");
        assert!(num(row, "itl_p50_ms") <= num(row, "itl_p99_ms"), "{row:?}");
        assert!(num(row, "e2e_p99_ms") >= p99, "{row:?}");
        assert!(num(row, "error_rate") < 0.05, "{row:?}");
        if rate == 32.0 && row[col("workload")] == "chat" {
            ttft_top.insert(row[col("cluster")].clone(), p99);
        }
    }
    // At 32 req/s the small engine (≈24 req/s of chat) is past its capacity
    // and queues; the big one (≈240 req/s) is not.
    assert!(
        ttft_top["small"] > 3.0 * ttft_top["big"],
        "TTFT p99 at the top rate: {ttft_top:?}"
    );

    // The comparison chart decodes.
    let png = std::fs::File::open(dir.join("sweep.png")).unwrap();
    let mut reader = png::Decoder::new(std::io::BufReader::new(png))
        .read_info()
        .expect("sweep.png is a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("sweep.png decodes");
    assert_eq!((info.width, info.height), (1600, 1200));

    // `--resume PLAN` finds the newest sweep of that plan; nothing is left to run.
    let (code, out4) =
        controller(cwd, &["run", "--resume", "plan.toml"]).wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{out4}");
    assert!(starting_lines(&out4).is_empty(), "{out4}");
    assert_eq!(out4.matches(": complete, skipped").count(), CELLS, "{out4}");

    // A plan that now expands to other cells is refused, naming them.
    std::fs::write(
        &plan,
        PLAN.replace("rate = [8, 16, 32]", "rate = [8, 16, 64]"),
    )
    .unwrap();
    let (code, out5) =
        controller(cwd, &["run", "--resume", dir_arg]).wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(2), "{out5}");
    assert!(
        out5.contains("the plan changed") && out5.contains("cluster=big,workload=chat,rate=64"),
        "{out5}"
    );
    assert_eq!(
        complete(&dir).len(),
        CELLS,
        "a refused resume changes nothing"
    );
}

/// Split one CSV line (RFC 4180 quoting).
fn split_csv(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            (c, _) => out.last_mut().unwrap().push(c),
        }
    }
    out
}

#[test]
fn validate_lists_the_cells_and_names_bad_values() {
    let (_tmp, plan) = plan_file(PLAN);
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("validate").arg(&plan);
    let (code, out) = Proc::spawn(cmd).wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("valid sweep: 12 cell(s) (2 cluster × 2 workload × 3 rate)"),
        "{out}"
    );
    assert!(
        out.contains("cluster=big,workload=classify,rate=32"),
        "{out}"
    );

    let (_tmp, bad) = plan_file(&PLAN.replace("max_num_seqs = 32", "max_num_seqs = 0"));
    for sub in [&["validate"][..], &["run"]] {
        let mut cmd = Command::new(bin("controller"));
        cmd.args(sub).arg(&bad);
        let (code, out) = Proc::spawn(cmd).wait_exit(Duration::from_secs(60));
        assert_eq!(code, Some(2), "{out}");
        assert!(
            out.contains("6 of 12 sweep cell(s) are invalid")
                && out.contains("cell cluster=big,workload=chat,rate=8")
                && out.contains("target.simulator.engine.max_num_seqs"),
            "{out}"
        );
        assert!(!out.contains("starting"), "nothing runs: {out}");
    }
}

/// One "cluster" whose simulator cannot start (its address is not on this
/// host) and one that works, one rate each.
const FAILING: &str = r#"
[run]
name = "failing"
window = "500ms"
[agents]
local = 1
[target.simulator]
output_tokens = 4
[[phase]]
kind = "constant"
rate = 1.0
duration = "1s"
[sweep]
rate = [5]
[[sweep.cluster]]
name = "broken"
target.simulator.listen = "192.0.2.1:0"
[[sweep.cluster]]
name = "fine"
"#;

fn cell_records(dir: &Path) -> Vec<serde_json::Value> {
    read_json(&dir.join("sweep-state.json"))["cells"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_failed_cell_is_recorded_and_the_sweep_goes_on_unless_told_to_stop() {
    let (tmp, _plan) = plan_file(FAILING);
    let cwd = tmp.path();
    let (code, out) = controller(cwd, &["run", "plan.toml", "--out", "go-on"])
        .wait_exit(Duration::from_secs(120));
    assert_eq!(code, Some(1), "a failed cell fails the sweep:\n{out}");
    assert!(
        out.contains("cell 1/2 cluster=broken,rate=5: failed:"),
        "{out}"
    );
    assert!(
        out.contains("cell 2/2 cluster=fine,rate=5: complete"),
        "{out}"
    );
    let cells = cell_records(&cwd.join("go-on"));
    assert_eq!(cells[0]["status"], "failed");
    let error = cells[0]["error"].as_str().unwrap();
    assert!(error.contains("192.0.2.1"), "{error}");
    assert_eq!(cells[1]["status"], "complete");
    let csv = std::fs::read_to_string(cwd.join("go-on").join("sweep.csv")).unwrap();
    let broken = csv.lines().find(|l| l.contains("broken")).unwrap();
    assert!(
        broken.contains(",failed,1,") && broken.contains("192.0.2.1"),
        "{broken}"
    );

    // --stop-on-failure: the cell after the failed one never starts.
    let (code, out) = controller(
        cwd,
        &["run", "plan.toml", "--out", "stop", "--stop-on-failure"],
    )
    .wait_exit(Duration::from_secs(120));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("stopping the sweep"), "{out}");
    assert_eq!(starting_lines(&out), ["cluster=broken,rate=5"], "{out}");
    let cells = cell_records(&cwd.join("stop"));
    assert_eq!(
        (&cells[0]["status"], &cells[1]["status"]),
        (&"failed".into(), &"pending".into())
    );
    assert!(out.contains("0 of 2 cell(s) complete, 1 failed"), "{out}");
    assert!(out.contains("2 cell(s) not complete"), "{out}");
}

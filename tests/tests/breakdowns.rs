//! Breakdowns: a phase whose mix sends to two models of the simulator, one
//! four times slower to its first token, shows each model's TTFT apart and
//! right in every output, and its totals are the sum of its parts bucket for
//! bucket, window by window, agent by agent.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hdrhistogram::Histogram;
use stampede_common::histogram::{decode, new_histogram};
use stampede_tests::{Proc, bin, check_books, read_json, run_plan};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const PLAN: &str = r#"
[run]
name = "two-models"
window = "1s"
seed = 7
[agents]
local = 2
[target]
model = "fast"
[target.simulator]
ttft = "20ms"
itl = "2ms"
output_tokens = 8
[[target.simulator.models]]
name = "slow"
ttft = "80ms"
itl = "2ms"
output_tokens = 8
[request]
timeout = "5s"
[[workload]]
name = "chat-fast"
weight = 1
model = "fast"
input = { dist = "fixed", value = 32 }
output = { dist = "fixed", value = 8 }
[[workload]]
name = "chat-slow"
weight = 1
model = "slow"
input = { dist = "fixed", value = 32 }
output = { dist = "fixed", value = 8 }
[[phase]]
name = "steady"
kind = "constant"
rate = 40
duration = "3s"
"#;

/// The TTFT p50 the simulator's fixed timeline gives each model (ms), and
/// the slack allowed above it for the client, scheduling and HDR rounding.
const FAST_MS: f64 = 20.0;
const SLOW_MS: f64 = 80.0;
const SLACK_MS: f64 = 15.0;

fn assert_near(what: &str, got: f64, want: f64) {
    assert!(
        got >= want - 0.5 && got <= want + SLACK_MS,
        "{what}: {got} ms, expected {want} ms (+{SLACK_MS})"
    );
}

#[test]
fn two_models_are_measured_apart_in_every_output_and_add_up_exactly() {
    let run = run_plan(PLAN, Duration::from_secs(180));
    assert_eq!(run.code, Some(0), "{}", run.output);
    let summary = check_books(&run.out);
    let phase = &summary["phases"][0];
    summary_json(phase);
    parts_add_up_bucket_for_bucket(&run.out);
    stats_txt(&run.out);
    phases_csv(&run.out);
    llmd_reports(&run.out);
    compare_table(&run.out);
    let page = std::fs::read_to_string(run.out.join("report.html")).expect("report.html");
    for label in ["By model and workload entry", "model=fast", "model=slow"] {
        assert!(page.contains(label), "report.html lacks {label:?}");
    }
}

/// summary.json: one breakdown per entry and per model, counts adding up to
/// the phase's, each model's TTFT its own.
fn summary_json(phase: &serde_json::Value) {
    let list = phase["breakdowns"].as_array().expect("breakdowns");
    let find = |by: &str, name: &str| {
        list.iter()
            .find(|b| b["by"] == by && b["name"] == name)
            .unwrap_or_else(|| panic!("no {by}={name} in {list:#?}"))
    };
    for by in ["workload", "model"] {
        let of_kind: Vec<_> = list.iter().filter(|b| b["by"] == by).collect();
        assert_eq!(of_kind.len(), 2, "{by}: {of_kind:#?}");
        for key in ["sent", "ok", "failed"] {
            let sum: u64 = of_kind
                .iter()
                .map(|b| b["requests"][key].as_u64().unwrap())
                .sum();
            assert_eq!(sum, phase["requests"][key].as_u64().unwrap(), "{by} {key}");
        }
        let ttft: u64 = of_kind
            .iter()
            .map(|b| b["metrics"]["ttft"]["count"].as_u64().unwrap())
            .sum();
        assert_eq!(ttft, phase["metrics"]["ttft"]["count"].as_u64().unwrap());
    }
    let p50 = |b: &serde_json::Value| b["metrics"]["ttft"]["p50"].as_f64().unwrap();
    assert_near("model=fast p50", p50(find("model", "fast")), FAST_MS);
    assert_near("model=slow p50", p50(find("model", "slow")), SLOW_MS);
    assert_near("chat-slow p50", p50(find("workload", "chat-slow")), SLOW_MS);
    let ok = |b: &serde_json::Value| b["requests"]["ok"].as_u64().unwrap();
    assert!(ok(find("model", "fast")) > 20 && ok(find("model", "slow")) > 20);
    assert_eq!(phase["requests"]["failed"], 0, "{phase:#}");
}

/// A histogram of a raw record's base64 map (empty when absent).
fn hist(map: &serde_json::Value, metric: &str) -> Histogram<u64> {
    map[metric].as_str().map_or_else(new_histogram, |b64| {
        decode(&B64.decode(b64).expect("base64")).expect("HDR V2")
    })
}

/// windows.jsonl: in every window of every agent, each metric's total
/// histogram equals the sum of the parts' histograms, bucket for bucket.
fn parts_add_up_bucket_for_bucket(out: &Path) {
    let text = std::fs::read_to_string(out.join("windows.jsonl")).expect("windows.jsonl");
    let mut windows = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        if v["record"] != "window" || v["counters"]["sent"] == 0 {
            continue;
        }
        windows += 1;
        let parts = v["parts"]
            .as_array()
            .expect("a window with requests has parts");
        for metric in ["ttft", "itl", "e2e", "output_tokens", "schedule_lag"] {
            let total = hist(&v["histograms"], metric);
            let mut sum = new_histogram();
            for p in parts {
                sum.add(hist(&p["histograms"], metric)).expect("add");
            }
            let buckets = |h: &Histogram<u64>| {
                h.iter_recorded()
                    .map(|b| (b.value_iterated_to(), b.count_at_value()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(buckets(&sum), buckets(&total), "{metric} in {line}");
        }
        for key in ["sent", "ok", "failed"] {
            let sum: u64 = parts
                .iter()
                .map(|p| p["counters"][key].as_u64().unwrap())
                .sum();
            assert_eq!(sum, v["counters"][key].as_u64().unwrap(), "{key} in {line}");
        }
    }
    assert!(windows >= 4, "{windows} windows with requests");
}

/// stats.txt: a block per model whose TTFT p50 is its own.
fn stats_txt(out: &Path) {
    let text = std::fs::read_to_string(out.join("stats.txt")).expect("stats.txt");
    for (label, want) in [("model=fast", FAST_MS), ("model=slow", SLOW_MS)] {
        let at = text
            .find(&format!("  {label}: sent "))
            .unwrap_or_else(|| panic!("no {label} in\n{text}"));
        let ttft = text[at..]
            .lines()
            .find(|l| l.trim_start().starts_with("ttft "))
            .expect("a ttft line");
        // metric, unit, count, mean, p50, ...
        let p50: f64 = ttft.split_whitespace().nth(4).unwrap().parse().unwrap();
        assert_near(&format!("stats.txt {label}"), p50, want);
    }
}

/// phases.csv: a row per breakdown, named in the last column.
fn phases_csv(out: &Path) {
    let text = std::fs::read_to_string(out.join("phases.csv")).expect("phases.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 1 + 4, "the phase, 2 entries, 2 models:\n{text}");
    for (label, want) in [("model=fast", FAST_MS), ("model=slow", SLOW_MS)] {
        let row = rows
            .iter()
            .find(|r| r.last() == Some(&label))
            .unwrap_or_else(|| panic!("no {label} row in\n{text}"));
        assert_eq!(row.len(), header.len(), "{label}");
        let p50: f64 = row[col("ttft_p50_ms")].parse().unwrap();
        assert_near(&format!("phases.csv {label}"), p50, want);
    }
}

/// llm-d: one report per breakdown beside the phase's, TTFT in seconds.
fn llmd_reports(out: &Path) {
    for (label, want) in [("model_fast", FAST_MS), ("model_slow", SLOW_MS)] {
        let path = out.join(format!("llmd/benchmark_report_00_steady__{label}.json"));
        let report = read_json(&path);
        let ttft = &report["results"]["request_performance"]["aggregate"]["latency"]["time_to_first_token"];
        let p50 = ttft["p50"].as_f64().expect("p50") * 1e3;
        assert_near(&format!("{} p50", path.display()), p50, want);
    }
    assert!(out.join("llmd/benchmark_report_00_steady.json").is_file());
}

/// compare: each breakdown is a table of its own.
fn compare_table(out: &Path) {
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("compare").arg(out).arg(out);
    let (code, text) = Proc::spawn(cmd).wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{text}");
    for label in ["model=fast", "model=slow", "workload=chat-slow"] {
        assert!(
            text.contains(&format!("· {label}")),
            "no {label} table in\n{text}"
        );
    }
}

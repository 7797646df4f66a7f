//! Each built-in workload category, run on the simulator: the server-reported
//! mean prompt and output lengths land within 5% of the profile's means.

use stampede_tests::{Proc, bin, plan_file};
use std::process::Command;
use std::time::Duration;

/// (profile, mean input tokens, mean output tokens) as documented in docs/workloads.md.
const PROFILES: [(&str, f64, f64); 5] = [
    ("chat", 512.0, 256.0),
    ("classification", 1024.0, 4.5),
    ("summarization", 2048.0, 256.0),
    ("code", 512.0, 768.0),
    ("translation", 256.0, 256.0),
];

#[test]
fn each_category_has_its_documented_mean_lengths() {
    for (profile, input_mean, output_mean) in PROFILES {
        let plan = format!(
            r#"
[run]
name = "{profile}"
seed = 11
[agents]
local = 2
[target.simulator]
ttft = "1ms"
itl = "0s"
output_tokens = 100000
[request]
stream = false
[[workload]]
profile = "{profile}"
[[phase]]
kind = "concurrency"
users = 16
requests = 1200
duration = "120s"
"#
        );
        let (dir, path) = plan_file(&plan);
        let out = dir.path().join("run");
        let mut cmd = Command::new(bin("controller"));
        cmd.arg("run").arg(&path).arg("--out").arg(&out);
        let (code, output) = Proc::spawn(cmd).wait_exit(Duration::from_secs(180));
        assert_eq!(code, Some(0), "{profile}: {output}");
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap())
                .unwrap();
        let phase = &summary["phases"][0];
        let ok = phase["requests"]["ok"].as_u64().unwrap() as f64;
        assert_eq!(ok, 1200.0, "{profile}: {phase}");
        // The phase ends when its request bound is spent, not at its 120 s.
        let finished = phase["finished_s"].as_f64().unwrap();
        assert!(
            finished < 60.0,
            "{profile}: ran {finished} s for 1200 requests"
        );
        let got_in = phase["input_tokens"].as_u64().unwrap() as f64 / ok;
        let got_out = phase["output_tokens"].as_u64().unwrap() as f64 / ok;
        eprintln!(
            "{profile}: input {got_in:.1} (profile {input_mean}), output {got_out:.1} (profile {output_mean})"
        );
        assert!(
            (got_in / input_mean - 1.0).abs() < 0.05,
            "{profile}: mean input {got_in} vs {input_mean}"
        );
        assert!(
            (got_out / output_mean - 1.0).abs() < 0.05,
            "{profile}: mean output {got_out} vs {output_mean}"
        );
    }
}

/// The value of a Prometheus counter (summed over label sets) in `text`.
fn counter(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn get_text(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// Run the plan `plan_for(url)` against a fresh simulator engine with prefix
/// caching (16-token blocks); the engine's (hits, queries) in prompt tokens.
fn prefix_cache_counters(plan_for: impl FnOnce(&str) -> String) -> (f64, f64) {
    let (_sim, url) = stampede_tests::start_sim(&[
        "--max-num-seqs",
        "8",
        "--step-base",
        "1ms",
        "--output-tokens",
        "4",
    ]);
    let (dir, path) = plan_file(&plan_for(&url));
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("run")
        .arg(&path)
        .arg("--out")
        .arg(dir.path().join("run"));
    let (code, output) = Proc::spawn(cmd).wait_exit(Duration::from_secs(180));
    assert_eq!(code, Some(0), "{output}");
    let metrics = get_text(&format!("{url}/metrics"));
    (
        counter(&metrics, "vllm:prefix_cache_hits_total"),
        counter(&metrics, "vllm:prefix_cache_queries_total"),
    )
}

#[test]
fn shared_prefixes_give_the_expected_prefix_cache_hit_rate() {
    let (n, groups, prefix, question) = (160u64, 4u64, 256u64, 32u64);
    let (hits, queries) = prefix_cache_counters(|url| {
        format!(
            r#"
[run]
name = "prefix"
seed = 3
[agents]
local = 1
[target]
url = "{url}"
model = "stampede-sim"
[[workload]]
input = {{ dist = "fixed", value = {question} }}
output = {{ dist = "fixed", value = 1 }}
shared_prefix = {{ groups = {groups}, tokens = {prefix} }}
[[phase]]
kind = "baseline"
requests = {n}
duration = "120s"
"#
        )
    });
    // Every request queries its whole prompt; all but the first of each group
    // hit the whole (block-aligned) prefix, and nothing else is shared.
    assert_eq!(queries, (n * (prefix + question)) as f64);
    let expected = ((n - groups) * prefix) as f64 / (n * (prefix + question)) as f64;
    let rate = hits / queries;
    eprintln!("prefix-cache hit rate {rate:.4}, expected {expected:.4}");
    assert!(
        (rate - expected).abs() < 0.02,
        "hit rate {rate} vs expected {expected}"
    );
}

#[test]
fn default_plan_prompts_share_no_prefix() {
    // A plan without [[workload]]: every request's prompt is its own, across
    // agents, closed and open loops and repeats, so a prefix cache finds nothing.
    let prompt = 256u64;
    let (hits, queries) = prefix_cache_counters(|url| {
        format!(
            r#"
[run]
name = "default-prompts"
repeat = 2
[agents]
local = 2
[target]
url = "{url}"
model = "stampede-sim"
[request]
prompt_tokens = {prompt}
max_tokens = 2
[[phase]]
kind = "concurrency"
users = 4
requests = 60
duration = "60s"
[[phase]]
kind = "constant"
rate = 40
duration = "1s"
"#
        )
    });
    // Two repeats of 60 + 40 requests, each querying its whole prompt.
    assert_eq!(queries, (200 * prompt) as f64);
    let rate = hits / queries;
    eprintln!("default plan: prefix-cache hit rate {rate:.4} over {queries} prompt tokens");
    assert!(
        rate < 0.01,
        "hit rate {rate}: requests share prompt prefixes"
    );
}

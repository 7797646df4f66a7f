//! Server-metrics scraping against the simulator: the prefix-cache hit rate
//! a run reports for a phase is exactly Δhits / Δqueries of the simulator's
//! own counters over that phase, the other serving figures are there, and
//! the report rebuilt from the raw log says the same.

use stampede_tests::{get_text, read_json, report, run_plan, start_sim};
use std::time::Duration;

/// Sum of a counter's samples on a metrics page.
fn counter(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum()
}

#[test]
fn reported_prefix_cache_hit_rate_is_the_simulators_own() {
    // The batching engine with prefix caching: requests of a shared-prefix
    // group share its blocks.
    let (_sim, sim_url) = start_sim(&["--max-num-seqs", "32", "--output-tokens", "16"]);
    let metrics = format!("{sim_url}/metrics");
    let before = get_text(&metrics);
    let plan = format!(
        r#"
[run]
name = "scrape"
[agents]
local = 2
[target]
url = "{sim_url}"
model = "stampede-sim"
[[workload]]
input = {{ dist = "fixed", value = 64 }}
output = {{ dist = "fixed", value = 16 }}
shared_prefix = {{ groups = 2, tokens = 192 }}
[server_metrics]
urls = ["{metrics}"]
interval = "500ms"
[[phase]]
name = "steady"
kind = "constant"
rate = 20.0
duration = "3s"
"#
    );
    let run = run_plan(&plan, Duration::from_secs(120));
    assert_eq!(run.code, Some(0), "{}", run.output);
    let out = &run.out;
    let after = get_text(&metrics);

    let delta = |name: &str| counter(&after, name) - counter(&before, name);
    let queries = delta("vllm:prefix_cache_queries_total");
    let hits = delta("vllm:prefix_cache_hits_total");
    assert!(queries > 0.0 && hits > 0.0, "{after}");
    let expected = hits / queries;

    let summary = read_json(&out.join("summary.json"));
    let server = &summary["phases"][0]["server"];
    let reported = server["prefix_cache_hit_rate"].as_f64().expect("hit rate");
    assert!(
        (reported - expected).abs() < 1e-12,
        "reported {reported} vs simulator {expected} ({hits} / {queries})"
    );
    // At least the first, the interval ones and the last scrape.
    assert!(server["scrapes"].as_u64().unwrap() >= 5, "{server}");
    assert_eq!(server["failed_scrapes"], serde_json::json!({}));
    assert_eq!(
        server["requests"].as_f64(),
        Some(delta("vllm:request_success_total"))
    );
    assert_eq!(
        server["requests"].as_f64(),
        summary["phases"][0]["requests"]["ok"].as_f64()
    );
    assert!(server["running_max"].as_f64().unwrap() >= 1.0, "{server}");
    assert!(server["ttft_p50_ms"].as_f64().unwrap() > 0.0, "{server}");
    // Label sets are kept apart per page: the one model's series.
    let series = server["series"][&metrics].as_array().unwrap();
    assert!(
        series
            .iter()
            .all(|s| s["labels"]["model_name"] == "stampede-sim"),
        "{series:?}"
    );
    let text = std::fs::read_to_string(out.join("stats.txt")).unwrap();
    assert!(text.contains("prefix-cache hit rate"), "{text}");

    // Rebuilt from the raw log: the same figures.
    let (code, output) = report(out);
    assert_eq!(code, Some(0), "{output}");
    let rebuilt = read_json(&out.join("summary.json"));
    assert_eq!(rebuilt["phases"][0]["server"], *server);
}

#[test]
fn an_unreachable_metrics_page_is_counted_not_fatal() {
    let (_sim, sim_url) = start_sim(&["--output-tokens", "4"]);
    // A port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let plan = format!(
        r#"
[agents]
local = 1
[target]
url = "{sim_url}"
model = "stampede-sim"
[request]
max_tokens = 4
[server_metrics]
urls = ["http://127.0.0.1:{port}/metrics"]
[[phase]]
kind = "constant"
rate = 5.0
duration = "1s"
"#
    );
    let run = run_plan(&plan, Duration::from_secs(120));
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert!(run.output.contains("cannot scrape"), "{}", run.output);
    let summary = read_json(&run.out.join("summary.json"));
    let server = &summary["phases"][0]["server"];
    assert_eq!(server["scrapes"], 0);
    assert!(
        server["failed_scrapes"][format!("http://127.0.0.1:{port}/metrics")]
            .as_u64()
            .unwrap()
            >= 2,
        "{server}"
    );
}

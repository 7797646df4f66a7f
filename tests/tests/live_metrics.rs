//! Live Prometheus metrics during a run: `controller run --metrics-listen`
//! serves the controller's view (connected agents, the phase running, merged
//! latency histograms and totals, per phase and per breakdown) and its local
//! agents' counters; `agent --metrics-listen` serves a remote agent's. Both
//! pages are valid Prometheus text while load runs, and the controller's
//! figures for a finished phase are the run's results.

use stampede_tests::{Proc, bin, get_text, plan_file, read_json, url_in};
use std::process::Command;
use std::time::{Duration, Instant};

/// The value of the sample on `page` whose line starts with `prefix`.
fn value(page: &str, prefix: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

/// Every non-comment line is `name{labels} value` with a numeric value.
fn assert_prometheus_text(page: &str) {
    for line in page
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, v) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        assert!(v.parse::<f64>().is_ok(), "value of {line:?}");
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line:?}"
        );
    }
}

#[test]
fn a_run_serves_live_metrics_while_load_runs() {
    let plan = r#"
[agents]
local = 2
[target.simulator]
ttft = "5ms"
itl = "1ms"
output_tokens = 4
[request]
max_tokens = 4
[[phase]]
name = "steady"
kind = "constant"
rate = 40.0
duration = "6s"
"#;
    let (dir, path) = plan_file(plan);
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("run")
        .arg(&path)
        .arg("--out")
        .arg(dir.path().join("run"))
        .args(["--metrics-listen", "127.0.0.1:0"]);
    let mut controller = Proc::spawn(cmd);
    let url = url_in(&controller.wait_for_line("metrics on", Duration::from_secs(60)));
    controller.wait_for_line("steady [", Duration::from_secs(60));
    // A page taken while the phase runs, once requests have gone out.
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let page = get_text(&url);
        if value(&page, "stampede_agent_requests_sent_total").unwrap_or(0.0) > 0.0
            || Instant::now() > deadline
        {
            break page;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_prometheus_text(&page);
    assert_eq!(
        value(&page, "stampede_controller_agents_connected"),
        Some(2.0),
        "{page}"
    );
    assert!(
        page.contains("stampede_controller_phase_running{run=\"",)
            && page.contains("\",index=\"0\",phase=\"steady\",kind=\"constant\"} 1"),
        "{page}"
    );
    assert!(
        value(&page, "stampede_agent_requests_sent_total").unwrap() > 0.0,
        "{page}"
    );
    assert!(
        value(&page, "stampede_controller_windows_merged_total").unwrap() >= 1.0,
        "{page}"
    );
    assert!(page.contains("stampede_agent_phase_running{"), "{page}");
    let (code, output) = controller.wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{output}");
}

/// Two models four times apart in TTFT, one mix over both, two phases: the
/// page taken while the second runs shows the first's final figures.
const TWO_MODELS: &str = r#"
[run]
name = "live"
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
[[workload]]
name = "to-fast"
model = "fast"
input = { dist = "fixed", value = 16 }
output = { dist = "fixed", value = 8 }
[[workload]]
name = "to-slow"
model = "slow"
input = { dist = "fixed", value = 16 }
output = { dist = "fixed", value = 8 }
[[phase]]
name = "mixed"
kind = "constant"
rate = 30.0
duration = "3s"
[[phase]]
name = "after"
kind = "constant"
rate = 5.0
duration = "5s"
"#;

#[test]
fn the_controller_page_holds_the_phase_results_as_histograms() {
    let (dir, path) = plan_file(TWO_MODELS);
    let out = dir.path().join("run");
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .args(["--metrics-listen", "127.0.0.1:0"]);
    let mut controller = Proc::spawn(cmd);
    let url = url_in(&controller.wait_for_line("metrics on", Duration::from_secs(60)));
    controller.wait_for_line("after [", Duration::from_secs(60));
    let page = get_text(&url);
    let (code, output) = controller.wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{output}");
    assert_prometheus_text(&page);
    let phase = &read_json(&out.join("summary.json"))["phases"][0];
    let run = read_json(&out.join("summary.json"))["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let l = format!("run=\"{run}\",phase=\"mixed\"");
    let at = |series: &str| {
        value(&page, &format!("{series} "))
            .unwrap_or_else(|| panic!("{series} not on the page:\n{page}"))
    };
    // The finished phase's totals are its results.
    for (metric, key) in [("requests_ok_total", "ok"), ("requests_sent_total", "sent")] {
        let want = phase["requests"][key].as_u64().unwrap() as f64;
        assert_eq!(
            at(&format!("stampede_controller_{metric}{{{l}}}")),
            want,
            "{key}"
        );
    }
    for metric in ["ttft", "itl", "e2e", "tpot", "schedule_lag"] {
        let want = phase["metrics"][metric]["count"].as_u64().unwrap() as f64;
        let series = format!("stampede_controller_{metric}_seconds_count{{{l}}}");
        assert_eq!(at(&series), want, "{metric}");
    }
    // Each model's TTFT lies in its own buckets: fast all by 40 ms, slow
    // none by 60 ms and all by 100 ms.
    let model = |m: &str, le: &str| {
        at(&format!(
            "stampede_controller_breakdown_ttft_seconds_bucket{{{l},by=\"model\",breakdown=\"{m}\",le=\"{le}\"}}"
        ))
    };
    let count = |m: &str| model(m, "+Inf");
    assert!(count("fast") > 0.0 && count("slow") > 0.0, "{page}");
    assert_eq!(model("fast", "0.04"), count("fast"));
    assert_eq!(model("slow", "0.06"), 0.0);
    assert_eq!(model("slow", "0.1"), count("slow"));
    assert_eq!(
        count("fast") + count("slow"),
        at(&format!("stampede_controller_ttft_seconds_count{{{l}}}"))
    );
    // Nothing failed: no failure series at all.
    assert!(
        !page.contains("stampede_controller_requests_failed"),
        "{page}"
    );
    assert!(page.contains("breakdown=\"to-slow\""), "{page}");
}

#[test]
fn a_remote_agent_serves_its_own_metrics() {
    let mut cmd = Command::new(bin("agent"));
    // No controller: the agent retries, and serves its page meanwhile.
    cmd.args([
        "--controller",
        "http://127.0.0.1:9",
        "--give-up-after",
        "20s",
        "--metrics-listen",
        "127.0.0.1:0",
    ]);
    let mut agent = Proc::spawn(cmd);
    let url = url_in(&agent.wait_for_line("metrics on", Duration::from_secs(60)));
    let page = get_text(&url);
    assert_prometheus_text(&page);
    assert_eq!(
        value(&page, "stampede_agent_requests_sent_total"),
        Some(0.0),
        "{page}"
    );
    assert_eq!(
        value(&page, "stampede_agent_in_flight"),
        Some(0.0),
        "{page}"
    );
}

//! Live Prometheus metrics during a run: `controller run --metrics-listen`
//! serves the controller's view (connected agents, the phase running, merged
//! totals) and its local agents' counters; `agent --metrics-listen` serves a
//! remote agent's. Both pages are valid Prometheus text while load runs.

use stampede_tests::{Proc, bin, get_text, plan_file, url_in};
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
        page.contains(
            "stampede_controller_phase_running{index=\"0\",phase=\"steady\",kind=\"constant\"} 1"
        ),
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

//! The monitoring component against a real Prometheus server: Prometheus
//! scrapes a live `controller run` (its `--metrics-listen` page) and the
//! built-in simulator's vLLM families, loads the component's generic rules
//! and the rules `controller monitoring rules` made from the plan, and every
//! PromQL expression of the Grafana dashboard and of the rules must return
//! data while the run goes on. The plan misses one objective on purpose (its
//! alert must fire) and meets the others (theirs must not).
//!
//! The rules `controller monitoring rules` writes are also checked offline:
//! `promtool check rules` on both of its forms, and `promtool test rules` on
//! synthetic series (the missed objective alerts, the met ones do not).
//!
//! Needs Debian's `prometheus` package (`.ci/run` installs it;
//! `STAMPEDE_PROMETHEUS` and `STAMPEDE_PROMTOOL` name other binaries). In CI
//! (`CI` set) a missing binary fails the tests; elsewhere each test prints
//! that it was skipped.

use serde_json::Value;
use stampede_tests::{Proc, bin, get_json, plan_file, url_in, workspace_root};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const COMPONENT: &str = "manifests/components/monitoring";

/// A plan of ~30 s: two local agents, the simulator's batching engine with a
/// prefix cache and a second model, a two-entry mix (breakdowns by workload
/// and by model), 10% injected 503s, one objective missed (TTFT p99 under
/// 1 ms) and two met.
const PLAN: &str = r#"
[run]
name = "prom"
window = "1s"
slo = ["error_rate < 50%"]

[agents]
local = 2

[target]
model = "fast"

[target.simulator]
output_tokens = 16
[target.simulator.engine]
max_num_seqs = 8

[[target.simulator.models]]
name = "slow"
ttft = "40ms"
itl = "2ms"
output_tokens = 16

[[workload]]
name = "chat"
model = "fast"
input = { dist = "fixed", value = 64 }
output = { dist = "fixed", value = 16 }
shared_prefix = { groups = 2, tokens = 64 }

[[workload]]
name = "batch"
model = "slow"
input = { dist = "fixed", value = 32 }
output = { dist = "fixed", value = 8 }

[[phase]]
name = "load"
kind = "constant"
rate = 40.0
duration = "30s"
slo = ["ttft.p99 < 1ms", "e2e.mean < 10s"]

[[phase.faults]]
at = "0s"
action = "simulator"
set = { error_503 = 0.1 }
"#;

/// The objective the plan misses, and those it meets.
const MISSED: &str = "ttft.p99 < 1ms";
const MET: [&str; 2] = ["e2e.mean < 10s", "error_rate < 50%"];

/// The binary `name` (from `env` or PATH), or `None` (saying so) when it is
/// missing outside CI.
fn tool(name: &str, env: &str) -> Option<PathBuf> {
    let named = std::env::var_os(env).map(PathBuf::from);
    let found = named.clone().or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    });
    match found {
        Some(p) => Some(p),
        None if named.is_some() || std::env::var_os("CI").is_some() => {
            panic!("{name} not found (CI runs this test; .ci/run installs Debian's prometheus)")
        }
        None => {
            eprintln!("skipped: {name} not found (apt-get install prometheus, or set {env})");
            None
        }
    }
}

/// `s` percent-encoded for a URL query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A free loopback port (taken, then released for Prometheus to bind).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The rules Prometheus loads: the component's generic ones (the
/// PrometheusRule's spec) and the plan's, from `controller monitoring rules`.
fn write_rules(dir: &Path, plan: &Path) {
    let text =
        std::fs::read_to_string(workspace_root().join(COMPONENT).join("prometheusrule.yaml"))
            .expect("read prometheusrule.yaml");
    let object: serde_yaml::Value = serde_yaml::from_str(&text).expect("prometheusrule.yaml");
    let spec = serde_yaml::to_string(&object["spec"]).expect("spec as YAML");
    std::fs::write(dir.join("generic.yaml"), spec).expect("write generic.yaml");
    let mut cmd = Command::new(bin("controller"));
    cmd.args(["monitoring", "rules"])
        .arg(plan)
        .args(["--plain", "--window", "5s", "-o"])
        .arg(dir.join("objectives.yaml"));
    let (code, out) = Proc::spawn(cmd).wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "controller monitoring rules:\n{out}");
}

/// Start Prometheus on loopback scraping `load` (the controller) and
/// `serving` (the simulator) every second; returns it and its base URL.
fn start_prometheus(binary: &Path, dir: &Path, load: &str, serving: &str) -> (Proc, String) {
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {rules}/*.yaml\n\
         scrape_configs:\n\
         \x20 - job_name: stampede-load\n    static_configs:\n      - targets: [\"{load}\"]\n\
         \x20 - job_name: stampede-serving\n    static_configs:\n      - targets: [\"{serving}\"]\n",
        rules = dir.join("rules").display(),
    );
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, config).expect("write prometheus.yml");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(binary);
    cmd.arg(format!("--config.file={}", path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={listen}"))
        .arg("--log.level=warn");
    let mut proc = Proc::spawn(cmd);
    let url = format!("http://{listen}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(
            Instant::now() < deadline,
            "prometheus did not listen on {listen}: {}",
            proc.wait_exit(Duration::from_secs(1)).1
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (proc, url)
}

/// Series of an instant query with a finite value, by their labels.
fn finite_series(prom: &str, expr: &str) -> Vec<Value> {
    let answer = get_json(&format!("{prom}/api/v1/query?query={}", encode(expr)));
    assert_eq!(answer["status"], "success", "{expr}: {answer}");
    answer["data"]["result"]
        .as_array()
        .unwrap_or_else(|| panic!("{expr}: {answer}"))
        .iter()
        .filter(|s| {
            s["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(f64::is_finite)
        })
        .map(|s| s["metric"].clone())
        .collect()
}

/// Every panel query of the dashboard, named by panel title and refId.
fn dashboard_queries() -> (Value, Vec<(String, String)>) {
    let path = workspace_root()
        .join(COMPONENT)
        .join("stampede-dashboard.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            let name = format!(
                "panel {:?} {}",
                panel["title"].as_str().unwrap_or("?"),
                t["refId"].as_str().unwrap_or("?")
            );
            out.push((name, t["expr"].as_str().unwrap().to_string()));
        }
    }
    assert!(out.len() >= 15, "{out:?}");
    (dash, out)
}

/// The dashboard's `label_values(SELECTOR, LABEL)` variables, resolved the
/// way Grafana does (the series API): each must offer at least one value.
/// Returns the values substituted: the run's id for `$run`, all for the rest.
fn resolve_variables(prom: &str, dash: &Value) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for v in dash["templating"]["list"].as_array().unwrap() {
        if v["type"] != "query" {
            continue;
        }
        let name = v["name"].as_str().unwrap().to_string();
        let def = substitute(v["definition"].as_str().unwrap(), &vars);
        let inner = def
            .strip_prefix("label_values(")
            .and_then(|d| d.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {name}: {def}"));
        let (selector, label) = inner.rsplit_once(',').unwrap();
        let series = get_json(&format!(
            "{prom}/api/v1/series?match[]={}",
            encode(selector.trim())
        ));
        let values: Vec<&str> = series["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s[label.trim()].as_str())
            .collect();
        assert!(
            !values.is_empty(),
            "variable {name} ({def}) offers no value: {series}"
        );
        let value = if name == "run" {
            values[0].to_string()
        } else {
            ".*".to_string()
        };
        vars.insert(name, value);
    }
    vars
}

/// `expr` with the dashboard's variables and Grafana's rate interval filled in.
fn substitute(expr: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = expr.replace("$__rate_interval", "5s");
    for (k, v) in vars {
        out = out.replace(&format!("${k}"), v);
    }
    out
}

/// Every rule Prometheus loaded, from its rules API; each evaluated cleanly.
fn loaded_rules(prom: &str) -> Vec<Value> {
    let answer = get_json(&format!("{prom}/api/v1/rules"));
    let rules: Vec<Value> = answer["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .collect();
    rules
}

/// The series an alert compares: its expression up to the comparison.
fn compared_series(expr: &str) -> &str {
    match expr.rfind('}') {
        Some(end) => &expr[..=end],
        None => expr.split_whitespace().next().unwrap(),
    }
}

/// Every query that has not yet returned a finite series.
fn missing(prom: &str, queries: &[(String, String)]) -> Vec<(String, String)> {
    queries
        .iter()
        .filter(|(_, q)| finite_series(prom, q).is_empty())
        .cloned()
        .collect()
}

/// Alerts by state, as (objective or alert name, state).
fn objective_alerts(prom: &str) -> Vec<(String, String)> {
    let answer = get_json(&format!("{prom}/api/v1/alerts"));
    answer["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let l = &a["labels"];
            let what = l["objective"].as_str().or(l["alertname"].as_str());
            (
                what.unwrap().to_string(),
                a["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn every_dashboard_and_rule_expression_returns_data_during_a_run() {
    let Some(binary) = tool("prometheus", "STAMPEDE_PROMETHEUS") else {
        return;
    };
    let (dir, plan) = plan_file(PLAN);
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    write_rules(&dir.path().join("rules"), &plan);

    let mut cmd = Command::new(bin("controller"));
    cmd.arg("run")
        .arg(&plan)
        .arg("--out")
        .arg(dir.path().join("run"))
        .args(["--metrics-listen", "127.0.0.1:0"]);
    let mut controller = Proc::spawn(cmd);
    // The metrics page, the simulator and then the gRPC listener come up, in that order.
    controller.wait_for_line("controller listening on", Duration::from_secs(60));
    let line = |needle: &str| {
        let found = controller.seen.iter().find(|l| l.contains(needle));
        url_in(found.unwrap_or_else(|| panic!("no {needle:?} line: {:#?}", controller.seen)))
    };
    let (sim, metrics) = (line("simulator listening on"), line("metrics on"));
    let host = |url: &str| {
        url.trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_string()
    };
    let (_prometheus, prom) = start_prometheus(&binary, dir.path(), &host(&metrics), &host(&sim));
    controller.wait_for_line("load [", Duration::from_secs(60));
    let phase_end = Instant::now() + Duration::from_secs(28);

    // Wait until the run shows in Prometheus, then resolve the variables.
    let (dash, panels) = dashboard_queries();
    let both_scraped =
        "count(up == 1) == 2 and on() count(stampede_controller_requests_sent_total)";
    while finite_series(&prom, both_scraped).is_empty() {
        assert!(
            Instant::now() < phase_end,
            "Prometheus did not scrape both the controller and the simulator"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let vars = resolve_variables(&prom, &dash);
    assert!(vars["run"].starts_with("prom-"), "{vars:?}");
    let mut queries: Vec<(String, String)> = panels
        .iter()
        .map(|(n, q)| (n.clone(), substitute(q, &vars)))
        .collect();
    let rules = loaded_rules(&prom);
    let recorded: Vec<&str> = rules
        .iter()
        .filter(|r| r["type"] == "recording")
        .filter_map(|r| r["name"].as_str())
        .collect();
    for r in &rules {
        let expr = r["query"].as_str().unwrap().to_string();
        let name = r["name"].as_str().unwrap();
        if r["type"] == "alerting" {
            let series = compared_series(&expr);
            let metric = series.split('{').next().unwrap();
            assert!(
                recorded.contains(&metric),
                "alert {name} compares {metric}, no recording rule"
            );
            queries.push((format!("alert {name} ({series})"), series.to_string()));
        } else {
            queries.push((format!("recording rule {name}"), expr));
        }
    }
    assert!(
        rules.len() >= 8 + 6,
        "generic and objective rules: {rules:#?}"
    );

    // Poll until every query has returned data and the missed objective alerts.
    let mut left = queries.clone();
    // Every alert seen at any poll.
    let mut alerts: Vec<(String, String)> = Vec::new();
    let fired = |a: &[(String, String)]| {
        a.iter()
            .any(|(w, s)| w == MISSED && (s == "firing" || s == "pending"))
    };
    while !(left.is_empty() && fired(&alerts)) && Instant::now() < phase_end {
        std::thread::sleep(Duration::from_secs(1));
        left = missing(&prom, &left);
        alerts.extend(objective_alerts(&prom));
    }
    assert!(left.is_empty(), "no data during the run for:\n{left:#?}");
    eprintln!(
        "{} dashboard queries and {} rule expressions returned data, {MISSED} alerted, \
         {:.1} s before the phase's end",
        panels.len(),
        queries.len() - panels.len(),
        phase_end
            .saturating_duration_since(Instant::now())
            .as_secs_f64()
    );
    assert!(fired(&alerts), "{MISSED} did not alert: {alerts:?}");
    for met in MET {
        assert!(
            !alerts.iter().any(|(w, _)| w == met),
            "{met} alerted: {alerts:?}"
        );
    }
    for r in loaded_rules(&prom) {
        assert_eq!(
            r["health"], "ok",
            "rule {} failed to evaluate: {r}",
            r["name"]
        );
    }
    let (code, output) = controller.wait_exit(Duration::from_secs(60));
    assert_eq!(
        code,
        Some(3),
        "the missed objective makes the run exit 3:\n{output}"
    );
}

/// Run `controller monitoring rules PLAN ARGS`; returns what it printed.
fn monitoring_rules(plan: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(bin("controller"));
    cmd.args(["monitoring", "rules"]).arg(plan).args(args);
    let (code, out) = Proc::spawn(cmd).wait_exit(Duration::from_secs(30));
    assert_eq!(
        code,
        Some(0),
        "controller monitoring rules {args:?}:\n{out}"
    );
    out
}

fn promtool_ok(promtool: &Path, args: &[&str], file: &Path) {
    let out = Command::new(promtool)
        .args(args)
        .arg(file)
        .output()
        .expect("run promtool");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "promtool {args:?} {}:\n{text}",
        file.display()
    );
}

/// Synthetic series of one run of PLAN's phase `load` over 30 s: TTFT all
/// between 1 and 50 ms (p99 ≈ 49.5 ms: misses `ttft.p99 < 1ms`), E2E mean
/// 100 ms (meets `e2e.mean < 10s`), 1 failure in 10 (meets `error_rate < 50%`).
const PROMTOOL_TEST: &str = r#"
rule_files: [objectives.yaml]
evaluation_interval: 1s
tests:
  - interval: 1s
    input_series:
      - series: 'stampede_controller_ttft_seconds_bucket{run="prom-20261207T000000Z",phase="load",le="0.001"}'
        values: '0+0x30'
      - series: 'stampede_controller_ttft_seconds_bucket{run="prom-20261207T000000Z",phase="load",le="0.05"}'
        values: '0+10x30'
      - series: 'stampede_controller_ttft_seconds_bucket{run="prom-20261207T000000Z",phase="load",le="+Inf"}'
        values: '0+10x30'
      - series: 'stampede_controller_e2e_seconds_sum{run="prom-20261207T000000Z",phase="load"}'
        values: '0+1x30'
      - series: 'stampede_controller_e2e_seconds_count{run="prom-20261207T000000Z",phase="load"}'
        values: '0+10x30'
      - series: 'stampede_controller_requests_ok_total{run="prom-20261207T000000Z",phase="load"}'
        values: '0+9x30'
      - series: 'stampede_controller_requests_failed_total{run="prom-20261207T000000Z",phase="load",class="http_5xx:503"}'
        values: '0+1x30'
      # Another plan's run: its series must not reach this plan's rules.
      - series: 'stampede_controller_ttft_seconds_bucket{run="other-20261207T000000Z",phase="load",le="+Inf"}'
        values: '0+10x30'
    promql_expr_test:
      - expr: ALERTS
        eval_time: 20s
        exp_samples:
          - labels: 'ALERTS{alertname="StampedeObjectiveMissed",alertstate="firing",objective="ttft.p99 < 1ms",phase="load",plan="prom",run="prom-20261207T000000Z",severity="warning"}'
            value: 1
      - expr: stampede:objective_observed{objective="error_rate < 50%"}
        eval_time: 20s
        exp_samples:
          - labels: 'stampede:objective_observed{objective="error_rate < 50%",phase="load",plan="prom",run="prom-20261207T000000Z"}'
            value: 0.1
      - expr: stampede:objective_observed{objective="e2e.mean < 10s"}
        eval_time: 20s
        exp_samples:
          - labels: 'stampede:objective_observed{objective="e2e.mean < 10s",phase="load",plan="prom",run="prom-20261207T000000Z"}'
            value: 0.1
"#;

#[test]
fn generated_rules_pass_promtool_and_alert_on_synthetic_series() {
    let Some(promtool) = tool("promtool", "STAMPEDE_PROMTOOL") else {
        return;
    };
    let (dir, plan) = plan_file(PLAN);
    let rules = dir.path().join("objectives.yaml");
    monitoring_rules(
        &plan,
        &["--plain", "--window", "5s", "-o", rules.to_str().unwrap()],
    );
    promtool_ok(&promtool, &["check", "rules"], &rules);

    // The PrometheusRule form holds the same groups.
    let object: serde_yaml::Value =
        serde_yaml::from_str(&monitoring_rules(&plan, &["--window", "5s", "--for", "1m"])).unwrap();
    assert_eq!(object["kind"], "PrometheusRule");
    let spec = dir.path().join("spec.yaml");
    std::fs::write(&spec, serde_yaml::to_string(&object["spec"]).unwrap()).unwrap();
    promtool_ok(&promtool, &["check", "rules"], &spec);

    let test = dir.path().join("objectives_test.yaml");
    std::fs::write(&test, PROMTOOL_TEST).unwrap();
    promtool_ok(&promtool, &["test", "rules"], &test);

    // The shipped plans too (the base's and the simulator component's).
    for shipped in [
        "manifests/base/plan.toml",
        "manifests/components/simulator/plan.toml",
    ] {
        let out = dir.path().join("shipped.yaml");
        let path = workspace_root().join(shipped);
        monitoring_rules(&path, &["--plain", "-o", out.to_str().unwrap()]);
        promtool_ok(&promtool, &["check", "rules"], &out);
    }
}

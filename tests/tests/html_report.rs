//! The HTML pages in a real browser: headless Chromium opens `report.html`,
//! `sweep.html` and a `compare --html` page from disk with every host name
//! unresolvable, and the page's own script reports what it drew. Each page
//! must draw every chart it carries, with the series its data holds, log no
//! console message, raise no error and load no resource (everything is
//! inline). The run's page shows the objectives and the stress knee first.
//!
//! Needs Debian's `chromium` (`.ci/run` installs it; `STAMPEDE_CHROMIUM`
//! names another binary). In CI (`CI` set) a missing browser fails the
//! tests; elsewhere each test prints that it was skipped. Screenshots of the
//! three pages go to `STAMPEDE_SCREENSHOTS` when set (else the test's
//! temporary directory), to be looked at.

use stampede_tests::{Finished, bin, plan_file, read_json, run_plan, run_plan_file};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// Baseline, a short stress search, and a soak with a fault episode.
const PLAN: &str = r#"
[run]
name = "html"
window = "500ms"
slo = ["ttft.p99 < 150ms", "error_rate < 1%"]
[agents]
local = 1
[target.simulator]
output_tokens = 16
[target.simulator.engine]
max_num_seqs = 8
step_base = "5ms"
step_per_seq = "100us"
prefill_per_token = "0s"
[request]
max_tokens = 16
timeout = "5s"
[[phase]]
name = "baseline <img src=x onerror=alert(1)>"
kind = "baseline"
duration = "2s"
[[phase]]
name = "stress"
kind = "stress"
from = 20.0
to = 640.0
step_duration = "2s"
factor = 4.0
slo = ["ttft.p99 < 40ms"]
[[phase]]
name = "soak"
kind = "soak"
rate = 20.0
duration = "6s"
[[phase.faults]]
at = "2s"
action = "simulator"
set = { error_500 = 0.5 }
[[phase.faults]]
at = "4s"
action = "simulator"
set = {}
"#;

/// Two cells of one phase each: the sweep's page, and a comparison of its cells.
const SWEEP: &str = r#"
[run]
name = "html-sweep"
window = "500ms"
[agents]
local = 1
[target.simulator]
output_tokens = 8
[request]
max_tokens = 8
timeout = "5s"
[[phase]]
name = "steady"
kind = "constant"
rate = 1.0
duration = "1500ms"
[sweep]
rate = [5, 20]
"#;

/// The browser, or `None` (saying so) when it is missing outside CI.
fn chromium() -> Option<PathBuf> {
    let named = std::env::var_os("STAMPEDE_CHROMIUM").map(PathBuf::from);
    let found = named.clone().or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("chromium"))
                .find(|p| p.is_file())
        })
    });
    match found {
        Some(p) => Some(p),
        None if named.is_some() || std::env::var_os("CI").is_some() => {
            panic!("chromium not found (CI runs the browser tests; .ci/run installs it)")
        }
        None => {
            eprintln!(
                "skipped: chromium not found (apt-get install chromium, or set STAMPEDE_CHROMIUM)"
            );
            None
        }
    }
}

/// Where screenshots go.
fn shots(tmp: &Path) -> PathBuf {
    let dir =
        std::env::var_os("STAMPEDE_SCREENSHOTS").map_or_else(|| tmp.join("shots"), PathBuf::from);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Chromium headless on `page` (a file), with no host name resolvable and
/// a profile of its own; returns (stdout, stderr).
fn browse(chromium: &Path, page: &Path, args: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(&url)
        .output()
        .expect("run chromium");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "chromium failed on {url}:\n{stderr}");
    (stdout, stderr)
}

/// The text of element `id` in a dumped DOM, unescaped.
fn element_text(dom: &str, open: &str) -> String {
    let start = dom
        .find(open)
        .unwrap_or_else(|| panic!("{open} not in the DOM:\n{dom}"))
        + open.len();
    let end = start + dom[start..].find("</").unwrap();
    dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// The chart data a page carries, as written (not as drawn).
fn chart_data(html: &str) -> Vec<serde_json::Value> {
    let text = element_text(html, "<script type=\"application/json\" id=\"chart-data\">");
    let v: serde_json::Value = serde_json::from_str(&text).expect("chart data parses");
    v["charts"].as_array().expect("charts").clone()
}

/// Open `page` in the browser, check it drew every chart of its data with
/// its series, with no error, console message or resource load; take a
/// first-view and a whole-page screenshot named `name`. Returns the chart
/// data and the dumped DOM.
fn check_page(
    chromium: &Path,
    page: &Path,
    name: &str,
    shots: &Path,
) -> (Vec<serde_json::Value>, String) {
    let html = std::fs::read_to_string(page).unwrap();
    for needle in [
        "<img",
        "<link",
        "<iframe",
        "<script src",
        "http-equiv",
        "@import",
        "url(",
    ] {
        assert!(
            !html.contains(needle),
            "{name}: the page refers to something outside: {needle}"
        );
    }
    let (dom, log) = browse(chromium, page, &["--dump-dom"]);
    let result: serde_json::Value = serde_json::from_str(&element_text(
        &dom,
        "<pre id=\"render-result\" hidden=\"\">",
    ))
    .unwrap_or_else(|e| panic!("{name}: no render result ({e}):\n{log}"));
    assert_eq!(
        result["errors"],
        serde_json::json!([]),
        "{name}: script errors"
    );
    assert_eq!(
        result["resources"],
        serde_json::json!([]),
        "{name}: resources loaded"
    );
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(
        console.is_empty(),
        "{name}: console messages:\n{}",
        console.join("\n")
    );
    let charts = chart_data(&html);
    assert!(!charts.is_empty(), "{name}: no charts");
    for c in &charts {
        let id = c["id"].as_str().unwrap();
        let drawn = &result["charts"][id];
        assert_eq!(drawn["canvas"], true, "{name}: {id} not drawn: {result}");
        assert_eq!(
            drawn["series"].as_u64().unwrap() as usize,
            c["series"].as_array().unwrap().len(),
            "{name}: {id} series"
        );
    }
    assert_eq!(
        result["charts"].as_object().unwrap().len(),
        charts.len(),
        "{name}: {result}"
    );
    for (suffix, size) in [("first-view", "1280,900"), ("whole", "1280,7000")] {
        let shot = shots.join(format!("{name}-{suffix}.png"));
        browse(
            chromium,
            page,
            &[
                &format!("--screenshot={}", shot.display()),
                &format!("--window-size={size}"),
            ],
        );
        let bytes = std::fs::read(&shot).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{name}: screenshot");
        eprintln!("screenshot: {}", shot.display());
    }
    (charts, dom)
}

fn series_of<'a>(charts: &'a [serde_json::Value], id: &str) -> Vec<&'a str> {
    let c = charts
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no chart {id}"));
    c["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect()
}

/// One finished run of [`PLAN`], shared by the tests here.
fn run_dir() -> &'static Path {
    static RUN: OnceLock<Finished> = OnceLock::new();
    let run = RUN.get_or_init(|| run_plan(PLAN, Duration::from_secs(180)));
    // The stress search's last step misses its objectives: exit 3 is fine.
    assert!(
        matches!(run.code, Some(0 | 3)),
        "{:?}\n{}",
        run.code,
        run.output
    );
    &run.out
}

#[test]
fn the_run_page_draws_every_chart_and_calls_out_the_knee_and_objectives() {
    let Some(chromium) = chromium() else { return };
    let run = run_dir();
    let shots = shots(run.parent().unwrap());
    let (charts, dom) = check_page(&chromium, &run.join("report.html"), "run", &shots);
    let summary = read_json(&run.join("summary.json"));
    let phases = summary["phases"].as_array().unwrap();
    // A CDF line per phase with successful requests, named as in the tables.
    let with_ttft = phases
        .iter()
        .filter(|p| p["metrics"]["ttft"]["count"].as_u64() > Some(0))
        .count();
    assert_eq!(series_of(&charts, "chart-cdf-ttft").len(), with_ttft);
    assert!(
        series_of(&charts, "chart-cdf-ttft").contains(&"baseline <img src=x onerror=alert(1)>")
    );
    assert!(!dom.contains("<img"), "the phase name became markup");
    assert_eq!(series_of(&charts, "chart-latency-load").len(), 6);
    assert_eq!(
        series_of(&charts, "chart-requests-time"),
        ["offered/s", "sent/s", "ok/s", "failed/s"]
    );
    // The fault episode is shaded and its actions marked on the time series.
    let time = charts
        .iter()
        .find(|c| c["id"] == "chart-requests-time")
        .unwrap();
    assert!(
        time["bands"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["kind"] == "fault"),
        "{time}"
    );
    assert_eq!(time["marks"].as_array().unwrap().len(), 2, "{time}");
    // The knee is marked on the stress chart and called out first.
    let knee = summary["stress"][0]["knee_rate"].as_f64();
    let stress = charts.iter().find(|c| c["id"] == "chart-stress-0").unwrap();
    assert_eq!(stress["marks"][0]["at"].as_f64(), knee, "{stress}");
    let findings = dom.find("id=\"findings\"").expect("findings");
    let first_chart = dom.find("<figure").unwrap();
    assert!(findings < first_chart);
    let first = &dom[findings..first_chart];
    assert!(first.contains("Stress knee"), "{first}");
    assert!(first.contains("Objectives m"), "{first}");
    assert!(first.contains("Soak drift"), "{first}");
    // Without JavaScript the key table is there, and the plan's text stays text.
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("<td>baseline &lt;img src=x onerror=alert(1)&gt;</td>"));
    assert!(html.contains("<a href=\"windows.jsonl\">windows.jsonl</a>"));
}

#[test]
fn the_sweep_and_comparison_pages_draw_their_charts() {
    let Some(chromium) = chromium() else { return };
    let (dir, path) = plan_file(SWEEP);
    let out = dir.path().join("sweep");
    let (code, text) = run_plan_file(&path, &out, Duration::from_secs(180));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("sweep.html"), "{text}");
    let shots = shots(dir.path());
    let (charts, dom) = check_page(&chromium, &out.join("sweep.html"), "sweep", &shots);
    assert_eq!(series_of(&charts, "chart-sweep-0").len(), 1);
    assert!(
        dom.contains("href=\"rate=5/report.html\"") || dom.contains("/report.html\""),
        "{dom}"
    );
    let cells: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("report.html").is_file())
        .collect();
    assert_eq!(cells.len(), 2, "{cells:?}");
    let page = dir.path().join("compare.html");
    let o = Command::new(bin("controller"))
        .arg("compare")
        .args(&cells)
        .arg("--html")
        .arg(&page)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let (charts, dom) = check_page(&chromium, &page, "compare", &shots);
    assert_eq!(series_of(&charts, "chart-compare-0").len(), 2);
    assert!(dom.contains("within noise") || dom.contains("better") || dom.contains("worse"));
    assert!(dom.contains("sweep/"), "links to the runs' pages: {dom}");
}

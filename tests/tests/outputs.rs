//! The files a run leaves behind, checked against each other: HDR logs
//! read back with HdrHistogram's own reader give summary.json's percentiles,
//! every llm-d report parses into the typed v0.2 model (and passes the
//! published schema when it is at hand), the charts are real.

use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use stampede_controller::outputs::llmd::model as llmd_model;
use stampede_tests::{Proc, bin, plan_file};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const PLAN: &str = r#"
[run]
name = "outputs"
window = "500ms"
[agents]
local = 2
[target.simulator]
ttft = "15ms"
itl = "2ms"
output_tokens = 12
[request]
max_tokens = 12
timeout = "5s"
[[phase]]
name = "one user"
kind = "baseline"
duration = "1500ms"
[[phase]]
name = "steady-20"
kind = "constant"
rate = 20.0
duration = "2s"
[[phase]]
name = "steady-60"
kind = "constant"
rate = 60.0
duration = "2s"
"#;

/// One finished run shared by the tests of this file.
fn run_dir() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let (dir, path) = plan_file(PLAN);
        let out = dir.path().join("run");
        let mut cmd = Command::new(bin("controller"));
        cmd.arg("run").arg(&path).arg("--out").arg(&out);
        let (code, text) = Proc::spawn(cmd).wait_exit(Duration::from_secs(120));
        assert_eq!(code, Some(0), "{text}");
        (dir, out)
    })
    .1
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn hdr_logs_read_back_to_the_summary_percentiles() {
    let dir = run_dir();
    let summary = json(&dir.join("summary.json"));
    for metric in ["ttft", "itl", "e2e"] {
        let path = dir.join(format!("{metric}.hlog"));
        let bytes = std::fs::read(&path).unwrap();
        let mut by_tag: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
        let mut intervals = 0;
        let mut deserializer = Deserializer::new();
        for entry in IntervalLogIterator::new(&bytes) {
            let entry = entry.unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
            if let LogEntry::Interval(h) = entry {
                intervals += 1;
                let b64 = h.encoded_histogram();
                assert!(b64.starts_with("HISTF"), "not deflate-compressed V2: {b64}");
                let raw = base64_decode(b64);
                let hist: Histogram<u64> = deserializer
                    .deserialize(&mut std::io::Cursor::new(raw))
                    .unwrap();
                let tag = h.tag().expect("tagged interval").as_str().to_string();
                by_tag
                    .entry(tag)
                    .or_insert_with(|| Histogram::new(3).unwrap())
                    .add(&hist)
                    .unwrap();
            }
        }
        let raw_windows = std::fs::read_to_string(dir.join("windows.jsonl"))
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["record"] == "window")
            .map(|v| (v["phase"].as_u64(), v["window"].as_u64()))
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        assert_eq!(
            intervals, raw_windows,
            "{metric}: every window is an interval"
        );
        for phase in summary["phases"].as_array().unwrap() {
            let name = phase["name"].as_str().unwrap().replace(' ', "_");
            let h = &by_tag[&name];
            let s = &phase["metrics"][metric];
            assert_eq!(h.len(), s["count"].as_u64().unwrap(), "{metric} {name}");
            for (q, key) in [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p999")] {
                let from_log = stampede_common::quantile::quantile_or_zero(h, q) / 1e3;
                let from_summary = s[key].as_f64().unwrap();
                assert!(
                    (from_log - from_summary).abs() < 1e-9,
                    "{metric} {name} {key}: log {from_log} vs summary {from_summary}"
                );
            }
        }
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// The parts of a report every reader needs, checked without the schema.
fn assert_report_structure(path: &Path, r: &serde_json::Value) {
    let at = |pointer: &str| {
        r.pointer(pointer)
            .unwrap_or_else(|| panic!("{}: no {pointer}", path.display()))
    };
    assert_eq!(at("/version"), "0.2");
    for key in ["/run/uid", "/run/eid", "/run/time/start", "/run/time/end"] {
        assert!(at(key).is_string(), "{}: {key}", path.display());
    }
    let load = "/scenario/load/standardized";
    assert_eq!(at(&format!("{load}/tool")), "stampede");
    let source = at(&format!("{load}/source"));
    assert!(["random", "sampled", "unknown"].contains(&source.as_str().unwrap()));
    let input = at(&format!("{load}/input_seq_len"));
    assert!(["fixed", "other"].contains(&input["distribution"].as_str().unwrap()));
    assert!(input["value"].as_f64().is_some_and(|v| v >= 0.0));
    let requests = "/results/request_performance/aggregate/requests";
    assert!(at(&format!("{requests}/total")).is_u64());
    for metric in ["time_to_first_token", "request_latency"] {
        let stats = at(&format!(
            "/results/request_performance/aggregate/latency/{metric}"
        ));
        assert_eq!(stats["units"], "s", "{}: {metric}", path.display());
        for q in ["mean", "p50", "p99", "max"] {
            assert!(stats[q].is_f64(), "{}: {metric}.{q}", path.display());
        }
    }
}

#[test]
fn every_llmd_report_passes_the_model_and_the_published_schema() {
    let dir = run_dir();
    let validator = stampede_tests::llmd_schema()
        .map(|s| jsonschema::validator_for(&s).expect("schema compiles"));
    let summary = json(&dir.join("summary.json"));
    let mut reports: Vec<PathBuf> = std::fs::read_dir(dir.join("llmd"))
        .expect("llmd/ directory")
        .map(|e| e.unwrap().path())
        .collect();
    reports.sort();
    assert_eq!(reports.len(), summary["phases"].as_array().unwrap().len());
    for path in &reports {
        let report = json(path);
        assert_report_structure(path, &report);
        // Always: the typed model reads the report, and loses nothing of it.
        let text = std::fs::read_to_string(path).unwrap();
        let parsed = llmd_model::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            serde_json::to_value(&parsed).unwrap(),
            report,
            "{}",
            path.display()
        );
        if let Some(validator) = &validator {
            let errors: Vec<String> = validator
                .iter_errors(&report)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
        }
    }
    // Both are a real bar: a report without its run id fails them.
    let mut broken = json(&reports[0]);
    broken["run"].as_object_mut().unwrap().remove("uid");
    match llmd_model::parse(&broken.to_string()) {
        Err(llmd_model::ReportError::Shape { path, message }) => {
            assert_eq!(path, "run");
            assert!(message.contains("missing field `uid`"), "{message}");
        }
        other => panic!("a report without run.uid: {other:?}"),
    }
    if let Some(validator) = &validator {
        assert!(!validator.is_valid(&broken));
    }

    // Same numbers as summary.json, in seconds.
    let first = json(&reports[1]);
    let phase = &summary["phases"][1];
    let ttft =
        &first["results"]["request_performance"]["aggregate"]["latency"]["time_to_first_token"];
    assert_eq!(ttft["units"], "s");
    let p99_ms = phase["metrics"]["ttft"]["p99"].as_f64().unwrap();
    assert!((ttft["p99"].as_f64().unwrap() * 1e3 - p99_ms).abs() < 1e-9);
    assert_eq!(
        first["results"]["request_performance"]["aggregate"]["requests"]["total"],
        phase["requests"]["sent"]
    );
}

#[test]
fn charts_are_real_images() {
    let dir = run_dir();
    for name in ["latency_analysis.png", "throughput_analysis.png"] {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(bytes.len() > 50_000, "{name}: only {} bytes", bytes.len());
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert!(info.width >= 1000 && info.height >= 700, "{name}: {info:?}");
        let channels = info.color_type.samples();
        let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
        let non_white = pixels
            .iter()
            .filter(|p| p[..3].iter().any(|&c| c < 240))
            .count();
        let share = non_white as f64 / pixels.len() as f64;
        assert!(share > 0.02, "{name}: {share:.4} of pixels drawn — blank?");
        let colors: std::collections::BTreeSet<[u8; 3]> =
            pixels.iter().map(|p| [p[0], p[1], p[2]]).collect();
        assert!(colors.len() > 20, "{name}: only {} colours", colors.len());
    }
}

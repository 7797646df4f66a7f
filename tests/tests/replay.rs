//! Trace replay on the embedded default (local agents + built-in simulator):
//! every record is sent once, at its trace time divided by the time scale
//! (intended send times within 1 ms, read from the agents' per-request
//! `stampede::send` trace log), with its own prompt and output lengths; a bad
//! trace is refused naming its file and line.

use stampede_tests::{Proc, bin};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

const RECORDS: usize = 150;
const TIME_SCALE: f64 = 2.0;

/// A synthetic Azure-format trace: (CSV text, unscaled offsets in ns, input, output).
fn trace() -> (String, Vec<u64>, Vec<u64>, Vec<u64>) {
    let mut csv = String::from("TIMESTAMP,ContextTokens,GeneratedTokens\n");
    let (mut offsets, mut inputs, mut outputs) = (Vec::new(), Vec::new(), Vec::new());
    // Start at 2023-11-16 18:15:46.6805900; uneven gaps (some zero) of up to
    // ~55 ms with 100 ns digits, about 4 s in all.
    let mut t: u64 = 46 * 1_000_000_000 + 680_590_000;
    let start = t;
    for k in 0..RECORDS as u64 {
        t += (k * 7_919 % 13) * 4_234_567_100 / 1000;
        let (secs, frac) = (t / 1_000_000_000, t % 1_000_000_000);
        let (min, sec) = (15 + secs / 60, secs % 60);
        let (input, output) = (10 + k, 2 + k % 5);
        csv.push_str(&format!(
            "2023-11-16 18:{min:02}:{sec:02}.{:07},{input},{output}\n",
            frac / 100
        ));
        offsets.push(t - start);
        inputs.push(input);
        outputs.push(output);
    }
    (csv, offsets, inputs, outputs)
}

fn plan(trace: &str) -> String {
    format!(
        r#"
[run]
name = "replay"
[agents]
local = 2
[target.simulator]
ttft = "1ms"
itl = "0s"
output_tokens = 100000
[[phase]]
kind = "replay"
trace = {trace}
duration = "4s"
"#
    )
}

/// A field of a JSON log line's `fields`.
fn field(line: &serde_json::Value, key: &str) -> u64 {
    line["fields"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

#[test]
fn replayed_arrivals_are_at_the_traces_scaled_times_with_its_lengths() {
    let (csv, offsets, inputs, outputs) = trace();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("azure.csv"), &csv).unwrap();
    let path = dir.path().join("plan.toml");
    std::fs::write(
        &path,
        plan(r#"{ path = "azure.csv", format = "csv", time_scale = 2.0 }"#),
    )
    .unwrap();
    let out = dir.path().join("run");
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .args(["--log-format", "json"])
        .env("RUST_LOG", "warn,stampede::send=trace");
    let (code, output) = Proc::spawn(cmd).wait_exit(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{output}");

    let mut sends: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for line in output.lines().filter(|l| l.contains("request sent")) {
        let line: serde_json::Value = serde_json::from_str(line).unwrap();
        let line = &line;
        let (k, intended, sent) = (
            field(line, "k"),
            field(line, "intended_us"),
            field(line, "sent_us"),
        );
        assert!(
            sends.insert(k, (intended, sent)).is_none(),
            "arrival {k} sent twice"
        );
    }
    assert_eq!(
        sends.keys().copied().collect::<Vec<_>>(),
        (0..RECORDS as u64).collect::<Vec<_>>(),
        "every record sent exactly once"
    );
    let mut worst_intended = 0i64;
    let mut lags: Vec<i64> = Vec::new();
    for (k, (intended, sent)) in &sends {
        let expected = (offsets[*k as usize] as f64 / TIME_SCALE / 1e3).round() as i64;
        worst_intended = worst_intended.max((*intended as i64 - expected).abs());
        lags.push(*sent as i64 - expected);
    }
    lags.sort_unstable();
    let p50 = lags[lags.len() / 2];
    let p99 = lags[lags.len() * 99 / 100];
    let max = *lags.last().unwrap();
    eprintln!(
        "intended vs trace: worst {worst_intended} µs; actual send vs trace: p50 {p50} µs, p99 {p99} µs, max {max} µs"
    );
    assert!(
        worst_intended <= 1_000,
        "an intended send time is {worst_intended} µs off the trace"
    );

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let phase = &summary["phases"][0];
    assert_eq!(phase["kind"], "replay", "{phase}");
    assert_eq!(phase["requests"]["ok"], RECORDS as u64, "{phase}");
    assert_eq!(
        phase["input_tokens"].as_u64().unwrap(),
        inputs.iter().sum::<u64>(),
        "{phase}"
    );
    assert_eq!(
        phase["output_tokens"].as_u64().unwrap(),
        outputs.iter().sum::<u64>(),
        "{phase}"
    );
    assert_eq!(summary["traces"][0]["records"], RECORDS as u64);
}

#[test]
fn bad_traces_fail_validate_naming_file_and_line() {
    let (csv, ..) = trace();
    let mut lines: Vec<String> = csv.lines().map(str::to_string).collect();
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "unsorted timestamps",
            {
                let mut l = lines.clone();
                l.swap(3, 9);
                l
            },
            "sorted by time",
        ),
        (
            "negative length",
            {
                let mut l = lines.clone();
                l[4] = l[4].replace(",13,", ",-13,");
                l
            },
            "ContextTokens = \"-13\"",
        ),
        (
            "missing field",
            {
                let mut l = lines.clone();
                l[4] = l[4].rsplit_once(',').unwrap().0.to_string();
                l
            },
            "2 fields",
        ),
    ];
    for (what, text, reason) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("azure.csv"), text.join("\n")).unwrap();
        let path = dir.path().join("plan.toml");
        std::fs::write(&path, plan(r#"{ path = "azure.csv" }"#)).unwrap();
        let mut cmd = Command::new(bin("controller"));
        cmd.arg("validate").arg(&path);
        let (code, out) = Proc::spawn(cmd).wait_exit(Duration::from_secs(30));
        assert_eq!(code, Some(2), "{what}: {out}");
        // Line 1 is the header; the damage is on line 5 (for the swap of
        // lines 4 and 10: line 4 now holds a later time than line 5).
        let at = format!("{}:5: ", dir.path().join("azure.csv").display());
        assert!(out.contains(&at), "{what}: no {at:?} in {out}");
        assert!(out.contains(reason), "{what}: {out}");
        assert!(out.contains("phase[0].trace.path"), "{what}: {out}");
    }
    // A JSONL trace with bad JSON.
    lines.truncate(1);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.jsonl"),
        "{\"timestamp\": 0, \"input_tokens\": 5, \"output_tokens\": 5}\n{\"timestamp\": 1,\n",
    )
    .unwrap();
    let path = dir.path().join("plan.toml");
    std::fs::write(&path, plan(r#"{ path = "t.jsonl" }"#)).unwrap();
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("validate").arg(&path);
    let (code, out) = Proc::spawn(cmd).wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("t.jsonl:2: not valid JSON"), "{out}");
}

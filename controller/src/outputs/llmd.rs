//! llm-d Benchmark Report (v0.2), one per phase, so llm-d tooling can read
//! stampede's results next to its own harnesses'.
//!
//! llm-d-benchmark writes this report per load pod with fixed percentiles
//! that later get averaged; ours is one report per phase, built from the
//! histograms merged exactly across agents. Only the parts stampede measures
//! are filled in: `run`, `scenario.load`, `results.request_performance`.
//! Latencies are in seconds (`s`, `s/token`), as in llm-d's own reports.

use crate::results::{PhaseData, RunData};
use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};
use stampede_common::metric::{Metric, Unit};
use stampede_common::quantile::quantile_or_zero;
use stampede_plan::{Phase, PhaseKind, Plan};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Report schema version written.
pub const VERSION: &str = "0.2";

/// Directory (inside the run directory) holding the reports.
pub const DIR: &str = "llmd";

/// Percentile fields of the schema's `Statistics`, with their quantiles.
const PERCENTILES: [(&str, f64); 11] = [
    ("p0p1", 0.001),
    ("p1", 0.01),
    ("p5", 0.05),
    ("p10", 0.10),
    ("p25", 0.25),
    ("p50", 0.50),
    ("p75", 0.75),
    ("p90", 0.90),
    ("p95", 0.95),
    ("p99", 0.99),
    ("p99p9", 0.999),
];

/// `Statistics` of a histogram: values divided by `divisor`, in `units`.
/// `None` when the histogram is empty.
pub fn statistics(h: &Histogram<u64>, units: &str, divisor: f64) -> Option<Value> {
    if h.is_empty() {
        return None;
    }
    let mut m = Map::new();
    m.insert("units".into(), json!(units));
    m.insert("mean".into(), json!(h.mean() / divisor));
    m.insert("stddev".into(), json!(h.stdev() / divisor));
    m.insert("min".into(), json!(h.min() as f64 / divisor));
    for (key, q) in PERCENTILES {
        m.insert(key.into(), json!(quantile_or_zero(h, q) / divisor));
    }
    m.insert("max".into(), json!(h.max() as f64 / divisor));
    Some(Value::Object(m))
}

/// A measured length distribution as the schema's `SequenceLength`: `fixed`
/// when every request had the same length, otherwise `other` with the mean,
/// standard deviation and range; `None` when nothing was measured.
fn sequence_length(h: &Histogram<u64>) -> Option<Value> {
    if h.is_empty() {
        return None;
    }
    Some(if h.min() == h.max() {
        json!({ "distribution": "fixed", "value": h.min() })
    } else {
        json!({
            "distribution": "other",
            "value": h.mean(),
            "std_dev": h.stdev(),
            "min": h.min(),
            "max": h.max(),
        })
    })
}

/// Where a phase's prompts came from: the schema's `source` ("random": words
/// drawn by stampede, "sampled": dataset records, "unknown": a mix of both)
/// and stampede's own name for it.
fn prompt_source(plan: &Plan, phase: &Phase) -> (&'static str, &'static str) {
    if matches!(phase.kind, PhaseKind::Replay { .. }) {
        // A trace gives lengths; the prompts are synthetic.
        return ("random", "replay");
    }
    let mix = plan.mix_for(phase);
    match mix.iter().filter(|e| e.dataset.is_some()).count() {
        0 => ("random", "synthetic"),
        n if n == mix.len() => ("sampled", "dataset"),
        _ => ("unknown", "mix"),
    }
}

fn rfc3339(nanos: i64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

/// Seconds → ISO-8601 duration (`PT12.345S`).
fn iso_duration(seconds: f64) -> String {
    format!("PT{seconds:.3}S")
}

/// The report of phase `index` of `data`.
pub fn phase_report(data: &RunData, index: usize) -> Value {
    let plan: &Plan = &data.plan;
    let run = &data.summary;
    let s = &run.phases[index];
    let p: &PhaseData = &data.phases[index];
    let total = &p.acc.total;
    let hist = |m: Metric| total.hist(m);
    let latency = |m: Metric| -> Value {
        let (units, divisor) = match (m, m.unit()) {
            (Metric::Itl | Metric::Tpot | Metric::Ntpot, _) => ("s/token", 1e6),
            (_, Unit::Micros) => ("s", 1e6),
            (_, Unit::Tokens) => ("count", 1.0),
        };
        statistics(hist(m), units, divisor).unwrap_or(Value::Null)
    };
    let end_nanos = p
        .start_unix_nanos
        .saturating_add((s.finished_s * 1e9) as i64);
    let (source, origin) = prompt_source(plan, &p.phase);
    // Measured lengths; without any (no request succeeded, or the server
    // reported no usage) the schema still needs a value: `other`, 0.
    let unmeasured = json!({ "distribution": "other", "value": 0 });
    let input_seq_len = sequence_length(hist(Metric::InputTokens)).unwrap_or(unmeasured);
    let output_seq_len = sequence_length(hist(Metric::OutputTokens));
    let total_token_rate = if s.finished_s > 0.0 {
        (s.input_tokens + s.output_tokens) as f64 / s.finished_s
    } else {
        0.0
    };
    let input_token_rate = if s.finished_s > 0.0 {
        s.input_tokens as f64 / s.finished_s
    } else {
        0.0
    };
    json!({
        "version": VERSION,
        "run": {
            "uid": format!("{}/{}", run.run_id, index),
            "eid": run.run_id,
            "time": {
                "start": rfc3339(p.start_unix_nanos),
                "end": rfc3339(end_nanos),
                "duration": iso_duration(s.finished_s),
            },
            "description": format!(
                "stampede phase {:?} ({}) of run {}{}",
                s.name, s.kind, run.run_id,
                if s.complete { "" } else { " — incomplete: the controller stopped mid-phase" }
            ),
            "keywords": ["stampede", s.kind, format!("repeat-{}", s.repeat + 1)],
        },
        "scenario": {
            "load": {
                "metadata": {
                    "schema_version": "0.0.1",
                    "description": format!("stampede {} phase, {} agent(s)", s.kind, s.agents.len()),
                },
                "standardized": {
                    "tool": "stampede",
                    "tool_version": run.stampede_version,
                    "parallelism": s.agents.len().max(1),
                    "source": source,
                    "stage": index,
                    "input_seq_len": input_seq_len,
                    "output_seq_len": output_seq_len,
                    "rate_qps": s.offered_rate,
                    "concurrency": s.users,
                },
                "native": {
                    "config": {
                        "target": run.target,
                        "phase": {
                            "name": s.name,
                            "kind": s.kind,
                            "offered_rate": s.offered_rate,
                            "users": s.users,
                            "planned_duration_s": s.planned_duration_s,
                        },
                        "window_s": p.window.as_secs_f64(),
                        "prompts": origin,
                        "workload": plan.mix_for(&p.phase).iter().map(|e| json!({
                            "name": e.name,
                            "weight": e.weight,
                            "prompts": if e.dataset.is_some() { "dataset" } else { "synthetic" },
                        })).collect::<Vec<_>>(),
                    },
                },
            },
        },
        "results": {
            "request_performance": {
                "aggregate": {
                    "requests": {
                        "total": s.requests.sent,
                        "failures": s.requests.failed,
                        "incomplete": s.requests.lost,
                        "input_length": latency(Metric::InputTokens),
                        "output_length": latency(Metric::OutputTokens),
                    },
                    "latency": {
                        "time_to_first_token": latency(Metric::Ttft),
                        "inter_token_latency": latency(Metric::Itl),
                        "time_per_output_token": latency(Metric::Tpot),
                        "normalized_time_per_output_token": latency(Metric::Ntpot),
                        "request_latency": latency(Metric::E2e),
                    },
                    "throughput": {
                        "request_rate": { "units": "queries/s", "mean": s.request_throughput },
                        "output_token_rate": { "units": "tokens/s", "mean": s.output_token_throughput },
                        "input_token_rate": { "units": "tokens/s", "mean": input_token_rate },
                        "total_token_rate": { "units": "tokens/s", "mean": total_token_rate },
                    },
                },
            },
        },
    })
}

/// File name of phase `index`'s report.
pub fn file_name(index: usize, phase: &str) -> String {
    let safe: String = phase
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("benchmark_report_{index:02}_{safe}.json")
}

/// Write one report per phase into `dir/llmd/`; on failure, the file and why.
pub fn write(dir: &Path, data: &RunData) -> Result<(), (PathBuf, String)> {
    let out = dir.join(DIR);
    std::fs::create_dir_all(&out).map_err(|e| (out.clone(), e.to_string()))?;
    for (i, s) in data.summary.phases.iter().enumerate() {
        let path = out.join(file_name(i, &s.name));
        let text = serde_json::to_string_pretty(&phase_report(data, i))
            .map_err(|e| (path.clone(), e.to_string()))?;
        std::fs::write(&path, text + "\n").map_err(|e| (path.clone(), e.to_string()))?;
    }
    Ok(())
}

//! llm-d Benchmark Reports carry what was measured, for every plan shape:
//! the input and output length distributions the server reported, the true
//! source of the prompts, and NTPOT.

use stampede_tests::{read_json, run_plan, workspace_root};
use std::time::Duration;

const SIM: &str = r#"
[agents]
local = 2
[target.simulator]
ttft = "2ms"
itl = "0s"
output_tokens = 100000
"#;

const PHASE: &str = r#"
[[phase]]
kind = "concurrency"
users = 4
requests = 40
duration = "60s"
"#;

/// Run `[run]` + simulator + `middle` + one phase; (summary phase, llm-d report).
fn run(name: &str, middle: &str) -> (serde_json::Value, serde_json::Value) {
    run_phase(name, middle, PHASE)
}

/// [`run`] with the phase given.
fn run_phase(name: &str, middle: &str, phase: &str) -> (serde_json::Value, serde_json::Value) {
    let plan = format!("[run]\nname = \"{name}\"\nseed = 4\n{SIM}{middle}{phase}");
    let run = run_plan(&plan, Duration::from_secs(120));
    assert_eq!(run.code, Some(0), "{name}: {}", run.output);
    let summary = read_json(&run.out.join("summary.json"));
    let dir = run.out.join("llmd");
    let report = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .next()
        .expect("one report");
    let report_json = read_json(&report);
    stampede_controller::outputs::llmd::model::parse(&report_json.to_string())
        .unwrap_or_else(|e| panic!("{name}: {}: {e}", report.display()));
    if let Some(schema) = stampede_tests::llmd_schema() {
        let validator = jsonschema::validator_for(&schema).expect("schema compiles");
        let errors: Vec<String> = validator
            .iter_errors(&report_json)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
    (summary["phases"][0].clone(), report_json)
}

fn load(report: &serde_json::Value) -> &serde_json::Value {
    &report["scenario"]["load"]["standardized"]
}

fn aggregate(report: &serde_json::Value) -> &serde_json::Value {
    &report["results"]["request_performance"]["aggregate"]
}

/// The measured mean input length of a phase (server-reported prompt tokens per ok request).
fn mean_input(phase: &serde_json::Value) -> f64 {
    phase["input_tokens"].as_f64().unwrap() / phase["requests"]["ok"].as_f64().unwrap()
}

#[test]
fn a_synthetic_mix_reports_its_measured_lengths() {
    let (phase, report) = run(
        "mix",
        r#"
[[workload]]
input = { dist = "uniform", min = 100, max = 300 }
output = { dist = "fixed", value = 20 }
"#,
    );
    let l = load(&report);
    assert_eq!(l["source"], "random", "{l:#}");
    assert_eq!(
        report["scenario"]["load"]["native"]["config"]["prompts"],
        "synthetic"
    );
    let input = &l["input_seq_len"];
    assert_eq!(input["distribution"], "other", "{input:#}");
    let mean = input["value"].as_f64().unwrap();
    assert!(
        (mean - mean_input(&phase)).abs() < 1e-6,
        "{input:#} vs {phase:#}"
    );
    assert!(input["min"].as_u64().unwrap() >= 100 && input["max"].as_u64().unwrap() <= 300);
    assert!(input["std_dev"].as_f64().unwrap() > 10.0, "{input:#}");
    assert_eq!(
        l["output_seq_len"],
        serde_json::json!({ "distribution": "fixed", "value": 20 })
    );
    let a = aggregate(&report);
    let lengths = &a["requests"]["input_length"];
    assert_eq!(lengths["units"], "count");
    assert!((lengths["mean"].as_f64().unwrap() - mean).abs() < 1e-6);
    // NTPOT = E2E / output tokens, per request.
    let ntpot = &a["latency"]["normalized_time_per_output_token"];
    assert_eq!(ntpot["units"], "s/token", "{a:#}");
    let e2e_ms = phase["metrics"]["e2e"]["mean"].as_f64().unwrap();
    let ntpot_ms = ntpot["mean"].as_f64().unwrap() * 1e3;
    assert!(
        (ntpot_ms - e2e_ms / 20.0).abs() < 0.05 * e2e_ms / 20.0 + 0.01,
        "NTPOT {ntpot_ms} ms vs E2E {e2e_ms} ms / 20 tokens"
    );
}

#[test]
fn the_default_plan_reports_its_fixed_lengths() {
    let (phase, report) = run("default", "[request]\nprompt_tokens = 64\nmax_tokens = 8\n");
    let l = load(&report);
    assert_eq!(l["source"], "random");
    let input = &l["input_seq_len"];
    // The simulator counts one token per word: every prompt is 64 tokens.
    assert_eq!(mean_input(&phase), 64.0, "{phase:#}");
    assert_eq!(
        *input,
        serde_json::json!({ "distribution": "fixed", "value": 64 })
    );
}

#[test]
fn dataset_and_mixed_sources_are_named() {
    let data = workspace_root().join("examples/data/prompts.jsonl");
    let dataset = format!(
        "[[workload]]\nname = \"prompts\"\ndataset = {{ path = {:?}, format = \"jsonl\", on_error = \"skip\" }}\noutput = {{ dist = \"fixed\", value = 8 }}\n",
        data.display().to_string()
    );
    let (_, report) = run("dataset", &dataset);
    assert_eq!(load(&report)["source"], "sampled");
    assert_eq!(
        report["scenario"]["load"]["native"]["config"]["prompts"],
        "dataset"
    );
    let mixed = format!("{dataset}[[workload]]\nprofile = \"chat\"\n");
    let (_, report) = run("mixed", &mixed);
    assert_eq!(load(&report)["source"], "unknown");
    assert_eq!(
        report["scenario"]["load"]["native"]["config"]["prompts"],
        "mix"
    );
}

#[test]
fn a_replay_reports_measured_lengths_of_synthetic_prompts() {
    let trace = workspace_root().join("examples/data/azure-sample.csv");
    let phase = format!(
        "[[phase]]\nkind = \"replay\"\ntrace = {{ path = {:?}, format = \"csv\", time_scale = 20.0 }}\nduration = \"3s\"\n",
        trace.display().to_string()
    );
    let (phase, report) = run_phase("replay", "", &phase);
    let l = load(&report);
    assert_eq!(l["source"], "random", "{l:#}");
    assert_eq!(
        report["scenario"]["load"]["native"]["config"]["prompts"],
        "replay"
    );
    // The trace's lengths vary: what was measured, not a plan default.
    let input = &l["input_seq_len"];
    assert_eq!(input["distribution"], "other", "{input:#}");
    // Long prompts sit in histogram buckets of 3 significant digits.
    let (mean, counted) = (input["value"].as_f64().unwrap(), mean_input(&phase));
    assert!(
        (mean / counted - 1.0).abs() < 1e-3,
        "report mean {mean}, counted {counted}"
    );
}

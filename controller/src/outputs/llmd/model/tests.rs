use super::*;
use serde_json::{Value, json};

/// A report with every section the format has, values invented.
fn full() -> Value {
    let stats =
        json!({ "units": "s", "mean": 0.2, "stddev": 0.01, "min": 0.1, "p50": 0.2, "max": 1 });
    let series = json!({ "units": "percent", "series": [
        { "ts": "2026-01-01T00:00:00Z", "value": 42 },
        { "ts": "2026-01-01T00:00:01Z", "mean": 40.5, "stddev": 2.0, "p99": 49 },
    ]});
    json!({
        "version": "0.2",
        "run": { "uid": "r/0", "eid": "r", "time": { "start": "2026-01-01T00:00:00Z", "duration": "PT1.000S" },
                 "keywords": ["a"] },
        "scenario": {
            "stack": [
                { "metadata": { "label": "engine-0", "cfg_id": "c0" },
                  "standardized": { "kind": "inference_engine", "tool": "vllm", "tool_version": "1",
                      "role": "decode", "replicas": 2, "model": { "name": "m" },
                      "accelerator": { "model": "gpu", "count": 8, "parallelism": { "tp": 8 } } },
                  "native": { "args": { "--max-model-len": 1024, "--flag": null }, "envars": { "A": "1" } } },
                { "metadata": { "label": "router", "cfg_id": "c1", "description": "d" },
                  "standardized": { "kind": "generic", "tool": "epp", "tool_version": "2", "extra": [1, 2] },
                  "native": { "config": { "anything": true } } },
            ],
            "load": {
                "metadata": { "schema_version": "0.0.1" },
                "standardized": { "tool": "t", "tool_version": "1", "source": "sampled",
                    "input_seq_len": { "distribution": "gaussian", "value": 100.5, "std_dev": 3, "min": 1, "max": 200 },
                    "prefix": { "prefix_len": { "distribution": "fixed", "value": 10 },
                                "num_groups": 2, "num_users_per_group": 3, "num_prefixes": 4 },
                    "multi_turn": { "max_turns": { "distribution": "uniform", "value": 3, "min": 1, "max": 5 } },
                    "rate_qps": 2.5, "concurrency": 8 },
                "native": { "config": [1, "two"] },
            },
        },
        "results": {
            "request_performance": {
                "aggregate": {
                    "requests": { "total": 10, "failures": 1, "input_length": stats },
                    "latency": { "time_to_first_token": stats },
                    "throughput": { "request_rate": { "units": "queries/s", "mean": 3.0 } },
                },
                "time_series": {
                    "latency": { "request_latency": series },
                    "throughput": { "output_token_rate": series },
                },
            },
            "observability": {
                "components": [{ "component_label": "engine-0", "aggregate": { "kv_cache_usage": stats },
                                 "time_series": { "gpu_utilization": series } }],
                "drop_rate": stats,
                "engine_kv_cache_usage": { "anything": [1] },
                "pod_startup_times": { "pods": [{ "name": "p", "startup_seconds": 12.5 }], "aggregate": stats },
                "replica_status": { "controllers": [{ "kind": "Deployment", "name": "d",
                    "desired_replicas": 2, "available_replicas": 2, "ready_replicas": 1 }],
                    "time_series": [{ "timestamp": "2026-01-01T00:00:00Z", "controllers": [] }] },
            },
            "profiling": { "whatever": 1 },
            "component_health": [{ "component_label": "engine-0", "total_restarts": 0,
                "replica_health": [{ "replica_id": "0", "healthy": true }] }],
        },
    })
}

fn parse_value(v: &Value) -> Result<Report, ReportError> {
    parse(&serde_json::to_string_pretty(v).unwrap())
}

/// `full()` with the value at JSON pointer `at` replaced (`None`: removed).
fn changed(at: &str, to: Option<Value>) -> Value {
    let mut v = full();
    let (parent, key) = at.rsplit_once('/').unwrap();
    let object = v.pointer_mut(parent).unwrap().as_object_mut().unwrap();
    match to {
        Some(x) => object.insert(key.into(), x),
        None => object.remove(key),
    };
    v
}

/// The shape error of `v`: (path, message).
fn shape_error(v: &Value) -> (String, String) {
    match parse_value(v) {
        Err(ReportError::Shape { path, message }) => (path, message),
        other => panic!("expected a shape error, got {other:?}"),
    }
}

/// The bounds error of `v`.
fn violation(v: &Value) -> Violation {
    match parse_value(v) {
        Err(ReportError::Bounds(v)) => v,
        other => panic!("expected a bounds error, got {other:?}"),
    }
}

#[test]
fn every_section_of_the_format_parses() {
    let report = parse_value(&full()).unwrap();
    let stack = report.scenario.as_ref().unwrap().stack.as_ref().unwrap();
    let ComponentStandardized::Generic(generic) = &stack[1].standardized else {
        panic!("{:?}", stack[1]);
    };
    // The objects the format leaves open keep their other keys.
    assert_eq!(generic.attributes["extra"], json!([1, 2]));
    let observability = report.results.observability.as_ref().unwrap();
    assert_eq!(
        observability.other["engine_kv_cache_usage"],
        json!({ "anything": [1] })
    );
    let ComponentStandardized::InferenceEngine(engine) = &stack[0].standardized else {
        panic!("{:?}", stack[0]);
    };
    assert_eq!(
        (
            engine.accelerator.parallelism.tp,
            engine.accelerator.parallelism.pp
        ),
        (8, 1)
    );
}

#[test]
fn a_report_round_trips() {
    let report = parse_value(&full()).unwrap();
    let text = serde_json::to_string(&report).unwrap();
    assert_eq!(parse(&text).unwrap(), report);
    // Integers stay integers, and defaults are written out.
    let again: Value = serde_json::from_str(&text).unwrap();
    let load = &again["scenario"]["load"]["standardized"];
    assert_eq!(load["concurrency"], json!(8));
    assert_eq!(load["input_seq_len"]["value"], json!(100.5));
    assert_eq!(
        (&load["parallelism"], &load["stage"]),
        (&json!(1), &json!(0))
    );
}

#[test]
fn nulls_read_as_absent() {
    let v = changed("/run/eid", Some(Value::Null));
    assert_eq!(parse_value(&v).unwrap().run.eid, None);
}

#[test]
fn an_unknown_field_is_refused_with_its_path() {
    let (path, message) = shape_error(&changed("/run/colour", Some(json!("red"))));
    assert_eq!(path, "run.colour");
    assert!(message.contains("unknown field `colour`"), "{message}");
    let stats = "/results/request_performance/aggregate/latency/time_to_first_token";
    let (path, message) = shape_error(&changed(&format!("{stats}/p42"), Some(json!(1))));
    assert_eq!(
        path,
        "results.request_performance.aggregate.latency.time_to_first_token.p42"
    );
    assert!(message.contains("unknown field `p42`"), "{message}");
}

#[test]
fn a_missing_required_field_is_refused_with_its_path() {
    let (path, message) = shape_error(&changed("/run/uid", None));
    assert_eq!(path, "run");
    assert!(message.contains("missing field `uid`"), "{message}");
    let (path, message) = shape_error(&changed("/results", None));
    assert_eq!(path, ".");
    assert!(message.contains("missing field `results`"), "{message}");
}

#[test]
fn a_wrong_unit_is_refused_with_its_path() {
    let at = "/results/request_performance/aggregate/latency/time_to_first_token/units";
    let (path, message) = shape_error(&changed(at, Some(json!("seconds"))));
    assert_eq!(
        path,
        "results.request_performance.aggregate.latency.time_to_first_token.units"
    );
    assert!(message.contains("unknown variant `seconds`"), "{message}");
}

#[test]
fn a_negative_count_is_refused_with_its_path() {
    let at = "/results/request_performance/aggregate/requests/total";
    let (path, message) = shape_error(&changed(at, Some(json!(-1))));
    assert_eq!(path, "results.request_performance.aggregate.requests.total");
    assert!(message.contains("-1"), "{message}");
}

#[test]
fn bounds_are_checked_with_path_and_value() {
    let stats = "/results/request_performance/aggregate/latency/time_to_first_token";
    let v = violation(&changed(&format!("{stats}/stddev"), Some(json!(-0.5))));
    assert_eq!(
        v.to_string(),
        "results.request_performance.aggregate.latency.time_to_first_token.stddev = -0.5: must be at least 0"
    );
    let load = "/scenario/load/standardized";
    let v = violation(&changed(&format!("{load}/concurrency"), Some(json!(0))));
    assert_eq!(
        (v.path.as_str(), v.value.as_str()),
        ("scenario.load.standardized.concurrency", "0")
    );
    let v = violation(&changed(&format!("{load}/rate_qps"), Some(json!(0.0))));
    assert_eq!(v.rule, "must be greater than 0");
    let v = violation(&changed(
        &format!("{load}/input_seq_len/max"),
        Some(json!(0)),
    ));
    assert_eq!(v.path, "scenario.load.standardized.input_seq_len.max");
    let v = violation(&changed(
        "/scenario/stack/0/standardized/replicas",
        Some(json!(0)),
    ));
    assert_eq!(v.path, "scenario.stack[0].standardized.replicas");
    let pods = "/results/observability/pod_startup_times/pods/0/startup_seconds";
    let v = violation(&changed(pods, Some(json!(-1))));
    assert_eq!(
        v.path,
        "results.observability.pod_startup_times.pods[0].startup_seconds"
    );
    let series = "/results/request_performance/time_series/latency/request_latency/series/1/stddev";
    let v = violation(&changed(series, Some(json!(-2))));
    assert_eq!(
        v.path,
        "results.request_performance.time_series.latency.request_latency.series[1].stddev"
    );
}

#[test]
fn another_version_is_refused() {
    let v = violation(&changed("/version", Some(json!("0.3"))));
    assert_eq!(
        v.to_string(),
        "version = \"0.3\": this model reads version \"0.2\" only"
    );
}

#[test]
fn trailing_text_is_refused() {
    let text = format!("{} {{}}", full());
    assert!(matches!(parse(&text), Err(ReportError::Shape { .. })));
}

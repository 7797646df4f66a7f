//! OpenTelemetry traces end to end: a traced run exports one span tree
//! (run → phase → [step →] agent phase → request, plus windows) over OTLP/gRPC
//! to a receiver started here, and the simulator receives each sampled
//! request's own span in its `traceparent` header. An untraced run exports
//! nothing and sends no `traceparent`, even with a collector configured.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use stampede_tests::{
    Proc, assert_reconciles, bin, get_json, plan_file, read_json, run_plan_env,
    start_remote_controller_env, start_sim,
};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An OTLP trace receiver keeping every span it is sent, with the
/// `service.name` of its sender.
#[derive(Default, Clone)]
struct Receiver {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

impl Receiver {
    fn spans(&self) -> Vec<Span> {
        let kept = self.spans.lock().unwrap();
        kept.iter().map(|(_, s)| s.clone()).collect()
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut kept = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(v) => Some(v.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                kept.extend(ss.spans.into_iter().map(|s| (service.clone(), s)));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Start a receiver on loopback in `rt`; returns its endpoint URL.
fn start_receiver(rt: &tokio::runtime::Runtime) -> (String, Receiver) {
    let receiver = Receiver::default();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let service = TraceServiceServer::new(receiver.clone());
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (format!("http://{addr}"), receiver)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn int_attr(span: &Span, key: &str) -> i64 {
    match attr(span, key) {
        Some(Value::IntValue(v)) => *v,
        other => panic!("{key} of {} is {other:?}", span.name),
    }
}

fn str_attr<'a>(span: &'a Span, key: &str) -> &'a str {
    match attr(span, key) {
        Some(Value::StringValue(v)) => v,
        other => panic!("{key} of {} is {other:?}", span.name),
    }
}

fn plan(sim_url: &str, tracing: &str) -> String {
    format!(
        r#"
[run]
name = "traced"
{tracing}
[agents]
local = 2
[target]
url = "{sim_url}"
model = "stampede-sim"
[request]
prompt_tokens = 32
max_tokens = 8
[[phase]]
name = "steady"
kind = "constant"
rate = 20.0
duration = "2s"
[[phase]]
name = "knee"
kind = "stress"
from = 10.0
to = 20.0
step_duration = "1s"
max_steps = 2
# Both steps hold whatever the machine's load: the test is about spans.
max_error_rate = 1.0
min_achieved = 0.01
max_saturated = 1.0
"#
    )
}

#[test]
fn a_traced_run_exports_one_span_tree_that_the_target_joins() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (endpoint, receiver) = start_receiver(&rt);
    let (_sim, sim_url) = start_sim(&["--output-tokens", "8"]);
    let tracing = "[run.tracing]\nenabled = true\nsample_ratio = 0.5";
    let run = run_plan_env(
        &plan(&sim_url, tracing),
        Duration::from_secs(120),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)],
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    let summary = read_json(&run.out.join("summary.json"));
    // The steady phase and the knee's two steps.
    let sent: u64 = summary["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| assert_reconciles(p).0)
        .sum();

    // The controller flushed before it exited: every span is here.
    let spans = receiver.spans();
    let named = |name: &str| -> Vec<&Span> { spans.iter().filter(|s| s.name == name).collect() };
    let ids =
        |list: &[&Span]| -> BTreeSet<Vec<u8>> { list.iter().map(|s| s.span_id.clone()).collect() };
    let (runs, phases, steps) = (named("run"), named("phase"), named("step"));
    let (agent_phases, requests, windows) =
        (named("agent_phase"), named("request"), named("window"));
    assert_eq!(runs.len(), 1, "{spans:#?}");
    // No tracing-internal attributes: source location, threads, busy/idle time.
    for s in &spans {
        for a in &s.attributes {
            let internal = ["code.", "thread.", "busy_ns", "idle_ns"];
            assert!(
                !internal.iter().any(|p| a.key.starts_with(p)),
                "span {:?} carries {:?}",
                s.name,
                a.key
            );
        }
    }
    let root = runs[0];
    assert!(root.parent_span_id.is_empty(), "the run span is the root");
    assert!(
        spans.iter().all(|s| s.trace_id == root.trace_id),
        "one trace for the whole run"
    );

    // run → phase (two) → step (the stress phase's two).
    assert_eq!(phases.len(), 2);
    assert!(phases.iter().all(|p| p.parent_span_id == root.span_id));
    let by_name: BTreeMap<&str, &Span> = phases
        .iter()
        .map(|p| (str_attr(p, "stampede.phase.name"), *p))
        .collect();
    let (steady, knee) = (by_name["steady"], by_name["knee"]);
    // Numbers are typed numbers, not strings.
    assert_eq!(int_attr(knee, "stampede.phase.index"), 1);
    assert_eq!(int_attr(root, "stampede.run.phases"), 2);
    assert!(
        steps
            .iter()
            .all(|s| int_attr(s, "stampede.step.index") >= 0)
    );
    assert!(
        agent_phases
            .iter()
            .all(|a| int_attr(a, "stampede.shard.count") == 2)
    );
    for s in &steps {
        assert!(
            matches!(attr(s, "stampede.step.rate"), Some(Value::DoubleValue(_))),
            "{s:#?}"
        );
    }
    assert_eq!(steps.len(), 2);
    assert!(steps.iter().all(|s| s.parent_span_id == knee.span_id));
    let rates: BTreeSet<String> = steps
        .iter()
        .map(|s| format!("{:?}", attr(s, "stampede.step.rate")))
        .collect();
    assert_eq!(rates.len(), 2, "two step rates: {rates:?}");

    // Each assignment span (the steady phase, each step) has one agent phase
    // per agent and its windows.
    let assignment_ids: BTreeSet<Vec<u8>> = ids(&steps)
        .into_iter()
        .chain([steady.span_id.clone()])
        .collect();
    assert_eq!(agent_phases.len(), 2 * assignment_ids.len());
    for a in &assignment_ids {
        let children = agent_phases
            .iter()
            .filter(|s| &s.parent_span_id == a)
            .count();
        assert_eq!(children, 2, "two agents per assignment");
        assert!(windows.iter().any(|w| &w.parent_span_id == a));
    }
    assert!(
        windows
            .iter()
            .all(|w| assignment_ids.contains(&w.parent_span_id))
    );
    let window_sent: i64 = windows
        .iter()
        .map(|w| int_attr(w, "stampede.requests.sent"))
        .sum();
    assert_eq!(window_sent as u64, sent, "windows carry every request");

    // Requests: sampled (about half), children of an agent phase, with the
    // GenAI attributes and their token events in order inside the span.
    let agent_ids = ids(&agent_phases);
    assert!(
        !requests.is_empty() && (requests.len() as u64) < sent,
        "{} of {sent} requests traced at ratio 0.5",
        requests.len()
    );
    for r in &requests {
        assert!(agent_ids.contains(&r.parent_span_id), "{r:#?}");
        assert_eq!(str_attr(r, "gen_ai.request.model"), "stampede-sim");
        assert_eq!(str_attr(r, "gen_ai.operation.name"), "chat");
        assert!(int_attr(r, "stampede.request.index") >= 0);
        assert_eq!(int_attr(r, "gen_ai.usage.output_tokens"), 8);
        assert!(int_attr(r, "gen_ai.usage.input_tokens") > 0);
        assert_eq!(int_attr(r, "http.response.status_code"), 200);
        let event = |name: &str| {
            r.events
                .iter()
                .find(|e| e.name == name)
                .unwrap_or_else(|| panic!("no {name} event in {r:#?}"))
                .time_unix_nano
        };
        let (first, last) = (event("gen_ai.first_token"), event("gen_ai.last_token"));
        assert!(r.start_time_unix_nano <= first && first < last && last <= r.end_time_unix_nano);
    }

    // The simulator received exactly the request spans as traceparents.
    let kept = get_json(&format!("{sim_url}/sim/traceparents"));
    assert_eq!(kept["seen"].as_u64(), Some(requests.len() as u64));
    let received: BTreeSet<(String, String)> = kept["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let parts: Vec<&str> = v.as_str().unwrap().split('-').collect();
            assert_eq!((parts.len(), parts[0], parts[3]), (4, "00", "01"), "{v}");
            (parts[1].to_string(), parts[2].to_string())
        })
        .collect();
    let exported: BTreeSet<(String, String)> = requests
        .iter()
        .map(|r| (hex(&r.trace_id), hex(&r.span_id)))
        .collect();
    assert_eq!(received, exported);
}

#[test]
fn an_untraced_run_exports_nothing_and_sends_no_traceparent() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (endpoint, receiver) = start_receiver(&rt);
    let (_sim, sim_url) = start_sim(&["--output-tokens", "8"]);
    let run = run_plan_env(
        &plan(&sim_url, ""),
        Duration::from_secs(120),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)],
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    let summary = read_json(&run.out.join("summary.json"));
    assert!(assert_reconciles(&summary["phases"][0]).1 > 0);
    let stats = get_json(&format!("{sim_url}/sim/stats"));
    assert!(stats["requests_started"].as_u64().unwrap() > 0);
    assert_eq!(stats["requests_traced"].as_u64(), Some(0));
    assert_eq!(get_json(&format!("{sim_url}/sim/traceparents"))["seen"], 0);
    assert!(receiver.spans.lock().unwrap().is_empty());
}

#[test]
fn a_remote_agent_process_joins_the_controllers_trace() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (endpoint, receiver) = start_receiver(&rt);
    let (_sim, sim_url) = start_sim(&["--output-tokens", "4"]);
    let plan = format!(
        r#"
[run]
name = "remote-traced"
[run.tracing]
enabled = true
sample_ratio = 1.0
[agents]
remote = 1
[target]
url = "{sim_url}"
model = "stampede-sim"
[request]
max_tokens = 4
[[phase]]
name = "steady"
kind = "constant"
rate = 10.0
duration = "1s"
"#
    );
    let (dir, path) = plan_file(&plan);
    let otel = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())];
    let (mut controller, url) = start_remote_controller_env(&path, &dir.path().join("run"), &otel);
    let mut cmd = Command::new(bin("agent"));
    cmd.args(["--controller", &url, "--id", "traced-agent"]);
    cmd.envs(otel);
    let mut agent = Proc::spawn(cmd);
    let (code, output) = controller.wait_exit(Duration::from_secs(90));
    assert_eq!(code, Some(0), "controller:\n{output}");
    let (code, output) = agent.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "agent:\n{output}");

    // The agent exported its spans before it exited, under its own service name.
    let spans = receiver.spans.lock().unwrap().clone();
    let find = |service: &str, name: &str| -> Vec<Span> {
        spans
            .iter()
            .filter(|(s, span)| s == service && span.name == name)
            .map(|(_, span)| span.clone())
            .collect()
    };
    let phase = find("stampede-controller", "phase");
    let agent_phase = find("stampede-agent", "agent_phase");
    let requests = find("stampede-agent", "request");
    assert_eq!((phase.len(), agent_phase.len()), (1, 1), "{spans:#?}");
    assert_eq!(agent_phase[0].trace_id, phase[0].trace_id);
    assert_eq!(agent_phase[0].parent_span_id, phase[0].span_id);
    let kept = get_json(&format!("{sim_url}/sim/traceparents"));
    let sent = kept["seen"].as_u64().unwrap();
    assert!(sent > 0 && sent == requests.len() as u64, "{kept}");
    assert!(
        requests
            .iter()
            .all(|r| r.parent_span_id == agent_phase[0].span_id && r.trace_id == phase[0].trace_id)
    );
}

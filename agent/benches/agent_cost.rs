//! What the agent costs, against a bare client measured in the same run.
//!
//! Drives the release `stampede-sim` binary (a child process on loopback:
//! TTFT 20 ms, ITL 5 ms, 64 output tokens, ~128-word prompts, streaming,
//! constant arrivals) with
//! - a *bare* reference client written for this benchmark: HTTP/1.1 by hand
//!   over tokio's `TcpStream` with kept-alive connections, paced by tokio's
//!   timer, reading the stream's bytes until the body's last chunk and nothing
//!   else (no HTTP or SSE parsing, no JSON, no histograms);
//! - for context in (1), the same bare loop through reqwest, the agent's
//!   general-purpose HTTP client (used for TLS, HTTP/2 and proxies);
//! - the agent's real engine (`engine::run_phase`): precise pacing, its lean
//!   HTTP/1.1 client, SSE and JSON parsing, vLLM metrics into per-window HDR
//!   histograms, V2 encoding.
//!
//! Prints, all measured in this run:
//! 1. CPU-seconds per 1,000 streamed requests for all three at the cost rate
//!    and at twice it, alternating (`STAMPEDE_BENCH_REPEATS` times, default
//!    3), and the ratio of the agent's median to the bare client's;
//!
//!    1b. what OpenTelemetry tracing costs: the agent's CPU per 1,000
//!    requests with an OTLP exporter installed (to a receiver in this process
//!    that counts and drops spans, export included) for an untraced phase, a
//!    phase traced at the default sample ratio and one traced at ratio 1, each
//!    against the agent of (1), which ran with no exporter at all;
//!
//!    1d. what breakdowns and per-request records cost: the bare client,
//!    the plain agent, the agent with a one-entry mix (generated prompts, no
//!    parts: what the next row's parts add to), with a two-entry mix (a part
//!    per entry in every window), with records sampled at 1% and at 100%, and with both
//!    breakdowns and 1% records, alternating; each against the bare client
//!    and the plain agent (`STAMPEDE_BENCH_FEATURES_ONLY` runs only this);
//!
//!    1c. pacing precision: the intended → started gap of no-op tasks paced
//!    by the agent's [`PreciseTimer`] (a timerfd on tokio's reactor) and by an
//!    OS thread that sleeps and hands each task to the runtime, alternating;
//! 2. a rate sweep, the bare client and then the agent at each rate:
//!    achieved/offered, TTFT p50/p99 minus the simulator's measured
//!    server-side TTFT (`GET /sim/latency`, reset before each run), the
//!    simulator's own lateness, the agent's schedule lag, client and simulator
//!    CPU — until neither client holds the rate. Where the bare client stops
//!    holding too, the simulator and the machine it shares are the limit, not
//!    the agent; the agent's overhead is quoted at half the bare client's
//!    ceiling, in a step of its own at exactly that rate;
//! 3. the agent's resident memory over a soak at half that ceiling.
//!
//! `cargo bench -p stampede-agent --bench agent_cost`. Environment knobs:
//! `STAMPEDE_BENCH_REPEATS` (alternating cost runs, default 3),
//! `STAMPEDE_BENCH_SWEEP_ONLY` (set: skip the cost runs of 1 and 1b),
//! `STAMPEDE_BENCH_RATE` (cost rate, default 500), `STAMPEDE_BENCH_SECS`
//! (seconds per measurement, default 10), `STAMPEDE_BENCH_SOAK_SECS`
//! (default 120; 0 skips the soak).

#[path = "agent_cost/tail.rs"]
mod tail;

use bytes::Bytes;
use hdrhistogram::Histogram;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use stampede_agent::engine::{self, AgentClock, Report, cpu_micros, cpu_micros_of};
use stampede_agent::pacer::PreciseTimer;
use stampede_agent::session::http_client;
use stampede_common::histogram::{decode, new_histogram};
use stampede_common::metric::Metric;
use stampede_common::proto::{self, metric_histogram::Encoding};
use stampede_runtime::telemetry::{self, LogFormat, SPAN_TARGET};
use stampede_sim::{LatencySnapshot, LatencySummary};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const TTFT_MS: f64 = 20.0;
const TOKENS: u32 = 64;
/// The simulator's first token, as its chat stream spells it.
const FIRST_TOKEN: &[u8] = b"\"content\":\"the ";
/// The end of a chunked body.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The release simulator binary, built if needed.
fn sim_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("bench executable");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("<target>/<profile>/deps")
        .to_path_buf();
    let target_dir = profile_dir.parent().expect("<target>").to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "stampede-sim",
            "--bin",
            "stampede-sim",
            "--target-dir",
        ])
        .arg(&target_dir)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .status()
        .expect("cargo build");
    assert!(status.success(), "building the simulator failed");
    target_dir.join("release").join("stampede-sim")
}

struct Sim {
    child: Child,
    url: String,
}

impl Sim {
    fn start() -> Sim {
        let mut child = Command::new(sim_binary())
            .args(["--listen", "127.0.0.1:0", "--ttft", "20ms", "--itl", "5ms"])
            .args(["--output-tokens", &TOKENS.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start simulator");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read");
        let url = line
            .split_whitespace()
            .last()
            .expect("listening line")
            .to_string();
        Sim { child, url }
    }

    fn cpu_seconds(&self) -> f64 {
        cpu_micros_of(&self.child.id().to_string()) as f64 / 1e6
    }

    /// Starts a new server-side first-token measurement interval.
    async fn reset_latency(&self) {
        let url = format!("{}/sim/latency", self.url);
        let status = http_client()
            .reqwest()
            .delete(url)
            .send()
            .await
            .map(|r| r.status());
        assert!(
            matches!(status, Ok(s) if s.is_success()),
            "resetting the simulator's latency: {status:?}"
        );
    }

    /// The simulator's measured first-token latency since the last reset: the request's
    /// arrival at its socket to first token handed to the response body, a late read and
    /// timer lateness included.
    async fn first_token(&self) -> LatencySummary {
        let url = format!("{}/sim/latency", self.url);
        let snap: Result<LatencySnapshot, _> = async {
            http_client()
                .reqwest()
                .get(url)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await
        }
        .await;
        match snap {
            Ok(s) => s.first_token,
            Err(e) => panic!("reading the simulator's latency: {e}"),
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prompt() -> String {
    ["the", "of", "and", "to", "in", "is", "that", "for"]
        .iter()
        .cycle()
        .take(128)
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

fn body() -> Bytes {
    let v = serde_json::json!({
        "model": "stampede-sim",
        "messages": [{"role": "user", "content": prompt()}],
        "max_tokens": TOKENS,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    serde_json::to_vec(&v).expect("json").into()
}

/// Record the time since `from` (µs) in a shared histogram.
fn record_since(h: &std::sync::Mutex<Histogram<u64>>, from: std::time::Instant) {
    let us = std::time::Instant::now()
        .saturating_duration_since(from)
        .as_micros();
    let mut h = h.lock().unwrap_or_else(|e| e.into_inner());
    let _ = h.record(u64::try_from(us).unwrap_or(u64::MAX));
}

/// Intended → started gap (µs) of no-op tasks paced at `rate` for `secs` by
/// an OS thread that sleeps and hands each task to the runtime: the pacing
/// the agent used before [`PreciseTimer`], kept here as the reference.
fn pace_by_thread(rt: &tokio::runtime::Runtime, rate: f64, secs: u64) -> Histogram<u64> {
    let lags = Arc::new(std::sync::Mutex::new(new_histogram()));
    let (handle, recorded) = (rt.handle().clone(), lags.clone());
    let start = std::time::Instant::now() + Duration::from_millis(50);
    let n = (rate * secs as f64) as u64;
    std::thread::spawn(move || {
        for k in 0..n {
            let due = start + Duration::from_secs_f64(k as f64 / rate);
            let now = std::time::Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let recorded = recorded.clone();
            handle.spawn(async move { record_since(&recorded, due) });
        }
    })
    .join()
    .expect("pacing thread");
    std::thread::sleep(Duration::from_millis(50));
    lags.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// [`pace_by_thread`] with the agent's pacer: a task on the runtime waiting
/// on [`PreciseTimer`], spawning each no-op task itself.
fn pace_by_timer(rt: &tokio::runtime::Runtime, rate: f64, secs: u64) -> Histogram<u64> {
    rt.block_on(async move {
        let lags = Arc::new(std::sync::Mutex::new(new_histogram()));
        let recorded = lags.clone();
        tokio::spawn(async move {
            let mut timer = PreciseTimer::new();
            let start = Instant::now() + Duration::from_millis(50);
            for k in 0..(rate * secs as f64) as u64 {
                let due = start + Duration::from_secs_f64(k as f64 / rate);
                timer.sleep_until(due).await;
                let recorded = recorded.clone();
                tokio::spawn(async move { record_since(&recorded, due.into_std()) });
            }
        })
        .await
        .expect("pacing task");
        tokio::time::sleep(Duration::from_millis(50)).await;
        lags.lock().unwrap_or_else(|e| e.into_inner()).clone()
    })
}

/// 1c: pacing precision, the agent's timer against the thread hand-off, alternating.
fn pacing(rt: &tokio::runtime::Runtime, rate: f64, secs: u64) {
    println!();
    println!(
        "1c. pacing: intended -> started gap of no-op tasks at {rate} /s, {secs} s per run, alternating"
    );
    let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q);
    for round in 1..=2 {
        for (name, h) in [
            ("OS thread + hand-off", pace_by_thread(rt, rate, secs)),
            ("agent (PreciseTimer)", pace_by_timer(rt, rate, secs)),
        ] {
            println!(
                "   round {round} {name:<21} p50 {:>5} us  p90 {:>5} us  p99 {:>5} us  max {:>6} us",
                us(&h, 0.5),
                us(&h, 0.9),
                us(&h, 0.99),
                h.max()
            );
        }
    }
}

/// What the bare client saw.
struct BareRun {
    ok: u64,
    failed: u64,
    /// Requests per second it actually sent: all of them, over the time it took.
    achieved: f64,
    /// Intended send to the arrival of the first token (µs), when timed.
    first_token: Option<Histogram<u64>>,
}

/// The bare reference client: HTTP/1.1 by hand over tokio's `TcpStream`,
/// paced by tokio's timer. It writes a pre-built request on a kept-alive
/// connection (from a stack; a new one when none is free) and reads bytes
/// until the chunked body's last chunk: no HTTP or SSE parsing, no JSON, no
/// histograms. With `timed`, it also notes the read that brings the first
/// token's text (one substring search per read until found, one histogram
/// record per request).
async fn bare(url: &str, rate: f64, secs: u64, timed: bool) -> BareRun {
    let addr = url.trim_start_matches("http://").to_string();
    let body = body();
    let mut request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let request = Bytes::from(request);
    let idle: Arc<std::sync::Mutex<Vec<TcpStream>>> = Arc::default();
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let first_token = Arc::new(std::sync::Mutex::new(new_histogram()));
    let tracker = TaskTracker::new();
    let start = Instant::now() + Duration::from_millis(100);
    let n = (rate * secs as f64) as u64;
    let mut last_send = start;
    for k in 0..n {
        let intended = start + Duration::from_secs_f64(k as f64 / rate);
        tokio::time::sleep_until(intended).await;
        last_send = Instant::now();
        let (idle, request, addr) = (idle.clone(), request.clone(), addr.clone());
        let (ok, failed, first_token) = (ok.clone(), failed.clone(), first_token.clone());
        tracker.spawn(async move {
            let reused = idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let result = async {
                let mut conn = match reused {
                    Some(c) => c,
                    None => {
                        let c = TcpStream::connect(&addr).await?;
                        c.set_nodelay(true)?;
                        c
                    }
                };
                conn.write_all(&request).await?;
                let mut buf = vec![0u8; 8192];
                let (mut tail, mut seen) = (Vec::with_capacity(16), !timed);
                loop {
                    let m = conn.read(&mut buf).await?;
                    if m == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    let got = &buf[..m];
                    if !seen && got.windows(FIRST_TOKEN.len()).any(|w| w == FIRST_TOKEN) {
                        seen = true;
                        record_since(&first_token, intended.into_std());
                    }
                    tail.extend_from_slice(&got[got.len().saturating_sub(LAST_CHUNK.len())..]);
                    tail.drain(..tail.len().saturating_sub(LAST_CHUNK.len()));
                    if tail == LAST_CHUNK {
                        return Ok::<_, std::io::Error>(conn);
                    }
                }
            }
            .await;
            match result {
                Ok(conn) => {
                    ok.fetch_add(1, Ordering::Relaxed);
                    idle.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
                }
                Err(_) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    tracker.close();
    tracker.wait().await;
    let took = last_send.saturating_duration_since(start).as_secs_f64();
    let span = (secs as f64).max(took + 1.0 / rate);
    let first_token = std::mem::replace(
        &mut *first_token.lock().unwrap_or_else(|e| e.into_inner()),
        new_histogram(),
    );
    BareRun {
        ok: ok.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        achieved: n as f64 / span,
        first_token: timed.then_some(first_token),
    }
}

/// A second reference: the agent's general-purpose HTTP client (reqwest over
/// hyper, keep-alive pool), paced by tokio's timer, reading body chunks and
/// nothing else. It shows what the HTTP stack alone costs.
async fn via_reqwest(url: &str, rate: f64, secs: u64) -> BareRun {
    let client = http_client().reqwest().clone();
    let url = format!("{url}/v1/chat/completions");
    let body = body();
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let tracker = TaskTracker::new();
    let start = Instant::now() + Duration::from_millis(100);
    let n = (rate * secs as f64) as u64;
    let mut last_send = start;
    for k in 0..n {
        let intended = start + Duration::from_secs_f64(k as f64 / rate);
        tokio::time::sleep_until(intended).await;
        last_send = Instant::now();
        let (client, url, body, ok, failed) = (
            client.clone(),
            url.clone(),
            body.clone(),
            ok.clone(),
            failed.clone(),
        );
        tracker.spawn(async move {
            let result = async {
                let mut resp = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                let mut bytes = 0usize;
                while let Some(chunk) = resp.chunk().await? {
                    bytes += chunk.len();
                }
                Ok::<_, reqwest::Error>(bytes)
            }
            .await;
            match result {
                Ok(b) if b > 0 => ok.fetch_add(1, Ordering::Relaxed),
                _ => failed.fetch_add(1, Ordering::Relaxed),
            };
        });
    }
    tracker.close();
    tracker.wait().await;
    let took = last_send.saturating_duration_since(start).as_secs_f64();
    let span = (secs as f64).max(took + 1.0 / rate);
    BareRun {
        ok: ok.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        achieved: n as f64 / span,
        first_token: None,
    }
}

#[derive(Default)]
struct AgentRun {
    sent: u64,
    ok: u64,
    failed: u64,
    skipped: u64,
    ttft: Option<Histogram<u64>>,
    lag: Option<Histogram<u64>>,
    /// Per-request records, when the phase sampled any.
    records: Vec<proto::RequestRecord>,
}

/// The agent's engine for one phase at `rate` for `secs`.
async fn agent(url: &str, rate: f64, secs: u64) -> AgentRun {
    agent_traced(url, rate, secs, HashMap::new(), 0.0).await
}

/// [`agent`], the phase carrying `trace_context` and sampling `ratio` of its requests.
async fn agent_traced(
    url: &str,
    rate: f64,
    secs: u64,
    trace_context: HashMap<String, String>,
    ratio: f64,
) -> AgentRun {
    agent_with(url, rate, secs, |a| {
        a.trace_context = trace_context;
        a.trace_sample_ratio = ratio;
    })
    .await
}

/// [`agent`], its assignment changed by `configure` first.
async fn agent_with(
    url: &str,
    rate: f64,
    secs: u64,
    configure: impl FnOnce(&mut proto::PhaseAssignment),
) -> AgentRun {
    let clock = AgentClock::default();
    let assignment = proto::PhaseAssignment {
        phase_index: 0,
        phase_name: "bench".into(),
        start_unix_nanos: clock.now_unix_nanos() + 100_000_000,
        duration_ms: secs * 1000,
        drain_ms: 10_000,
        window_ms: 1000,
        max_requests: 0,
        shard: Some(proto::Shard {
            index: 0,
            count: 1,
            ..Default::default()
        }),
        load: Some(proto::LoadShape {
            shape: Some(proto::load_shape::Shape::OpenLoop(proto::OpenLoop {
                profile: Some(proto::RateProfile {
                    profile: Some(proto::rate_profile::Profile::Constant(
                        proto::ConstantRate {
                            requests_per_second: rate,
                        },
                    )),
                }),
                arrival: proto::Arrival::Uniform as i32,
                burstiness: 0.0,
                seed: 1,
            })),
        }),
        request: Some(proto::RequestTemplate {
            base_url: url.to_string(),
            api: proto::Api::Chat as i32,
            model: "stampede-sim".into(),
            prompt: prompt(),
            max_tokens: TOKENS,
            stream: true,
            timeout_ms: 30_000,
            prompt_tokens_estimate: 128,
            ..Default::default()
        }),
        max_in_flight: 20_000,
        ..Default::default()
    };
    let mut assignment = assignment;
    configure(&mut assignment);
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let (_reshard, reshards) = tokio::sync::watch::channel(Vec::new());
    let phase = tokio::spawn(engine::run_phase(
        assignment,
        http_client(),
        clock,
        tx,
        CancellationToken::new(),
        reshards,
    ));
    let mut run = AgentRun {
        ttft: Some(new_histogram()),
        lag: Some(new_histogram()),
        ..Default::default()
    };
    while let Some(report) = rx.recv().await {
        let Report::Window(w) = report else { break };
        let c = w.counters.unwrap_or_default();
        run.sent += c.sent;
        run.ok += c.ok;
        run.failed += c.failed;
        run.skipped += c.skipped;
        run.records.extend(w.records.iter().cloned());
        for h in &w.histograms {
            let Some(Encoding::HdrV2(bytes)) = &h.encoding else {
                continue;
            };
            let target = match Metric::from_proto(h.metric) {
                Some(Metric::Ttft) => run.ttft.as_mut(),
                Some(Metric::ScheduleLag) => run.lag.as_mut(),
                _ => None,
            };
            if let (Some(t), Ok(d)) = (target, decode(bytes)) {
                let _ = t.add(&d);
            }
        }
    }
    let _ = phase.await;
    run
}

/// An OTLP trace receiver that counts the spans it is sent and drops them.
#[derive(Default, Clone)]
struct Sink {
    spans: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let n: usize = (request.into_inner().resource_spans.iter())
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.spans.fetch_add(n as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Start a [`Sink`] on loopback; returns its endpoint URL.
async fn start_sink(sink: Sink) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(sink))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    format!("http://{addr}")
}

/// Section 1b: the agent's CPU per 1,000 requests with tracing, against
/// `untraced_per_k` (the agent with no exporter, measured in section 1).
fn tracing_cost(
    rt: &tokio::runtime::Runtime,
    url: &str,
    rate: f64,
    secs: u64,
    untraced_per_k: f64,
) {
    let sink = Sink::default();
    let endpoint = rt.block_on(start_sink(sink.clone()));
    let exporter = rt.block_on(async {
        telemetry::init_traced_to(LogFormat::Plain, Some("stampede-bench"), Some(&endpoint))
    });
    let exporter = exporter.expect("trace exporter");
    assert!(
        telemetry::exporting(),
        "the bench installs the first subscriber"
    );
    let root = tracing::info_span!(target: SPAN_TARGET, "bench");
    let context = stampede_agent::spans::context_of(&root);
    let default = stampede_common::DEFAULT_TRACE_SAMPLE_RATIO;
    println!();
    println!("1b. tracing: agent CPU per 1,000 streamed requests at {rate} req/s for {secs} s");
    println!(
        "   {:<30} {untraced_per_k:.3} CPU-s",
        "no exporter (the agent above)"
    );
    for (label, cx, ratio) in [
        (
            "exporter on, phase untraced".to_string(),
            HashMap::new(),
            0.0,
        ),
        (format!("traced, ratio {default}"), context.clone(), default),
        ("traced, ratio 1".to_string(), context, 1.0),
    ] {
        let spans_before = sink.spans.load(Ordering::Relaxed);
        let c0 = cpu_micros();
        let run = rt.block_on(agent_traced(url, rate, secs, cx, ratio));
        rt.block_on(async { tokio::time::sleep(Duration::from_secs(6)).await }); // one export interval
        let per_k = (cpu_micros() - c0) as f64 / 1e6 / run.ok.max(1) as f64 * 1000.0;
        println!(
            "   {label:<30} {per_k:.3} CPU-s  {:.2}x  ({} ok, {} spans exported)",
            per_k / untraced_per_k,
            run.ok,
            sink.spans.load(Ordering::Relaxed) - spans_before
        );
    }
    drop(root);
    rt.block_on(exporter.shutdown());
}

/// A two-entry mix of the bench's request, so the agent records a part per entry.
fn two_entries() -> proto::Workload {
    let entry = |name: &str| proto::WorkloadEntry {
        name: name.into(),
        weight: 1.0,
        input_tokens: Some(proto::LengthDistribution {
            kind: Some(proto::length_distribution::Kind::Fixed(128)),
        }),
        output_tokens: Some(proto::LengthDistribution {
            kind: Some(proto::length_distribution::Kind::Fixed(TOKENS)),
        }),
        ..Default::default()
    };
    proto::Workload {
        entries: vec![entry("a"), entry("b")],
        seed: 1,
    }
}

/// Section 1d: what breakdowns (a two-entry mix) and per-request records
/// cost, alternating with the bare client and the plain agent `reps` times.
fn features_cost(rt: &tokio::runtime::Runtime, url: &str, rate: f64, secs: u64, reps: u64) {
    type Configure = fn(&mut proto::PhaseAssignment);
    fn records(a: &mut proto::PhaseAssignment, ratio: f64) {
        a.record_sample_ratio = ratio;
        a.record_seed = 7;
    }
    fn mix(a: &mut proto::PhaseAssignment) {
        if let Some(r) = a.request.as_mut() {
            r.workload = Some(two_entries());
        }
    }
    fn one_entry(a: &mut proto::PhaseAssignment) {
        mix(a);
        if let Some(w) = a.request.as_mut().and_then(|r| r.workload.as_mut()) {
            w.entries.truncate(1);
        }
    }
    let variants: [(&str, Configure); 6] = [
        ("agent, plain", |_| {}),
        ("mix of 1 entry (no parts)", one_entry),
        ("breakdowns (2 entries)", mix),
        ("records 1%", |a| records(a, 0.01)),
        ("records 100%", |a| records(a, 1.0)),
        ("breakdowns + records 1%", |a| {
            mix(a);
            records(a, 0.01);
        }),
    ];
    println!();
    println!(
        "1d. breakdowns and per-request records: CPU per 1,000 streamed requests at {rate} req/s, {secs} s per run, alternating {reps} times"
    );
    let mut bares = Vec::new();
    let mut per_variant: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for _ in 0..reps {
        let c0 = cpu_micros();
        let b = rt.block_on(bare(url, rate, secs, false));
        bares.push((cpu_micros() - c0) as f64 / 1e3 / b.ok.max(1) as f64);
        for (i, (_, configure)) in variants.iter().enumerate() {
            let c0 = cpu_micros();
            let a = rt.block_on(agent_with(url, rate, secs, configure));
            per_variant[i].push((cpu_micros() - c0) as f64 / 1e3 / a.ok.max(1) as f64);
        }
    }
    let bare_per_k = median(&mut bares);
    println!("   {:<26} {bare_per_k:.3} CPU-s", "bare client");
    let plain = median(&mut per_variant[0].clone());
    for ((label, _), runs) in variants.iter().zip(&mut per_variant) {
        let per_k = median(runs);
        println!(
            "   {label:<26} {per_k:.3} CPU-s  {:.2}x bare  {:.2}x plain agent",
            per_k / bare_per_k,
            per_k / plain
        );
    }
}

/// One client's run of the sweep, as judged.
struct Step {
    holds: bool,
    keeps_up: bool,
    ovh50: f64,
    ovh99: f64,
}

/// Run the bare client (or the agent) at `r` for `secs`, print its row and judge it.
fn sweep_step(rt: &tokio::runtime::Runtime, sim: &Sim, agent_run: bool, r: f64, secs: u64) -> Step {
    rt.block_on(sim.reset_latency());
    let (c0, s0, t0) = (cpu_micros(), sim.cpu_seconds(), std::time::Instant::now());
    let (achieved, ok_ratio, ttft, lag) = if agent_run {
        let a = rt.block_on(agent(&sim.url, r, secs));
        let achieved = a.sent as f64 / (r * secs as f64);
        (achieved, a.ok as f64 / a.sent.max(1) as f64, a.ttft, a.lag)
    } else {
        let b = rt.block_on(bare(&sim.url, r, secs, true));
        let ok = b.ok as f64 / (b.ok + b.failed).max(1) as f64;
        (b.achieved / r, ok, b.first_token, None)
    };
    let wall = t0.elapsed().as_secs_f64();
    let server = rt.block_on(sim.first_token());
    let client_cores = (cpu_micros() - c0) as f64 / 1e6 / wall;
    let sim_cores = (sim.cpu_seconds() - s0) / wall;
    let (ovh50, ovh99) = (
        ms(&ttft, 0.5) - server.p50_ms,
        ms(&ttft, 0.99) - server.p99_ms,
    );
    let holds = achieved >= 0.99 && ok_ratio >= 0.99 && ovh99 <= 10.0;
    let sim_late = server.p99_ms - TTFT_MS;
    let keeps_up = sim_late <= 10.0;
    println!(
        "   {r:>7.0} {:>6} {:>8.1}% {:>7.1}% {:>6.3} ms {:>6.3} ms {:>6.3} ms {:>8} {:>4.2} cores {:>4.2} cores  {:<5}  {}",
        if agent_run { "agent" } else { "bare" },
        100.0 * achieved,
        100.0 * ok_ratio,
        ovh50,
        ovh99,
        sim_late,
        lag.as_ref()
            .map_or("-".to_string(), |_| format!("{:.2} ms", ms(&lag, 0.99))),
        client_cores,
        sim_cores,
        if holds { "yes" } else { "NO" },
        if keeps_up { "yes" } else { "NO" }
    );
    Step {
        holds,
        keeps_up,
        ovh50,
        ovh99,
    }
}

fn ms(h: &Option<Histogram<u64>>, q: f64) -> f64 {
    h.as_ref()
        .map_or(f64::NAN, |h| h.value_at_quantile(q) as f64 / 1e3)
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rate = env_u64("STAMPEDE_BENCH_RATE", 500) as f64;
    let secs = env_u64("STAMPEDE_BENCH_SECS", 10);
    let soak = env_u64("STAMPEDE_BENCH_SOAK_SECS", 120);
    let reps = env_u64("STAMPEDE_BENCH_REPEATS", 3).max(1);
    let sim = Sim::start();
    // The agent's own runtime, for the reference clients too.
    let rt = stampede_runtime::runtime().expect("runtime");
    println!(
        "stampede agent benchmark: simulator {} (TTFT {TTFT_MS} ms, ITL 5 ms, {TOKENS} tokens), {} cores",
        sim.url,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // 1. Cost per 1,000 requests, bare client vs agent, alternating, same run.
    let sweep_only = std::env::var_os("STAMPEDE_BENCH_SWEEP_ONLY").is_some();
    rt.block_on(bare(&sim.url, rate, 2, false)); // warm the connection pool and the simulator
    if std::env::var_os("STAMPEDE_BENCH_FEATURES_ONLY").is_some() {
        features_cost(&rt, &sim.url, rate, secs, reps);
        return;
    }
    if std::env::var_os("STAMPEDE_BENCH_TAIL_ONLY").is_some() {
        tail::tail(&rt, &sim, secs, reps);
        return;
    }
    if !sweep_only {
        rt.block_on(via_reqwest(&sim.url, rate, 1));
    }
    let mut agent_per_k = f64::NAN;
    for r in [rate, 2.0 * rate].into_iter().filter(|_| !sweep_only) {
        println!();
        println!(
            "1. CPU per 1,000 streamed requests at {r} req/s, {secs} s per run; bare, reqwest and agent alternating {reps} times"
        );
        let (mut bares, mut reqwests, mut agents) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..reps {
            let c0 = cpu_micros();
            let b = rt.block_on(bare(&sim.url, r, secs, false));
            let bare_per_k = (cpu_micros() - c0) as f64 / 1e3 / b.ok.max(1) as f64;
            let c0 = cpu_micros();
            let q = rt.block_on(via_reqwest(&sim.url, r, secs));
            let reqwest_per_k = (cpu_micros() - c0) as f64 / 1e3 / q.ok.max(1) as f64;
            let c0 = cpu_micros();
            let a = rt.block_on(agent(&sim.url, r, secs));
            let per_k = (cpu_micros() - c0) as f64 / 1e3 / a.ok.max(1) as f64;
            println!(
                "   run {}: bare {bare_per_k:.3} CPU-s ({} ok, {} failed), reqwest {reqwest_per_k:.3} CPU-s ({} ok, {} failed), agent {per_k:.3} CPU-s ({} ok, {} failed, {} skipped): {:.2}x bare",
                i + 1,
                b.ok,
                b.failed,
                q.ok,
                q.failed,
                a.ok,
                a.failed,
                a.skipped,
                per_k / bare_per_k
            );
            bares.push(bare_per_k);
            reqwests.push(reqwest_per_k);
            agents.push(per_k);
        }
        let (b, q, a) = (
            median(&mut bares),
            median(&mut reqwests),
            median(&mut agents),
        );
        println!(
            "   median: bare client {b:.3} CPU-s, reqwest client {q:.3} CPU-s, agent {a:.3} CPU-s"
        );
        println!(
            "   ratio agent/bare = {:.2}x  (goal <= 1.3x); agent/reqwest = {:.2}x",
            a / b,
            a / q
        );
        if r == rate {
            agent_per_k = a;
        }
    }
    if !sweep_only {
        tracing_cost(&rt, &sim.url, rate, secs, agent_per_k);
        features_cost(&rt, &sim.url, rate, secs, reps);
    }
    pacing(&rt, 1.5 * rate, secs.min(5));

    // 2. Rate sweep: at each rate the bare client, then the agent.
    println!();
    println!(
        "2. rate sweep, {secs} s per client per step; at each rate the bare client, then the agent"
    );
    println!("   overhead = the client's TTFT minus the simulator's measured server-side TTFT");
    println!(
        "   (request's arrival at its socket -> first token handed to the body), same quantile,"
    );
    println!("   same run;");
    println!("   srv-cfg = the simulator's own lateness against its configured {TTFT_MS} ms;");
    println!(
        "   a client holds a rate with >= 99% achieved and ok and adds at most 10 ms of TTFT p99;"
    );
    println!("   the simulator keeps up while its own lateness p99 is at most 10 ms");
    println!(
        "   {:>7} {:>6} {:>9} {:>8} {:>9} {:>9} {:>9} {:>8} {:>10} {:>10}  holds  sim keeps up",
        "offered",
        "client",
        "achieved",
        "ok/sent",
        "ovh p50",
        "ovh p99",
        "srv-cfg99",
        "lag99",
        "client cpu",
        "sim cpu"
    );
    let mut held = [0.0f64; 2]; // bare, agent
    let mut failed_at: [Option<f64>; 2] = [None, None];
    let mut overheads: Vec<(f64, f64, f64)> = Vec::new(); // agent's, by rate
    // The highest rate at which the simulator kept up and the bare client held.
    let mut ceiling = 0.0f64;
    // Whether the simulator kept up in the agent's run at the rate the agent stopped holding.
    let mut sim_kept_up_at_agent_failure = true;
    for r in [250.0, 500.0, 1000.0, 1500.0, 2000.0, 2500.0, 3000.0, 4000.0] {
        for c in 0..2 {
            if failed_at[c].is_some() {
                continue;
            }
            let Step {
                holds,
                keeps_up,
                ovh50,
                ovh99,
            } = sweep_step(&rt, &sim, c == 1, r, secs);
            if c == 0 && holds && keeps_up {
                ceiling = r;
            }
            if c == 1 {
                overheads.push((r, ovh50, ovh99));
            }
            // A client whose simulator fell behind is not judged at that rate or above.
            if holds && keeps_up {
                held[c] = r;
            } else {
                failed_at[c] = Some(r);
                if c == 1 {
                    sim_kept_up_at_agent_failure = keeps_up;
                }
            }
        }
        if failed_at.iter().all(Option::is_some) {
            break;
        }
    }
    let [held_bare, held_agent] = held;
    println!("   highest rate held: bare client {held_bare:.0} req/s, agent {held_agent:.0} req/s");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match failed_at {
        [_, None] => println!("   the agent held every rate tried"),
        [_, Some(a)] if !sim_kept_up_at_agent_failure => println!(
            "   stopped at {a:.0} req/s by the simulator: it fell behind its own schedule; it shares \
             {cores} cores and the loopback TCP stack with the client"
        ),
        [Some(b), Some(a)] if b <= a => println!(
            "   stopped at {a:.0} req/s by the simulator and the machine it shares, not the agent: \
             the bare client stops at {b:.0} req/s too ({cores} cores for both processes and the \
             loopback TCP stack)"
        ),
        [_, Some(a)] => println!(
            "   limited by the agent: it stops holding at {a:.0} req/s, where the bare client still holds"
        ),
    }
    // The agent's overhead at half the ceiling the bare client and the
    // simulator reach together on this machine: the sweep's step at that rate
    // (if it had one) and steps of its own, `reps` in all. A p99 over one
    // step moves with whatever else the shared machine ran then, so the
    // figure is their median; every step is printed.
    println!("   ceiling (simulator keeps up, bare client holds): {ceiling:.0} req/s");
    if ceiling > 0.0 {
        let half = ceiling / 2.0;
        println!("   the agent at half the ceiling, {reps} steps:");
        let (mut p50s, mut p99s): (Vec<f64>, Vec<f64>) = overheads
            .iter()
            .filter(|o| o.0 == half)
            .map(|o| (o.1, o.2))
            .unzip();
        while (p50s.len() as u64) < reps {
            let step = sweep_step(&rt, &sim, true, half, secs);
            p50s.push(step.ovh50);
            p99s.push(step.ovh99);
        }
        let list = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (all50, all99) = (list(&p50s), list(&p99s));
        println!(
            "   agent at {half:.0} req/s (half the {ceiling:.0} req/s ceiling): TTFT overhead p50 {:.3} ms (goal < 0.5), p99 {:.3} ms (goal < 1); median of {reps} steps (p50 {all50}; p99 {all99})",
            median(&mut p50s),
            median(&mut p99s)
        );
    }
    // The soak runs at half the ceiling (half what the agent held without one).
    let soak_rate = if ceiling > 0.0 { ceiling } else { held_agent } / 2.0;

    // 3. Memory over a soak at half the ceiling.
    if soak > 0 && soak_rate > 0.0 {
        let r = soak_rate;
        println!();
        println!("3. agent resident memory over {soak} s at {r:.0} req/s");
        let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sampler = {
            let samples = samples.clone();
            rt.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(10));
                loop {
                    tick.tick().await;
                    samples
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(rss_kib());
                }
            })
        };
        let run = rt.block_on(agent(&sim.url, r, soak));
        sampler.abort();
        let s = samples.lock().unwrap_or_else(|e| e.into_inner()).clone();
        println!(
            "   RSS every 10 s (MiB): {}",
            s.iter()
                .map(|k| format!("{:.1}", *k as f64 / 1024.0))
                .collect::<Vec<_>>()
                .join(" ")
        );
        if s.len() >= 4 {
            let warm = s[s.len() / 3] as f64;
            let last = *s.last().unwrap_or(&0) as f64;
            println!(
                "   after warm-up: {:.1} MiB -> {:.1} MiB ({:+.1}%)",
                warm / 1024.0,
                last / 1024.0,
                100.0 * (last - warm) / warm
            );
        }
        println!("   {} ok, {} failed", run.ok, run.failed);
    }
}

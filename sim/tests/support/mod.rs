//! Shared test helpers: a real simulator on 127.0.0.1:0, a reqwest client, and an SSE reader
//! that timestamps each event as it arrives.

#![allow(dead_code)] // not every test binary uses every helper

pub mod prom;

use std::time::Duration;

use serde_json::Value;
use stampede_sim::{RunningSim, SimConfig};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

/// A running simulator that shuts down when dropped.
pub struct Sim {
    pub sim: RunningSim,
    pub shutdown: CancellationToken,
    _guard: DropGuard,
}

impl Sim {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }
}

/// Fast settings for tests.
pub fn fast_cfg() -> SimConfig {
    SimConfig {
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(1),
        output_tokens: 8,
        model: "test-model".to_owned(),
        ..SimConfig::default()
    }
}

pub async fn start(cfg: SimConfig) -> Sim {
    let shutdown = CancellationToken::new();
    let sim = stampede_sim::start(cfg, "127.0.0.1:0".parse().expect("addr"), shutdown.clone())
        .await
        .expect("start simulator");
    Sim {
        sim,
        _guard: shutdown.clone().drop_guard(),
        shutdown,
    }
}

/// Settings with the batching engine on: fast steps, a small batch.
pub fn engine_cfg(engine: stampede_sim::EngineConfig) -> SimConfig {
    SimConfig {
        engine: Some(engine),
        ..fast_cfg()
    }
}

/// Scrapes and strictly parses `/metrics`.
pub async fn scrape(sim: &Sim) -> prom::Page {
    let resp = client()
        .get(sim.url("/metrics"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = resp.text().await.expect("body");
    prom::parse(&text).unwrap_or_else(|e| {
        panic!(
            "invalid Prometheus text: {e}
{text}"
        )
    })
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().expect("client")
}

pub fn h2c_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client")
}

/// One SSE event: its arrival time and its `data:` payload.
#[derive(Debug)]
pub struct Event {
    pub at: Instant,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).expect("event data is JSON")
    }
}

/// Reads SSE events from a streaming response, splitting on blank lines.
pub struct SseReader {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl SseReader {
    pub fn new(resp: reqwest::Response) -> Self {
        assert_eq!(resp.status(), 200);
        let ct = resp.headers()["content-type"].to_str().expect("ascii");
        assert!(ct.starts_with("text/event-stream"), "content-type {ct}");
        Self {
            resp,
            buf: Vec::new(),
        }
    }

    /// The next event, or `None` at the end of the body.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let raw: Vec<u8> = self.buf.drain(..pos + 2).collect();
                let text = String::from_utf8(raw).expect("utf8");
                let data = text
                    .trim_end()
                    .strip_prefix("data: ")
                    .unwrap_or_else(|| panic!("not a data event: {text:?}"));
                return Some(Event {
                    at: Instant::now(),
                    data: data.to_owned(),
                });
            }
            let chunk = self.resp.chunk().await.expect("body chunk")?;
            self.buf.extend_from_slice(&chunk);
        }
    }

    /// All remaining events; asserts nothing trails the last one.
    pub async fn collect(mut self) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(e) = self.next().await {
            events.push(e);
        }
        assert!(self.buf.is_empty(), "trailing bytes {:?}", self.buf);
        events
    }
}

/// A chat request body with a 4-word prompt.
pub fn chat_body(extra: Value) -> Value {
    let mut body = serde_json::json!({
        "model": "test-model",
        "messages": [{"role": "user", "content": "say something nice please"}],
    });
    merge(&mut body, extra);
    body
}

/// A completions request body with a 3-word prompt.
pub fn completion_body(extra: Value) -> Value {
    let mut body = serde_json::json!({"model": "test-model", "prompt": "once upon a"});
    merge(&mut body, extra);
    body
}

fn merge(body: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
}

/// Polls `/sim/stats` until `pred` holds (the counters are updated concurrently).
pub async fn wait_stats(
    sim: &Sim,
    pred: impl Fn(&stampede_sim::StatsSnapshot) -> bool,
) -> stampede_sim::StatsSnapshot {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let snap = sim.sim.stats.snapshot();
        if pred(&snap) || Instant::now() > deadline {
            return snap;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

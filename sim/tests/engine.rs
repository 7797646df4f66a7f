//! The batching engine through HTTP: queueing, the bounded waiting queue, context length,
//! and the prefix-cache hit rate seen in `/metrics`.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use stampede_sim::{EngineConfig, OverloadStatus, SimConfig};
use support::{SseReader, client, completion_body, engine_cfg, scrape, start};
use tokio::time::Instant;

fn small_engine() -> EngineConfig {
    EngineConfig {
        max_num_seqs: 2,
        step_base: Duration::from_millis(2),
        step_per_seq: Duration::ZERO,
        prefill_per_token: Duration::ZERO,
        ..EngineConfig::default()
    }
}

/// Sends `n` streaming requests at once; returns each one's TTFT (to the first content token).
async fn concurrent_ttfts(sim: &support::Sim, n: usize) -> Vec<Duration> {
    let c = client();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let req = c.post(sim.url("/v1/completions")).json(&completion_body(
                json!({"stream": true, "prompt": format!("p{i}")}),
            ));
            tokio::spawn(async move {
                let sent = Instant::now();
                let mut r = SseReader::new(req.send().await.expect("send"));
                let first = r.next().await.expect("first token").at - sent;
                while r.next().await.is_some() {}
                first
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn ttft_rises_when_concurrency_exceeds_max_num_seqs() {
    let sim = start(SimConfig {
        output_tokens: 20,
        ..engine_cfg(small_engine())
    })
    .await;
    let within = concurrent_ttfts(&sim, 2).await;
    let beyond = concurrent_ttfts(&sim, 6).await;
    let max = |v: &[Duration]| v.iter().copied().max().unwrap_or_default();
    // 20 tokens at ≥ 2 ms per step: a request holds its slot ≥ 40 ms, so with 6 requests
    // on 2 slots the last ones wait two whole requests (≥ 80 ms); within the batch the first
    // token comes after one step.
    assert!(max(&within) < Duration::from_millis(40), "{within:?}");
    assert!(max(&beyond) >= Duration::from_millis(80), "{beyond:?}");
}

#[tokio::test]
async fn full_waiting_queue_is_refused_with_the_configured_status() {
    let sim = start(SimConfig {
        output_tokens: 50,
        ..engine_cfg(EngineConfig {
            max_num_seqs: 1,
            max_waiting: 1,
            queue_full_status: OverloadStatus::ServiceUnavailable,
            ..small_engine()
        })
    })
    .await;
    let c = client();
    let url = sim.url("/v1/completions");
    let running = c
        .post(&url)
        .json(&completion_body(json!({"stream": true})))
        .send()
        .await
        .expect("send");
    assert_eq!(running.status(), 200);
    // Let the engine admit it, so the next one waits.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let waiting = c
        .post(&url)
        .json(&completion_body(json!({"stream": true})))
        .send()
        .await
        .expect("send");
    assert_eq!(waiting.status(), 200);
    let refused = c
        .post(&url)
        .json(&completion_body(json!({})))
        .send()
        .await
        .expect("send");
    assert_eq!(refused.status(), 503);
    let v: Value = refused.json().await.expect("json");
    assert_eq!(v["error"]["type"], "server_error");
    let snap = sim.sim.stats.snapshot();
    assert_eq!((snap.requests_queue_full, snap.requests_rejected), (1, 0));
    let page = scrape(&sim).await;
    assert_eq!(page.get("vllm:num_requests_running"), Some(1.0));
    assert_eq!(page.get("vllm:num_requests_waiting"), Some(1.0));
    drop((running, waiting));
}

#[tokio::test]
async fn context_longer_than_max_model_len_gets_400() {
    let sim = start(SimConfig {
        max_model_len: Some(10),
        ..engine_cfg(small_engine())
    })
    .await;
    let c = client();
    // 3 prompt words + 8 requested tokens > 10.
    let resp = c
        .post(sim.url("/v1/completions"))
        .json(&completion_body(json!({"max_tokens": 8})))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let msg = v["error"]["message"].as_str().expect("message");
    assert!(msg.contains("maximum context length is 10 tokens"), "{msg}");
    assert!(
        msg.contains("11 tokens (3 in the messages, 8 in the completion)"),
        "{msg}"
    );
    // Without max_tokens the output is cut to the room left: 10 - 3 = 7 tokens.
    let v: Value = c
        .post(sim.url("/v1/completions"))
        .json(&completion_body(json!({})))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(v["usage"]["completion_tokens"], 7);
    assert_eq!(sim.sim.stats.requests_rejected(), 1);
}

#[tokio::test]
async fn prefix_cache_hit_rate_matches_the_analytic_expectation() {
    const BLOCK: usize = 16;
    const GROUPS: usize = 4;
    const REQUESTS: usize = 120;
    let shared = 4 * BLOCK; // shared prefix: 64 words = 4 full blocks
    let unique = 40; // per-request suffix
    let sim = start(SimConfig {
        output_tokens: 2,
        ..engine_cfg(EngineConfig {
            max_num_seqs: 16,
            block_size: BLOCK as u32,
            step_base: Duration::from_millis(1),
            ..small_engine()
        })
    })
    .await;
    let c = client();
    // Request i uses prefix group (i * 7) % GROUPS (every group appears early) and a suffix
    // nobody else has. Expected hits: every request but the first of each group hits its
    // whole shared prefix (block-aligned), and nothing else.
    for i in 0..REQUESTS {
        let g = (i * 7) % GROUPS;
        let prefix: Vec<String> = (0..shared).map(|w| format!("g{g}w{w}")).collect();
        let suffix: Vec<String> = (0..unique).map(|w| format!("r{i}u{w}")).collect();
        let prompt = format!("{} {}", prefix.join(" "), suffix.join(" "));
        let resp = c
            .post(sim.url("/v1/completions"))
            .json(&completion_body(json!({"prompt": prompt})))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200);
    }
    let page = scrape(&sim).await;
    let queries = page
        .get("vllm:prefix_cache_queries_total")
        .expect("queries");
    let hits = page.get("vllm:prefix_cache_hits_total").expect("hits");
    let prompt_len = (shared + unique) as f64;
    assert_eq!(queries, REQUESTS as f64 * prompt_len);
    let expected = ((REQUESTS - GROUPS) * shared) as f64 / (REQUESTS as f64 * prompt_len);
    let measured = hits / queries;
    assert!(
        (measured - expected).abs() <= 0.02,
        "hit rate {measured:.4} vs expected {expected:.4}"
    );
    assert_eq!(page.get("vllm:kv_cache_usage_perc"), Some(0.0));
}

#[tokio::test]
async fn engine_serves_streams_and_metrics_count_them() {
    let sim = start(SimConfig {
        output_tokens: 5,
        ..engine_cfg(small_engine())
    })
    .await;
    let ttfts = concurrent_ttfts(&sim, 4).await;
    assert_eq!(ttfts.len(), 4);
    let snap = support::wait_stats(&sim, |s| s.requests_served == 4).await;
    assert_eq!(snap.output_tokens, 20);
    let page = scrape(&sim).await;
    assert_eq!(page.get("vllm:generation_tokens_total"), Some(20.0));
    assert_eq!(
        page.get("vllm:time_to_first_token_seconds_count"),
        Some(4.0)
    );
    assert_eq!(
        page.get("vllm:inter_token_latency_seconds_count"),
        Some(16.0)
    );
    assert_eq!(
        page.get("vllm:e2e_request_latency_seconds_count"),
        Some(4.0)
    );
    assert_eq!(page.get("vllm:num_requests_running"), Some(0.0));
}

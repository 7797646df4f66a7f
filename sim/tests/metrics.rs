//! `/metrics`: valid Prometheus text with vLLM's names, counters monotonic across scrapes.

mod support;

use serde_json::json;
use support::{SseReader, chat_body, client, engine_cfg, fast_cfg, prom, scrape, start};

/// A model name that needs escaping in label values.
const MODEL: &str = "we\"ird\\model";

const FAMILIES: [(&str, &str); 11] = [
    ("vllm:num_requests_running", "gauge"),
    ("vllm:num_requests_waiting", "gauge"),
    ("vllm:kv_cache_usage_perc", "gauge"),
    ("vllm:prefix_cache_queries_total", "counter"),
    ("vllm:prefix_cache_hits_total", "counter"),
    ("vllm:prompt_tokens_total", "counter"),
    ("vllm:generation_tokens_total", "counter"),
    ("vllm:request_success_total", "counter"),
    ("vllm:time_to_first_token_seconds", "histogram"),
    ("vllm:inter_token_latency_seconds", "histogram"),
    ("vllm:e2e_request_latency_seconds", "histogram"),
];

async fn some_load(sim: &support::Sim, n: usize) {
    let c = client();
    for _ in 0..n {
        let resp = c
            .post(sim.url("/v1/chat/completions"))
            .json(&chat_body(json!({"stream": true, "model": MODEL})))
            .send()
            .await
            .expect("send");
        SseReader::new(resp).collect().await;
    }
}

#[tokio::test]
async fn metrics_are_valid_labelled_and_monotonic() {
    for cfg in [
        fast_cfg(),
        engine_cfg(stampede_sim::EngineConfig::default()),
    ] {
        let sim = start(stampede_sim::SimConfig {
            model: MODEL.to_owned(),
            ..cfg
        })
        .await;
        let empty = scrape(&sim).await;
        for (name, kind) in FAMILIES {
            assert_eq!(
                empty.types.get(name).map(String::as_str),
                Some(kind),
                "{name}"
            );
        }
        for (name, labels) in empty.series.keys() {
            assert!(
                labels.iter().any(|(k, v)| k == "model_name" && v == MODEL),
                "{name} lacks model_name: {labels:?}"
            );
        }
        let mut last = empty;
        for round in 1..=3 {
            some_load(&sim, 2).await;
            support::wait_stats(&sim, |s| s.requests_served == 2 * round).await;
            let page = scrape(&sim).await;
            prom::assert_monotonic(&last, &page);
            assert_eq!(
                page.get("vllm:request_success_total"),
                Some(2.0 * round as f64)
            );
            assert_eq!(
                page.get("vllm:generation_tokens_total"),
                Some(16.0 * round as f64)
            );
            assert_eq!(
                page.get("vllm:prompt_tokens_total"),
                Some(8.0 * round as f64)
            );
            assert_eq!(
                page.get("vllm:time_to_first_token_seconds_count"),
                Some(2.0 * round as f64)
            );
            last = page;
        }
    }
}

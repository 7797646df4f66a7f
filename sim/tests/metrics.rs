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

/// Every family the simulator exposes, with vLLM's type (docs/simulator.md).
const VLLM_FAMILIES: [(&str, &str); 28] = [
    ("vllm:num_requests_running", "gauge"),
    ("vllm:num_requests_waiting", "gauge"),
    ("vllm:engine_sleep_state", "gauge"),
    ("vllm:kv_cache_usage_perc", "gauge"),
    ("vllm:prefix_cache_queries_total", "counter"),
    ("vllm:prefix_cache_hits_total", "counter"),
    ("vllm:num_preemptions_total", "counter"),
    ("vllm:prompt_tokens_total", "counter"),
    ("vllm:prompt_tokens_by_source_total", "counter"),
    ("vllm:prompt_tokens_cached_total", "counter"),
    ("vllm:prompt_tokens_recomputed_total", "counter"),
    ("vllm:generation_tokens_total", "counter"),
    ("vllm:request_success_total", "counter"),
    ("vllm:request_prompt_tokens", "histogram"),
    ("vllm:request_generation_tokens", "histogram"),
    ("vllm:iteration_tokens_total", "histogram"),
    ("vllm:request_max_num_generation_tokens", "histogram"),
    ("vllm:request_params_n", "histogram"),
    ("vllm:request_params_max_tokens", "histogram"),
    ("vllm:time_to_first_token_seconds", "histogram"),
    ("vllm:inter_token_latency_seconds", "histogram"),
    ("vllm:request_time_per_output_token_seconds", "histogram"),
    ("vllm:e2e_request_latency_seconds", "histogram"),
    ("vllm:request_queue_time_seconds", "histogram"),
    ("vllm:request_inference_time_seconds", "histogram"),
    ("vllm:request_prefill_time_seconds", "histogram"),
    ("vllm:request_decode_time_seconds", "histogram"),
    ("vllm:request_prefill_kv_computed_tokens", "histogram"),
];

/// `/metrics` as text and parsed (strictly: TYPE before samples, cumulative buckets,
/// `+Inf` = `_count` per series).
async fn page(sim: &support::Sim) -> (String, prom::Page) {
    let text = client()
        .get(sim.url("/metrics"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("body");
    let parsed = prom::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    (text, parsed)
}

/// `n` concurrent streamed chat requests (4 prompt words, `max_tokens` 8).
async fn concurrent_load(sim: &support::Sim, n: usize) {
    let sends = (0..n).map(|_| async {
        let resp = client()
            .post(sim.url("/v1/chat/completions"))
            .json(&chat_body(json!({"stream": true, "max_tokens": 8})))
            .send()
            .await
            .expect("send");
        SseReader::new(resp).collect().await
    });
    futures_util::future::join_all(sends).await;
}

#[tokio::test]
async fn every_vllm_family_has_help_type_and_valid_series() {
    for (cfg, engine) in [
        (fast_cfg(), false),
        (engine_cfg(stampede_sim::EngineConfig::default()), true),
    ] {
        let sim = start(cfg).await;
        let (_, before) = page(&sim).await;
        concurrent_load(&sim, 3).await;
        support::wait_stats(&sim, |s| s.requests_served == 3).await;
        let (text, after) = page(&sim).await;
        prom::assert_monotonic(&before, &after);
        for (name, kind) in VLLM_FAMILIES {
            // Fixed timelines have no engine steps: that family is absent there.
            if name == "vllm:iteration_tokens_total" && !engine {
                assert!(!after.types.contains_key(name), "{name}");
                continue;
            }
            assert_eq!(
                after.types.get(name).map(String::as_str),
                Some(kind),
                "{name}"
            );
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
        }
        assert_eq!(
            after.types.len(),
            VLLM_FAMILIES.len() - usize::from(!engine)
        );
        for (name, labels) in after.series.keys() {
            for key in ["model_name", "engine"] {
                assert!(
                    labels.iter().any(|(k, _)| k == key),
                    "{name} lacks {key}: {labels:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn request_families_follow_the_engine_state() {
    // One batch slot: of requests arriving together, all but one wait.
    let sim = start(engine_cfg(stampede_sim::EngineConfig {
        max_num_seqs: 1,
        step_base: std::time::Duration::from_millis(2),
        ..stampede_sim::EngineConfig::default()
    }))
    .await;
    let n = 4.0;
    concurrent_load(&sim, 4).await;
    support::wait_stats(&sim, |s| s.requests_served == 4).await;
    let (_, p) = page(&sim).await;
    let get = |name: &str| p.get(name).unwrap_or_else(|| panic!("{name}"));
    // 4 prompt words and 8 tokens per request.
    assert_eq!(get("vllm:request_prompt_tokens_count"), n);
    assert_eq!(get("vllm:request_prompt_tokens_sum"), n * 4.0);
    assert_eq!(get("vllm:request_generation_tokens_sum"), n * 8.0);
    assert_eq!(get("vllm:request_params_max_tokens_sum"), n * 8.0);
    assert_eq!(get("vllm:request_params_n_sum"), n);
    // No full 16-token block: nothing cached, every prompt token computed.
    assert_eq!(get("vllm:request_prefill_kv_computed_tokens_sum"), n * 4.0);
    assert_eq!(get("vllm:prompt_tokens_cached_total"), 0.0);
    assert_eq!(get("vllm:num_preemptions_total"), 0.0);
    // Each step: one token, plus the prompt of a request getting its first.
    assert_eq!(get("vllm:iteration_tokens_total_sum"), n * (4.0 + 8.0));
    assert_eq!(get("vllm:iteration_tokens_total_count"), n * 8.0);
    let queue = get("vllm:request_queue_time_seconds_sum");
    assert!(queue > 0.0, "requests behind the one slot waited: {queue}");
    // Phases add up: queue + prefill + decode = e2e, prefill + decode = inference.
    let prefill = get("vllm:request_prefill_time_seconds_sum");
    let decode = get("vllm:request_decode_time_seconds_sum");
    let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
    assert!(close(
        queue + prefill + decode,
        get("vllm:e2e_request_latency_seconds_sum")
    ));
    assert!(close(
        prefill + decode,
        get("vllm:request_inference_time_seconds_sum")
    ));
    // Per request: decode time over its 7 gaps.
    assert!(close(
        decode / 7.0,
        get("vllm:request_time_per_output_token_seconds_sum")
    ));
}

#[tokio::test]
async fn fixed_timelines_never_queue_and_prefill_for_ttft() {
    let sim = start(fast_cfg()).await;
    concurrent_load(&sim, 3).await;
    support::wait_stats(&sim, |s| s.requests_served == 3).await;
    let (_, p) = page(&sim).await;
    let get = |name: &str| p.get(name).unwrap_or_else(|| panic!("{name}"));
    assert_eq!(get("vllm:request_queue_time_seconds_sum"), 0.0);
    // fast_cfg: 5 ms TTFT, 1 ms ITL, 8 tokens.
    assert!((get("vllm:request_prefill_time_seconds_sum") - 3.0 * 0.005).abs() < 1e-9);
    assert!((get("vllm:request_decode_time_seconds_sum") - 3.0 * 0.007).abs() < 1e-9);
    let computed = p.series.iter().find(|((n, l), _)| {
        n == "vllm:prompt_tokens_by_source_total"
            && l.iter().any(|(k, v)| k == "source" && v == "local_compute")
    });
    assert_eq!(computed.map(|(_, v)| *v), Some(12.0));
}

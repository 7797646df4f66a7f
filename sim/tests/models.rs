//! Several models on one simulator: each its own timing and engine, routed by `model`.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use stampede_sim::{EngineConfig, ModelConfig, SimConfig};
use support::{SseReader, chat_body, client, fast_cfg, scrape, start};
use tokio::time::Instant;

/// `fast` (the default, 20 ms TTFT) and `slow` (80 ms TTFT), both fixed timelines.
fn two_models() -> SimConfig {
    SimConfig {
        model: "fast".to_owned(),
        ttft: Duration::from_millis(20),
        extra_models: vec![ModelConfig {
            name: "slow".to_owned(),
            ttft: Duration::from_millis(80),
            itl: Duration::from_millis(1),
            output_tokens: 4,
            ..ModelConfig::default()
        }],
        ..fast_cfg()
    }
}

/// Streams one chat request (`model`: `None` leaves the field out); the client's TTFT and
/// the model named in the chunks.
async fn stream(sim: &support::Sim, model: Option<&str>) -> (Duration, String) {
    let mut body = chat_body(json!({"stream": true}));
    match model {
        Some(m) => body["model"] = json!(m),
        None => {
            body.as_object_mut().expect("object").remove("model");
        }
    }
    let sent = Instant::now();
    let resp = client()
        .post(sim.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .expect("send");
    let events = SseReader::new(resp).collect().await;
    // Event 0 is the role-only chunk; event 1 carries the first token.
    let first = &events[1];
    let named = first.json()["model"].as_str().expect("model").to_owned();
    (first.at - sent, named)
}

/// The per-model mean of histogram `family` on a page.
fn mean(page: &support::prom::Page, family: &str, model: &str) -> f64 {
    let get = |suffix: &str| {
        page.series
            .iter()
            .find(|((n, labels), _)| {
                *n == format!("{family}{suffix}")
                    && labels.iter().any(|(k, v)| k == "model_name" && v == model)
            })
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{family}{suffix} of {model}"))
    };
    get("_sum") / get("_count")
}

#[tokio::test]
async fn each_model_has_its_own_ttft() {
    let sim = start(two_models()).await;
    for _ in 0..3 {
        let (fast, fast_name) = stream(&sim, Some("fast")).await;
        let (slow, slow_name) = stream(&sim, Some("slow")).await;
        assert_eq!((fast_name.as_str(), slow_name.as_str()), ("fast", "slow"));
        let ms = Duration::from_millis;
        assert!(fast >= ms(20) && fast < ms(75), "fast TTFT {fast:?}");
        assert!(slow >= ms(80) && slow < ms(160), "slow TTFT {slow:?}");
    }
    let page = scrape(&sim).await;
    let ttft = "vllm:time_to_first_token_seconds";
    assert!((mean(&page, ttft, "fast") - 0.020).abs() < 1e-6);
    assert!((mean(&page, ttft, "slow") - 0.080).abs() < 1e-6);
    // The slow model's own output length: 4 tokens per request.
    let generated = "vllm:request_generation_tokens";
    assert_eq!(
        (
            mean(&page, generated, "fast"),
            mean(&page, generated, "slow")
        ),
        (8.0, 4.0)
    );
}

#[tokio::test]
async fn requests_are_routed_by_model_and_unknown_models_are_404() {
    let sim = start(two_models()).await;
    let (_, named) = stream(&sim, None).await;
    assert_eq!(named, "fast", "no model: the first one");
    let (_, named) = stream(&sim, Some("slow")).await;
    assert_eq!(named, "slow");
    let resp = client()
        .post(sim.url("/v1/chat/completions"))
        .json(&chat_body(json!({"model": "nope"})))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 404);
    let err: Value = resp.json().await.expect("json");
    assert_eq!(err["error"]["code"], "model_not_found");

    let stats = |q: &'static str| {
        let url = sim.url(&format!("/sim/stats{q}"));
        async move { client().get(url).send().await.expect("send") }
    };
    let all: Value = stats("").await.json().await.expect("json");
    assert_eq!(
        (
            all["requests_started"].as_u64(),
            all["requests_served"].as_u64()
        ),
        (Some(3), Some(2))
    );
    assert_eq!(all["requests_rejected"], 1);
    for (q, served, tokens) in [("?model=fast", 1, 8), ("?model=slow", 1, 4)] {
        let one: Value = stats(q).await.json().await.expect("json");
        assert_eq!(one["requests_started"], 1, "{q}: {one}");
        assert_eq!(one["requests_served"], served, "{q}: {one}");
        assert_eq!(one["output_tokens"], tokens, "{q}: {one}");
        assert_eq!(one["requests_rejected"], 0, "{q}: {one}");
    }
    assert_eq!(stats("?model=nope").await.status(), 404);
}

#[tokio::test]
async fn models_are_listed_and_labelled_in_metrics() {
    let mut cfg = two_models();
    cfg.extra_models.push(ModelConfig {
        name: "batched".to_owned(),
        max_model_len: Some(1000),
        engine: Some(EngineConfig {
            step_base: Duration::from_millis(1),
            ..EngineConfig::default()
        }),
        ..ModelConfig::default()
    });
    let sim = start(cfg).await;
    let list: Value = client()
        .get(sim.url("/v1/models"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let ids: Vec<_> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, [json!("fast"), json!("slow"), json!("batched")]);
    assert_eq!(list["data"][2]["max_model_len"], 1000);

    for m in ["fast", "slow", "batched"] {
        stream(&sim, Some(m)).await;
    }
    // The parser refuses a repeated HELP/TYPE, so each family is written once.
    let page = scrape(&sim).await;
    let success = |m: &str| {
        page.series
            .iter()
            .find(|((n, l), _)| {
                n == "vllm:request_success_total"
                    && l.iter().any(|(k, v)| k == "model_name" && v == m)
            })
            .map(|(_, v)| *v)
    };
    for m in ["fast", "slow", "batched"] {
        assert_eq!(success(m), Some(1.0), "{m}");
    }
    for (name, kind) in &page.types {
        let models: std::collections::BTreeSet<&str> = page
            .series
            .keys()
            .filter(|(n, _)| n == name || (kind == "histogram" && n.starts_with(name.as_str())))
            .filter_map(|(_, l)| {
                l.iter()
                    .find(|(k, _)| k == "model_name")
                    .map(|(_, v)| v.as_str())
            })
            .collect();
        // Engine steps exist only in the engine's model.
        let expected: &[&str] = if name == "vllm:iteration_tokens_total" {
            &["batched"]
        } else {
            &["batched", "fast", "slow"]
        };
        assert_eq!(models.into_iter().collect::<Vec<_>>(), expected, "{name}");
    }
}

#[tokio::test]
async fn duplicate_or_empty_model_names_are_refused() {
    for name in ["fast", ""] {
        let mut cfg = two_models();
        cfg.extra_models[0].name = name.to_owned();
        let err = stampede_sim::start(
            cfg,
            "127.0.0.1:0".parse().expect("addr"),
            Default::default(),
        )
        .await
        .expect_err("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("`name` of models[0]"), "{err}");
    }
}

//! Non-streaming responses, errors, models, health and stats.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use stampede_sim::{SimConfig, StatsSnapshot};
use support::{chat_body, client, completion_body, fast_cfg, start, wait_stats};
use tokio::time::Instant;

async fn post(url: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let resp = client()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

#[tokio::test]
async fn non_streaming_chat_body_and_usage() {
    let sim = start(fast_cfg()).await;
    let body = chat_body(json!({"max_tokens": 3}));
    let (status, v) = post(&sim.url("/v1/chat/completions"), body.to_string()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "test-model");
    assert!(
        v["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("chatcmpl-"))
    );
    let choice = &v["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    let text = choice["message"]["content"].as_str().expect("content");
    assert_eq!(text.split_whitespace().count(), 3);
    assert_eq!(choice["finish_reason"], "length");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7})
    );
}

#[tokio::test]
async fn non_streaming_completion_counts_content_parts_and_token_ids() {
    let sim = start(fast_cfg()).await;
    let (status, v) = post(
        &sim.url("/v1/completions"),
        completion_body(json!({})).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "text_completion");
    assert_eq!(
        v["choices"][0]["text"]
            .as_str()
            .map(|t| t.split_whitespace().count()),
        Some(8)
    );
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    assert_eq!(v["usage"]["completion_tokens"], 8);

    let (_, v) = post(
        &sim.url("/v1/completions"),
        json!({"prompt": [1, 2, 3, 4, 5]}).to_string(),
    )
    .await;
    assert_eq!(v["usage"]["prompt_tokens"], 5);

    let parts = json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "two words"}, {"type": "image_url", "image_url": {"url": "x"}}
    ]}]});
    let (_, v) = post(&sim.url("/v1/chat/completions"), parts.to_string()).await;
    assert_eq!(v["usage"]["prompt_tokens"], 2);
}

#[tokio::test]
async fn non_streaming_response_waits_for_the_last_token() {
    let cfg = SimConfig {
        ttft: Duration::from_millis(20),
        itl: Duration::from_millis(5),
        output_tokens: 5,
        ..fast_cfg()
    };
    let sim = start(cfg).await;
    let sent = Instant::now();
    let (status, _) = post(
        &sim.url("/v1/chat/completions"),
        chat_body(json!({})).to_string(),
    )
    .await;
    assert_eq!(status, 200);
    let took = sent.elapsed();
    assert!(took >= Duration::from_millis(40), "answered after {took:?}");
    assert!(took < Duration::from_millis(200), "answered after {took:?}");
}

#[tokio::test]
async fn malformed_requests_get_400_openai_errors() {
    let sim = start(fast_cfg()).await;
    let chat = sim.url("/v1/chat/completions");
    let cmpl = sim.url("/v1/completions");
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        (&chat, "{not json".to_owned(), None),
        (&chat, "[]".to_owned(), None),
        (
            &chat,
            json!({"model": "test-model"}).to_string(),
            Some("messages"),
        ),
        (
            &chat,
            json!({"messages": "hi"}).to_string(),
            Some("messages"),
        ),
        (
            &chat,
            chat_body(json!({"max_tokens": 0})).to_string(),
            Some("max_tokens"),
        ),
        (
            &chat,
            chat_body(json!({"max_tokens": -1})).to_string(),
            Some("max_tokens"),
        ),
        (
            &chat,
            chat_body(json!({"max_completion_tokens": 0})).to_string(),
            Some("max_completion_tokens"),
        ),
        (
            &cmpl,
            json!({"model": "test-model"}).to_string(),
            Some("prompt"),
        ),
        (
            &cmpl,
            completion_body(json!({"max_tokens": 0})).to_string(),
            Some("max_tokens"),
        ),
        (&cmpl, String::new(), None),
    ];
    let n = cases.len() as u64;
    for (url, body, param) in cases {
        let (status, v) = post(url, body.clone()).await;
        assert_eq!(status, 400, "{body}: {v}");
        let err = &v["error"];
        assert_eq!(err["type"], "invalid_request_error", "{v}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(err["code"].is_null());
        match param {
            Some(p) => assert_eq!(err["param"], p, "{body}: {v}"),
            None => assert!(err["param"].is_null()),
        }
    }
    let snap = sim.sim.stats.snapshot();
    assert_eq!((snap.requests_started, snap.requests_rejected), (n, n));
    assert_eq!((snap.requests_served, snap.prompt_tokens), (0, 0));
}

#[tokio::test]
async fn wrong_model_gets_404() {
    let sim = start(fast_cfg()).await;
    for (path, body) in [
        (
            "/v1/chat/completions",
            chat_body(json!({"model": "gpt-x", "stream": true})),
        ),
        (
            "/v1/completions",
            completion_body(json!({"model": "gpt-x"})),
        ),
    ] {
        let (status, v) = post(&sim.url(path), body.to_string()).await;
        assert_eq!(status, 404, "{v}");
        assert_eq!(v["error"]["message"], "The model `gpt-x` does not exist.");
        assert_eq!(v["error"]["param"], "model");
    }
    assert_eq!(sim.sim.stats.requests_rejected(), 2);
    // Omitting the model is accepted and served by the one model.
    let (status, _) = post(
        &sim.url("/v1/completions"),
        json!({"prompt": "x", "max_tokens": 1}).to_string(),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn models_health_and_unknown_routes() {
    let sim = start(fast_cfg()).await;
    let c = client();
    let models: Value = c
        .get(sim.url("/v1/models"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "test-model");
    assert_eq!(models["data"][0]["object"], "model");
    assert_eq!(models["data"].as_array().map(Vec::len), Some(1));

    let health = c.get(sim.url("/health")).send().await.expect("send");
    assert_eq!(health.status(), 200);

    let missing = c.get(sim.url("/v2/nope")).send().await.expect("send");
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn sim_stats_counts_served_requests() {
    let sim = start(fast_cfg()).await;
    let c = client();
    let chat = sim.url("/v1/chat/completions");
    c.post(&chat)
        .json(&chat_body(json!({"max_tokens": 2})))
        .send()
        .await
        .expect("send");
    let streamed = c
        .post(&chat)
        .json(&chat_body(json!({"stream": true})))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("body");
    assert!(streamed.ends_with("data: [DONE]\n\n"));
    c.post(sim.url("/v1/completions"))
        .json(&completion_body(json!({"stream": true, "max_tokens": 3})))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("body");
    c.post(&chat)
        .json(&chat_body(json!({"model": "other"})))
        .send()
        .await
        .expect("send");

    wait_stats(&sim, |s| s.requests_served == 3).await;
    let snap: StatsSnapshot = c
        .get(sim.url("/sim/stats"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("stats JSON");
    let expected = StatsSnapshot {
        requests_started: 4,
        requests_served: 3,
        requests_rejected: 1,
        prompt_tokens: 4 + 4 + 3,
        output_tokens: 2 + 8 + 3,
        requests_queue_full: 0,
        faults_injected: stampede_sim::FaultCounts::default(),
        requests_traced: 0,
        peak_running: 1,
    };
    assert_eq!(snap, expected);
}

#[tokio::test]
async fn graceful_shutdown_stops_the_server() {
    let sim = start(fast_cfg()).await;
    let addr = sim.sim.addr;
    sim.shutdown.cancel();
    let support::Sim { sim: running, .. } = sim;
    tokio::time::timeout(Duration::from_secs(5), running.wait())
        .await
        .expect("stops in time")
        .expect("clean stop");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn traceparent_headers_are_kept_for_inspection() {
    let sim = start(fast_cfg()).await;
    let c = client();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for header in [Some(traceparent), None] {
        let mut request = c.post(sim.url("/v1/chat/completions"));
        if let Some(value) = header {
            request = request.header("traceparent", value);
        }
        let resp = request.json(&chat_body(json!({}))).send().await;
        assert_eq!(resp.expect("send").status(), 200);
    }
    let get = |path: &str| c.get(sim.url(path)).send();
    let kept: stampede_sim::Traceparents = get("/sim/traceparents")
        .await
        .expect("send")
        .json()
        .await
        .expect("JSON");
    assert_eq!(kept.seen, 1);
    assert_eq!(kept.recent, [traceparent]);
    let stats: StatsSnapshot = get("/sim/stats")
        .await
        .expect("send")
        .json()
        .await
        .expect("JSON");
    assert_eq!((stats.requests_started, stats.requests_traced), (2, 1));
}

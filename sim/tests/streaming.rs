//! Streaming (SSE) behaviour of both generation endpoints, timing, and client disconnects.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use stampede_sim::SimConfig;
use support::{SseReader, chat_body, client, completion_body, fast_cfg, start, wait_stats};
use tokio::time::Instant;

#[tokio::test]
async fn chat_stream_has_role_chunk_tokens_usage_and_done() {
    let sim = start(fast_cfg()).await;
    let body = chat_body(json!({
        "stream": true, "max_tokens": 5, "stream_options": {"include_usage": true}
    }));
    let resp = client()
        .post(sim.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .expect("send");
    let events = SseReader::new(resp).collect().await;
    // role + 5 tokens (max_tokens < output_tokens) + usage + [DONE]
    assert_eq!(events.len(), 8, "{events:#?}");

    let role = events[0].json();
    assert_eq!(role["object"], "chat.completion.chunk");
    assert_eq!(role["model"], "test-model");
    assert_eq!(
        role["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert!(role["choices"][0]["finish_reason"].is_null());
    let id = role["id"].as_str().expect("id").to_owned();

    for (i, e) in events[1..6].iter().enumerate() {
        let c = e.json();
        assert_eq!(c["id"], id.as_str());
        let content = c["choices"][0]["delta"]["content"].as_str().expect("text");
        assert!(content.ends_with(' ') && content.len() > 1, "{content:?}");
        let finish = &c["choices"][0]["finish_reason"];
        if i == 4 {
            assert_eq!(finish, "length");
        } else {
            assert!(finish.is_null());
        }
    }

    let usage = events[6].json();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9})
    );
    assert_eq!(events[7].data, "[DONE]");

    let snap = wait_stats(&sim, |s| s.requests_served == 1).await;
    assert_eq!(snap.requests_served, 1);
    assert_eq!(snap.output_tokens, 5);
    assert_eq!(snap.prompt_tokens, 4);
}

#[tokio::test]
async fn chat_stream_without_usage_is_capped_by_output_tokens() {
    let sim = start(fast_cfg()).await;
    // max_completion_tokens above output_tokens (8): the simulator's length wins.
    let body = chat_body(json!({"stream": true, "max_completion_tokens": 100}));
    let resp = client()
        .post(sim.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .expect("send");
    let events = SseReader::new(resp).collect().await;
    // role + 8 tokens + [DONE], no usage chunk
    assert_eq!(events.len(), 10);
    assert!(
        events[1..9]
            .iter()
            .all(|e| e.json()["choices"][0]["delta"]["content"].is_string())
    );
    assert_eq!(events[8].json()["choices"][0]["finish_reason"], "length");
    assert_eq!(events[9].data, "[DONE]");
}

#[tokio::test]
async fn completions_stream_has_text_chunks_and_no_role_chunk() {
    let sim = start(fast_cfg()).await;
    let body = completion_body(json!({
        "stream": true, "max_tokens": 3, "stream_options": {"include_usage": true}
    }));
    let resp = client()
        .post(sim.url("/v1/completions"))
        .json(&body)
        .send()
        .await
        .expect("send");
    let events = SseReader::new(resp).collect().await;
    assert_eq!(events.len(), 5, "{events:#?}"); // 3 tokens + usage + [DONE]
    for (i, e) in events[..3].iter().enumerate() {
        let c = e.json();
        assert_eq!(c["object"], "text_completion");
        assert!(
            c["choices"][0]["text"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        );
        assert_eq!(c["choices"][0]["finish_reason"] == "length", i == 2);
    }
    assert_eq!(
        events[3].json()["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6})
    );
    assert_eq!(events[4].data, "[DONE]");
}

#[tokio::test]
async fn streams_over_h2c() {
    let sim = start(fast_cfg()).await;
    let resp = support::h2c_client()
        .post(sim.url("/v1/chat/completions"))
        .json(&chat_body(json!({"stream": true, "max_tokens": 2})))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let events = SseReader::new(resp).collect().await;
    assert_eq!(events.len(), 4); // role + 2 tokens + [DONE]
}

#[tokio::test]
async fn first_content_token_arrives_after_ttft_and_tokens_do_not_drift() {
    let ttft = Duration::from_millis(40);
    let itl = Duration::from_millis(10);
    let n = 10u32;
    let sim = start(SimConfig {
        ttft,
        itl,
        output_tokens: n,
        ..fast_cfg()
    })
    .await;
    let client = client();
    // Warm the connection so the measurement is not a TCP handshake.
    client
        .get(sim.url("/health"))
        .send()
        .await
        .expect("warm-up");

    let sent = Instant::now();
    let resp = client
        .post(sim.url("/v1/chat/completions"))
        .json(&chat_body(json!({"stream": true})))
        .send()
        .await
        .expect("send");
    let events = SseReader::new(resp).collect().await;
    assert_eq!(events.len(), n as usize + 2);
    let role_at = events[0].at - sent;
    let first = events[1].at - sent;
    let last = events[n as usize].at - sent;
    // Generous upper bounds: the box is a shared 2-core machine.
    let slack = Duration::from_millis(40);
    assert!(
        role_at < first,
        "role chunk {role_at:?} must precede content {first:?}"
    );
    assert!(
        first >= ttft,
        "first content token after {first:?} < ttft {ttft:?}"
    );
    assert!(first < ttft + slack, "first content token late: {first:?}");
    let last_due = ttft + itl * (n - 1);
    assert!(last >= last_due, "last token {last:?} before {last_due:?}");
    assert!(
        last < last_due + slack,
        "last token drifted: {last:?} vs {last_due:?}"
    );
}

#[tokio::test]
async fn dropped_stream_is_not_served_and_generation_stops() {
    let n = 300u32;
    let sim = start(SimConfig {
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(2),
        output_tokens: n,
        ..fast_cfg()
    })
    .await;
    let client = client();
    let resp = client
        .post(sim.url("/v1/chat/completions"))
        .json(&chat_body(json!({"stream": true})))
        .send()
        .await
        .expect("send");
    let mut reader = SseReader::new(resp);
    for _ in 0..5 {
        reader.next().await.expect("event");
    }
    drop(reader);
    drop(client);

    // Longer than the whole stream would have taken (5 + 2 * 300 ms).
    tokio::time::sleep(Duration::from_millis(800)).await;
    let snap = sim.sim.stats.snapshot();
    assert_eq!(snap.requests_started, 1);
    assert_eq!(snap.requests_served, 0);
    assert!(
        snap.output_tokens < u64::from(n) / 3,
        "server kept generating for a gone client: {snap:?}"
    );

    // The server is still healthy afterwards.
    let ok: Value = support::client()
        .post(sim.url("/v1/completions"))
        .json(&completion_body(json!({"max_tokens": 1})))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(ok["usage"]["completion_tokens"], 1);
    assert_eq!(sim.sim.stats.requests_served(), 1);
}

#[tokio::test]
async fn measured_first_token_latency_is_served_and_resettable() {
    let cfg = SimConfig {
        ttft: Duration::from_millis(30),
        ..fast_cfg()
    };
    let sim = start(cfg).await;
    let latency = |sim: &support::Sim| {
        let url = sim.url("/sim/latency");
        async move {
            let v: Value = client()
                .get(url)
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("json");
            v
        }
    };
    assert_eq!(latency(&sim).await["first_token"]["count"], 0);
    for _ in 0..3 {
        let resp = client()
            .post(sim.url("/v1/chat/completions"))
            .json(&chat_body(json!({"stream": true})))
            .send()
            .await
            .expect("send");
        SseReader::new(resp).collect().await;
    }
    // A non-streaming request has no first token to measure.
    client()
        .post(sim.url("/v1/chat/completions"))
        .json(&chat_body(json!({})))
        .send()
        .await
        .expect("send");
    let v = latency(&sim).await;
    assert_eq!(v["first_token"]["count"], 3, "{v}");
    for q in ["p50_ms", "p99_ms", "max_ms", "mean_ms"] {
        let ms = v["first_token"][q].as_f64().expect(q);
        // At least the configured TTFT (the timer never fires early), and not absurdly late.
        assert!((30.0..60.0).contains(&ms), "{q} = {ms}: {v}");
    }
    let status = client()
        .delete(sim.url("/sim/latency"))
        .send()
        .await
        .expect("delete")
        .status();
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT);
    assert_eq!(latency(&sim).await["first_token"]["count"], 0);
    assert_eq!(
        sim.sim.stats.latency().first_token.count,
        0,
        "the library view agrees"
    );
}

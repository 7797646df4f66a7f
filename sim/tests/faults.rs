//! Fault injection: each mode as a client sees it, the admin endpoint, counters, seeding.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use stampede_sim::{EngineConfig, FaultConfig, SimConfig};
use support::{Sim, chat_body, client, completion_body, engine_cfg, fast_cfg, start};
use tokio::time::Instant;

async fn set_faults(sim: &Sim, faults: Value) -> reqwest::Response {
    client()
        .post(sim.url("/sim/faults"))
        .json(&faults)
        .send()
        .await
        .expect("send")
}

async fn stream_chat(sim: &Sim) -> reqwest::Response {
    client()
        .post(sim.url("/v1/chat/completions"))
        .json(&chat_body(json!({"stream": true})))
        .send()
        .await
        .expect("send")
}

#[tokio::test]
async fn error_statuses_are_injected_and_counted() {
    let sim = start(fast_cfg()).await;
    for (key, status, kind) in [
        ("error_429", 429, "rate_limit_error"),
        ("error_500", 500, "server_error"),
        ("error_503", 503, "server_error"),
    ] {
        assert_eq!(set_faults(&sim, json!({ key: 1.0 })).await.status(), 200);
        let resp = stream_chat(&sim).await;
        assert_eq!(resp.status(), status, "{key}");
        let v: Value = resp.json().await.expect("json error body");
        assert_eq!(v["error"]["type"], kind, "{key}");
    }
    let f = sim.sim.stats.snapshot().faults_injected;
    assert_eq!((f.error_429, f.error_500, f.error_503), (1, 1, 1));
    assert_eq!(sim.sim.stats.requests_rejected(), 0);
}

#[tokio::test]
async fn cut_stream_ends_without_done_and_with_a_body_error() {
    for cfg in [fast_cfg(), engine_cfg(EngineConfig::default())] {
        let sim = start(SimConfig {
            faults: FaultConfig {
                stream_cut: 1.0,
                ..FaultConfig::default()
            },
            ..cfg
        })
        .await;
        let mut resp = stream_chat(&sim).await;
        assert_eq!(resp.status(), 200);
        let mut body = Vec::new();
        let err = loop {
            match resp.chunk().await {
                Ok(Some(c)) => body.extend_from_slice(&c),
                Ok(None) => panic!("stream ended cleanly: {}", String::from_utf8_lossy(&body)),
                Err(e) => break e,
            }
        };
        assert!(err.is_body() || err.is_decode(), "{err:?}");
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("[DONE]"), "{text}");
        // The cut comes after the role chunk + half of the 8 tokens. The connection
        // is reset, and a reset may discard bytes still in flight to the client, so
        // the client sees at most those events — never more, and never [DONE].
        let events = text.matches("\n\n").count();
        assert!(events <= 1 + 4, "{events} events: {text}");
        assert_eq!(sim.sim.stats.snapshot().faults_injected.stream_cut, 1);
        assert_eq!(sim.sim.stats.requests_served(), 0);

        // Non-streaming: the connection drops before the body is complete (hyper may abort
        // before the buffered status line is even flushed).
        let sent = client()
            .post(sim.url("/v1/completions"))
            .json(&completion_body(json!({})))
            .send()
            .await;
        match sent {
            Ok(resp) => {
                assert_eq!(resp.status(), 200);
                assert!(resp.bytes().await.is_err());
            }
            Err(e) => assert!(e.is_request(), "{e:?}"),
        }
        assert_eq!(sim.sim.stats.snapshot().faults_injected.stream_cut, 2);
    }
}

#[tokio::test]
async fn hang_sends_headers_then_nothing_until_shutdown() {
    let sim = start(SimConfig {
        faults: FaultConfig {
            hang: 1.0,
            ..FaultConfig::default()
        },
        ..fast_cfg()
    })
    .await;
    let resp = stream_chat(&sim).await;
    assert_eq!(resp.status(), 200);
    let mut reader = support::SseReader::new(resp);
    let role = reader.next().await.expect("role chunk");
    assert_eq!(role.json()["choices"][0]["delta"]["role"], "assistant");
    // No token, long after TTFT (5 ms).
    let waited = tokio::time::timeout(Duration::from_millis(300), reader.next()).await;
    assert!(waited.is_err(), "a token arrived: {waited:?}");
    assert_eq!(sim.sim.stats.snapshot().faults_injected.hang, 1);
    // Shutdown is not held up by the hung response.
    sim.shutdown.cancel();
    let support::Sim { sim: running, .. } = sim;
    tokio::time::timeout(Duration::from_secs(5), running.wait())
        .await
        .expect("stops in time")
        .expect("clean stop");
}

#[tokio::test]
async fn malformed_chunk_is_invalid_json_and_the_stream_goes_on() {
    for cfg in [fast_cfg(), engine_cfg(EngineConfig::default())] {
        let sim = start(SimConfig {
            faults: FaultConfig {
                malformed: 1.0,
                ..FaultConfig::default()
            },
            ..cfg
        })
        .await;
        let resp = stream_chat(&sim).await;
        let events = support::SseReader::new(resp).collect().await;
        assert_eq!(events.len(), 1 + 8 + 1);
        let bad: Vec<_> = events
            .iter()
            .filter(|e| e.data != "[DONE]" && serde_json::from_str::<Value>(&e.data).is_err())
            .collect();
        assert_eq!(bad.len(), 1, "{events:#?}");
        assert_eq!(events[9].data, "[DONE]");
        let f = sim.sim.stats.snapshot().faults_injected;
        assert_eq!(f.malformed, 1);

        let resp = client()
            .post(sim.url("/v1/completions"))
            .json(&completion_body(json!({})))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200);
        assert!(resp.json::<Value>().await.is_err());
    }
}

#[tokio::test]
async fn warmup_slows_the_first_requests() {
    let sim = start(SimConfig {
        ttft: Duration::from_millis(20),
        faults: FaultConfig {
            warmup: Duration::from_secs(30),
            warmup_factor: 5.0,
            ..FaultConfig::default()
        },
        ..fast_cfg()
    })
    .await;
    let sent = Instant::now();
    let resp = stream_chat(&sim).await;
    let mut reader = support::SseReader::new(resp);
    reader.next().await.expect("role");
    let first = reader.next().await.expect("token").at - sent;
    // ≈ 5 × 20 ms at the very start of the period.
    assert!(first >= Duration::from_millis(90), "{first:?}");
    // Turning faults off ends the warm-up.
    set_faults(&sim, json!({})).await;
    let sent = Instant::now();
    let resp = stream_chat(&sim).await;
    let mut reader = support::SseReader::new(resp);
    reader.next().await.expect("role");
    let first = reader.next().await.expect("token").at - sent;
    assert!(first < Duration::from_millis(60), "{first:?}");
}

#[tokio::test]
async fn admin_endpoint_gets_sets_and_validates() {
    let sim = start(fast_cfg()).await;
    let c = client();
    let current: Value = c
        .get(sim.url("/sim/faults"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(current["error_500"], 0.0);
    assert_eq!(current["warmup"], "0s");
    let resp = set_faults(&sim, json!({"stream_cut": 0.25, "warmup": "2s"})).await;
    assert_eq!(resp.status(), 200);
    let now: Value = c
        .get(sim.url("/sim/faults"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(now["stream_cut"], 0.25);
    assert_eq!(now["warmup"], "2s");
    for bad in [
        json!({"error_500": 1.5}),
        json!({"error_500": 0.6, "hang": 0.6}),
        json!({"error_404": 0.1}),
        json!({"warmup": "soon"}),
        json!({"warmup_factor": 0.1}),
    ] {
        let resp = set_faults(&sim, bad.clone()).await;
        assert_eq!(resp.status(), 400, "{bad}");
        let v: Value = resp.json().await.expect("json");
        assert!(v["error"]["message"].is_string(), "{v}");
    }
    // Rejected updates left the settings alone.
    let after: Value = c
        .get(sim.url("/sim/faults"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(after, now);
}

#[tokio::test]
async fn fault_draws_are_seeded() {
    let statuses = |seed: u64| async move {
        let sim = start(SimConfig {
            seed,
            faults: FaultConfig {
                error_500: 0.5,
                ..FaultConfig::default()
            },
            ..fast_cfg()
        })
        .await;
        let c = client();
        let mut out = Vec::new();
        for _ in 0..40 {
            let resp = c
                .post(sim.url("/v1/completions"))
                .json(&completion_body(json!({"max_tokens": 1})))
                .send()
                .await
                .expect("send");
            out.push(resp.status().as_u16());
        }
        out
    };
    let a = statuses(1).await;
    assert_eq!(a, statuses(1).await);
    assert_ne!(a, statuses(2).await);
    let errors = a.iter().filter(|s| **s == 500).count();
    assert!((8..=32).contains(&errors), "{errors} of 40");
}

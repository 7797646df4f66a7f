//! Every failure class, produced by a server that misbehaves on purpose and
//! classified by the real client: the simulator's fault injection, and a
//! hand-written server for what the simulator does not do. Every case runs
//! through both transports: the lean HTTP/1.1 client and reqwest.

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::stream;
use stampede_agent::client::{Success, Target, execute};
use stampede_agent::failure::FailureClass;
use stampede_agent::http::Client;
use stampede_agent::session::http_client;
use stampede_sim::{FaultConfig, SimConfig};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const CHAT: &str = r#"{"model":"stampede-sim","messages":[{"role":"user","content":"hi there"}],"max_tokens":8,"stream":true,"stream_options":{"include_usage":true}}"#;

/// The agent's client (lean HTTP/1.1 for `http://`) and reqwest alone.
fn clients() -> [(&'static str, Client); 2] {
    let lean = http_client();
    assert!(lean.h1().is_some(), "the default client has the lean pool");
    let reqwest = lean.reqwest_only();
    [("lean", lean), ("reqwest", reqwest)]
}

fn target(client: &Client, url: String, stream: bool) -> Target {
    let body = if stream {
        CHAT.to_string()
    } else {
        CHAT.replace("\"stream\":true", "\"stream\":false")
    };
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    Target {
        client: client.clone(),
        url,
        body: body.into(),
        stream,
        headers,
        first_token_timeout: None,
    }
}

async fn run(t: &Target, timeout: Duration) -> Result<Success, FailureClass> {
    let mut gaps = Vec::new();
    let now = Instant::now();
    execute(t, now, now + timeout, &mut gaps).await
}

async fn sim_with(faults: FaultConfig) -> (SocketAddr, CancellationToken) {
    let stop = CancellationToken::new();
    let cfg = SimConfig {
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(1),
        output_tokens: 8,
        faults,
        ..SimConfig::default()
    };
    let sim = stampede_sim::start(cfg, "127.0.0.1:0".parse().unwrap(), stop.clone())
        .await
        .unwrap();
    (sim.addr, stop)
}

#[tokio::test]
async fn simulator_faults_are_classified() {
    for (via, client) in clients() {
        let fault = |f: fn(&mut FaultConfig)| {
            let mut c = FaultConfig::default();
            f(&mut c);
            c
        };
        let cases = [
            (fault(|c| c.error_429 = 1.0), FailureClass::Http(429)),
            (fault(|c| c.error_500 = 1.0), FailureClass::Http(500)),
            (fault(|c| c.error_503 = 1.0), FailureClass::Http(503)),
            (
                fault(|c| c.stream_cut = 1.0),
                FailureClass::StreamEndedEarly,
            ),
            (fault(|c| c.hang = 1.0), FailureClass::TimeoutFirstToken),
            (fault(|c| c.malformed = 1.0), FailureClass::MalformedBody),
        ];
        for (faults, expected) in cases {
            let what = format!("{faults:?}");
            let (addr, stop) = sim_with(faults).await;
            let t = target(&client, format!("http://{addr}/v1/chat/completions"), true);
            assert_eq!(
                run(&t, Duration::from_millis(500)).await,
                Err(expected),
                "{what} via {via}"
            );
            stop.cancel();
        }
        // A healthy simulator succeeds, with usage-reported tokens, and TTFT is
        // taken at the first content token (the role-only chunk arrives at once).
        let (addr, stop) = sim_with(FaultConfig::default()).await;
        let t = target(&client, format!("http://{addr}/v1/chat/completions"), true);
        let sent = Instant::now();
        let ok = run(&t, Duration::from_secs(5))
            .await
            .expect("healthy request");
        assert_eq!((ok.output_tokens, ok.usage_reported), (8, true));
        assert!(
            ok.first_token - sent >= Duration::from_millis(5),
            "TTFT counted from the role chunk"
        );
        let t = target(&client, format!("http://{addr}/v1/chat/completions"), false);
        let ok = run(&t, Duration::from_secs(5))
            .await
            .expect("non-streaming request");
        assert_eq!(ok.output_tokens, 8);
        stop.cancel();
    }
}

/// A streamed body: each item waits `ms`, then sends its bytes.
fn sse(events: Vec<(u64, String)>) -> Response {
    let body = stream::unfold(events.into_iter(), |mut it| async move {
        let (ms, bytes) = it.next()?;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Some((Ok::<_, Infallible>(bytes), it))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(body))
        .unwrap()
}

const TOKEN: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n";
const ROLE: &str = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}";
/// The chunk that ends a generation normally: no content, a `finish_reason`.
const FINISH: &str =
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";

async fn misbehave(Path(case): Path<String>, headers: axum::http::HeaderMap) -> Response {
    let s = |x: &str| x.to_string();
    match case.as_str() {
        "auth" => {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
            let team = headers.get("x-team").and_then(|v| v.to_str().ok());
            if auth == Some("Bearer sekrit-from-env") && team == Some("infra") {
                sse(vec![
                    (0, s(TOKEN)),
                    (0, s(FINISH)),
                    (0, s("data: [DONE]\n\n")),
                ])
            } else {
                StatusCode::UNAUTHORIZED.into_response()
            }
        }
        "teapot" => StatusCode::IM_A_TEAPOT.into_response(),
        "ends_without_done" => sse(vec![(0, s(TOKEN)), (1, s(TOKEN))]),
        "hang_mid_stream" => sse(vec![(0, s(TOKEN)), (60_000, s(TOKEN))]),
        "hang_before_headers" => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            StatusCode::OK.into_response()
        }
        "error_object" => sse(vec![
            (0, s(TOKEN)),
            (
                0,
                s("data: {\"error\":{\"message\":\"engine died\",\"code\":500}}\n\n"),
            ),
        ]),
        "empty" => sse(vec![
            (0, format!("{ROLE}\n\n")),
            (0, s(FINISH)),
            (0, s("data: [DONE]\n\n")),
        ]),
        // What llama.cpp's Python server sends when a newer request interrupts
        // a generation: tokens, then `[DONE]` with no `finish_reason`.
        "interrupted" => sse(vec![
            (0, s(TOKEN)),
            (1, s(TOKEN)),
            (0, s("data: [DONE]\n\n")),
        ]),
        "interrupted_before_a_token" => {
            sse(vec![(0, format!("{ROLE}\n\n")), (0, s("data: [DONE]\n\n"))])
        }
        "not_json" => sse(vec![(0, s("data: {\"choices\": [\n\n"))]),
        "huge_line" => sse(vec![(0, s("data: ")), (0, "a".repeat(9 * 1024 * 1024))]),
        "bad_body" => "<html>not json</html>".into_response(),
        // Valid but messy: CRLF, comments, several events per chunk, an event
        // and a CRLF split across chunks.
        "messy_but_valid" => sse(vec![
            (0, format!(": keep-alive\r\n\r\n{ROLE}\r\n\r\n")),
            (
                2,
                s("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\r\n\r\ndata: {\"choi"),
            ),
            (
                1,
                s("ces\":[{\"delta\":{\"content\":\"b\"},\"finish_reason\":\"length\"}]}\r"),
            ),
            (
                1,
                s(
                    "\n\r\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n",
                ),
            ),
        ]),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn misbehaving_server() -> SocketAddr {
    let app = Router::new().route("/{case}/v1/chat/completions", post(misbehave));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn misbehaving_server_failures_are_classified() {
    for (via, client) in clients() {
        let addr = misbehaving_server().await;
        let cases = [
            ("teapot", true, FailureClass::Http(418)),
            ("ends_without_done", true, FailureClass::StreamEndedEarly),
            ("hang_mid_stream", true, FailureClass::TimeoutMidStream),
            ("hang_before_headers", true, FailureClass::TimeoutFirstToken),
            ("error_object", true, FailureClass::StreamError),
            ("empty", true, FailureClass::EmptyResponse),
            ("interrupted", true, FailureClass::StreamEndedEarly),
            (
                "interrupted_before_a_token",
                true,
                FailureClass::StreamEndedEarly,
            ),
            ("not_json", true, FailureClass::MalformedBody),
            ("huge_line", true, FailureClass::MalformedBody),
            ("bad_body", false, FailureClass::MalformedBody),
        ];
        for (case, stream, expected) in cases {
            let t = target(
                &client,
                format!("http://{addr}/{case}/v1/chat/completions"),
                stream,
            );
            assert_eq!(
                run(&t, Duration::from_millis(400)).await,
                Err(expected),
                "{case} via {via}"
            );
        }
        let t = target(
            &client,
            format!("http://{addr}/messy_but_valid/v1/chat/completions"),
            true,
        );
        let ok = run(&t, Duration::from_secs(5))
            .await
            .expect("messy but valid stream");
        assert_eq!(
            (ok.output_tokens, ok.prompt_tokens, ok.usage_reported),
            (2, Some(2), true)
        );
    }
}

#[tokio::test]
async fn first_token_timeout_is_separate_from_the_request_timeout() {
    for (via, client) in clients() {
        let addr = misbehaving_server().await;
        let mut t = target(
            &client,
            format!("http://{addr}/hang_before_headers/v1/chat/completions"),
            true,
        );
        t.first_token_timeout = Some(Duration::from_millis(200));
        let started = Instant::now();
        assert_eq!(
            run(&t, Duration::from_secs(10)).await,
            Err(FailureClass::TimeoutFirstToken),
            "via {via}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?} via {via}",
            started.elapsed()
        );
        // Once the first token is in, only the whole-request timeout applies.
        let mut t = target(
            &client,
            format!("http://{addr}/hang_mid_stream/v1/chat/completions"),
            true,
        );
        t.first_token_timeout = Some(Duration::from_millis(100));
        assert_eq!(
            run(&t, Duration::from_millis(600)).await,
            Err(FailureClass::TimeoutMidStream),
            "via {via}"
        );
    }
}

#[tokio::test]
async fn headers_and_the_api_key_reach_the_server() {
    for (via, client) in clients() {
        let addr = misbehaving_server().await;
        // Reading the key from the environment is unit-tested in `http.rs` (this
        // crate forbids the `unsafe` that setting a variable needs); here the
        // built headers must reach the server.
        let mut template = stampede_common::proto::RequestTemplate::default();
        template.headers.insert("x-team".into(), "infra".into());
        let mut headers = stampede_agent::http::request_headers(&template).unwrap();
        headers.insert("authorization", "Bearer sekrit-from-env".parse().unwrap());
        let mut t = target(
            &client,
            format!("http://{addr}/auth/v1/chat/completions"),
            true,
        );
        t.headers = headers;
        assert!(run(&t, Duration::from_secs(5)).await.is_ok(), "via {via}");
        let t = target(
            &client,
            format!("http://{addr}/auth/v1/chat/completions"),
            true,
        );
        assert_eq!(
            run(&t, Duration::from_secs(5)).await,
            Err(FailureClass::Http(401)),
            "via {via}"
        );
    }
}

#[tokio::test]
async fn connection_refused_is_connect() {
    for (via, client) in clients() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = target(
            &client,
            format!("http://127.0.0.1:{port}/v1/chat/completions"),
            true,
        );
        assert_eq!(
            run(&t, Duration::from_secs(5)).await,
            Err(FailureClass::Connect),
            "via {via}"
        );
    }
}

#[tokio::test]
async fn abandoned_requests_are_cancelled_before_and_after_the_first_token() {
    for (via, client) in clients() {
        let addr = misbehaving_server().await;
        for case in ["hang_before_headers", "hang_mid_stream"] {
            let t = target(
                &client,
                format!("http://{addr}/{case}/v1/chat/completions"),
                true,
            );
            let abandon = tokio_util::sync::CancellationToken::new();
            let cancel = abandon.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(150)).await;
                cancel.cancel();
            });
            let (mut gaps, now) = (Vec::new(), Instant::now());
            let r = stampede_agent::client::execute_until(
                &t,
                t.body.clone(),
                now,
                now + Duration::from_secs(10),
                &mut gaps,
                None,
                Some(&abandon),
            )
            .await;
            assert_eq!(r, Err(FailureClass::Cancelled), "{case} via {via}");
            assert!(now.elapsed() < Duration::from_secs(2), "{case} via {via}");
        }
    }
}

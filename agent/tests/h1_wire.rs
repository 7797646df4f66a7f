//! The lean HTTP/1.1 client against a server written byte by byte: every
//! framing (chunked, content-length, close-delimited), interim responses,
//! responses cut or garbled, and keep-alive reuse, counted in connections.

use stampede_agent::client::{Success, Target, execute};
use stampede_agent::failure::FailureClass;
use stampede_agent::session::http_client;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

const STREAM: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\r\n\r\n\
data: {\"choices\":[{\"delta\":{\"content\":\"b\"},\"finish_reason\":\"length\"}]}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n\
data: [DONE]\n\n";

/// The chunked encoding of `body`, in chunks of `size` bytes (with an
/// extension and a trailer, which clients must skip).
fn chunked(body: &str, size: usize) -> String {
    let mut out = String::new();
    for piece in body.as_bytes().chunks(size) {
        out.push_str(&format!("{:x};ext=1\r\n", piece.len()));
        out.push_str(std::str::from_utf8(piece).unwrap());
        out.push_str("\r\n");
    }
    out.push_str("0\r\nx-trailer: t\r\n\r\n");
    out
}

/// What the server answers for a request path, and whether it then closes.
fn script(path: &str) -> (String, bool) {
    let ok = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n";
    match path {
        "/chunked" => (
            format!(
                "{ok}transfer-encoding: chunked\r\n\r\n{}",
                chunked(STREAM, 7)
            ),
            false,
        ),
        "/length" => (
            format!("{ok}content-length: {}\r\n\r\n{STREAM}", STREAM.len()),
            false,
        ),
        "/close_delimited" => (format!("HTTP/1.0 200 OK\r\n\r\n{STREAM}"), true),
        "/interim" => (
            format!(
                "HTTP/1.1 100 Continue\r\n\r\n{ok}transfer-encoding: chunked\r\n\r\n{}",
                chunked(STREAM, 64)
            ),
            false,
        ),
        "/then_close" => (
            format!(
                "{ok}connection: close\r\ncontent-length: {}\r\n\r\n{STREAM}",
                STREAM.len()
            ),
            true,
        ),
        // Keep-alive advertised, but the server drops the connection after.
        "/drop_after" => (
            format!("{ok}content-length: {}\r\n\r\n{STREAM}", STREAM.len()),
            true,
        ),
        "/cut_mid_chunk" => {
            let full = chunked(STREAM, 40);
            (
                format!("{ok}transfer-encoding: chunked\r\n\r\n{}", &full[..50]),
                true,
            )
        }
        "/short_length" => (
            format!("{ok}content-length: {}\r\n\r\n{STREAM}", STREAM.len() + 10),
            true,
        ),
        "/bad_chunk" => (
            format!("{ok}transfer-encoding: chunked\r\n\r\nzz\r\n{STREAM}"),
            true,
        ),
        "/garbage" => ("SMTP ready\r\n\r\n".to_string(), true),
        "/no_head" => (String::new(), true),
        "/status" => (
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy".to_string(),
            false,
        ),
        _ => (
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_string(),
            false,
        ),
    }
}

/// Reads one request (head and content-length body); its path, or `None`
/// when the client closed the connection.
async fn read_request(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.ok()?;
    head.split(' ').nth(1).map(str::to_string)
}

/// A server answering [`script`], writing each response a few bytes at a
/// time so the client sees every possible split; counts connections.
async fn server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            s.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                while let Some(path) = read_request(&mut s).await {
                    let (response, close) = script(&path);
                    for piece in response.as_bytes().chunks(5) {
                        if s.write_all(piece).await.is_err() {
                            return;
                        }
                        tokio::task::yield_now().await;
                    }
                    if close {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

fn target(addr: SocketAddr, path: &str) -> Target {
    let client = http_client();
    assert!(client.h1().is_some());
    Target {
        client,
        url: format!("http://{addr}{path}"),
        body: r#"{"stream":true}"#.into(),
        stream: true,
        headers: Default::default(),
        first_token_timeout: None,
    }
}

async fn run(t: &Target) -> Result<Success, FailureClass> {
    let mut gaps = Vec::new();
    let now = Instant::now();
    execute(t, now, now + Duration::from_secs(5), &mut gaps).await
}

#[tokio::test]
async fn every_framing_delivers_the_whole_stream() {
    let (addr, _) = server().await;
    for path in ["/chunked", "/length", "/close_delimited", "/interim"] {
        let ok = run(&target(addr, path))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e:?}"));
        assert_eq!(
            (ok.output_tokens, ok.prompt_tokens, ok.usage_reported),
            (2, Some(3), true),
            "{path}"
        );
    }
}

#[tokio::test]
async fn kept_alive_connections_are_reused_and_closed_ones_are_not() {
    let (addr, accepted) = server().await;
    let t = target(addr, "/chunked");
    for _ in 0..5 {
        run(&t).await.unwrap();
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection for 5");
    // An error status leaves its body unread: that connection is not reused.
    let mut s = target(addr, "/status");
    s.client = t.client.clone();
    assert_eq!(run(&s).await, Err(FailureClass::Http(503)));
    run(&t).await.unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    // `connection: close` and close-delimited bodies end their connection.
    for path in ["/then_close", "/close_delimited"] {
        let mut c = target(addr, path);
        c.client = t.client.clone();
        let before = accepted.load(Ordering::SeqCst);
        run(&c).await.unwrap();
        run(&t).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), before + 1, "{path}");
    }
    // The server dropping an idle kept-alive connection costs no request.
    let mut d = target(addr, "/drop_after");
    d.client = t.client.clone();
    run(&d).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    run(&t)
        .await
        .expect("a fresh connection replaces the dropped one");
}

#[tokio::test]
async fn connections_idle_over_90_s_are_not_reused() {
    let (addr, accepted) = server().await;
    let t = target(addr, "/chunked");
    run(&t).await.unwrap();
    run(&t).await.unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(89)).await;
    tokio::time::resume();
    run(&t).await.unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "89 s idle: reused");
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(91)).await;
    tokio::time::resume();
    run(&t).await.unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "91 s idle: a new one");
}

#[tokio::test]
async fn broken_responses_are_classified() {
    let (addr, _) = server().await;
    let cases = [
        ("/cut_mid_chunk", FailureClass::StreamEndedEarly),
        ("/short_length", FailureClass::StreamEndedEarly),
        ("/bad_chunk", FailureClass::StreamEndedEarly),
        ("/garbage", FailureClass::Transport),
        ("/no_head", FailureClass::Transport),
        ("/status", FailureClass::Http(503)),
        ("/missing", FailureClass::Http(404)),
    ];
    for (path, class) in cases {
        assert_eq!(run(&target(addr, path)).await, Err(class), "{path}");
    }
}

//! The controller's gRPC port under abuse during a real run (issue 23): the
//! embedded default (two local agents, the built-in simulator) runs one
//! phase while this test
//! - holds 200 connections: 80 send nothing, 80 send the HTTP/2 preface and
//!   then idle (never acknowledging a ping), 40 open a Session stream that
//!   never sends Hello;
//! - sends 1 MB of garbage on three more: random bytes, an HTTP/1.1 request,
//!   a TLS ClientHello to the plaintext port.
//!
//! The controller closes every one of them itself, while the run is still
//! going (a silent connection after the handshake timeout, an idle one after
//! an unanswered keepalive ping, a session without Hello refused with
//! `DEADLINE_EXCEEDED`, garbage at once). The run then completes normally:
//! exit 0, both agents in the phase, every arrival sent and answered, the
//! books reconciled; and the controller exits.

use stampede_common::proto::SessionRequest;
use stampede_common::proto::coordinator_service_client::CoordinatorServiceClient;
use stampede_tests::{check_books, plan_file};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// The HTTP/2 client connection preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Bytes of each garbage connection.
const GARBAGE_BYTES: usize = 1 << 20;
/// Longest any abusive connection may stay open: the controller's 10 s
/// handshake timeout, with room for a loaded machine.
const CLOSED_WITHIN: Duration = Duration::from_secs(20);

/// How one abusive connection ended, as this test saw it.
#[derive(Debug)]
enum Seen {
    /// The controller closed it (end of stream or reset) after this long.
    Closed(&'static str, Duration),
    /// A session answered with this gRPC status after this long.
    Refused(tonic::Code, String, Duration),
    /// Still open at [`CLOSED_WITHIN`], or something unexpected happened.
    Wrong(&'static str, String),
}

/// Read (and discard) until the peer closes; how long that took.
async fn until_closed<R: AsyncRead + Unpin>(
    kind: &'static str,
    mut s: R,
    started: Instant,
) -> Seen {
    let mut buf = vec![0u8; 16 * 1024];
    let read_all = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    match tokio::time::timeout(CLOSED_WITHIN, read_all).await {
        Ok(()) => Seen::Closed(kind, started.elapsed()),
        Err(_) => Seen::Wrong(kind, format!("still open after {CLOSED_WITHIN:?}")),
    }
}

/// A connection that sends `first` and then nothing.
fn hold(addr: String, kind: &'static str, first: &'static [u8]) -> JoinHandle<Seen> {
    tokio::spawn(async move {
        let started = Instant::now();
        let mut s = match TcpStream::connect(&addr).await {
            Ok(s) => s,
            Err(e) => return Seen::Wrong(kind, format!("connect: {e}")),
        };
        if let Err(e) = s.write_all(first).await {
            return Seen::Wrong(kind, format!("write: {e}"));
        }
        until_closed(kind, s, started).await
    })
}

/// A Session call that never sends Hello.
fn silent_session(url: String) -> JoinHandle<Seen> {
    tokio::spawn(async move {
        let started = Instant::now();
        let mut client = match CoordinatorServiceClient::connect(url).await {
            Ok(c) => c,
            Err(e) => return Seen::Wrong("session", format!("connect: {e}")),
        };
        let call = client.session(tokio_stream::pending::<SessionRequest>());
        match tokio::time::timeout(CLOSED_WITHIN, call).await {
            Ok(Err(status)) => Seen::Refused(
                status.code(),
                status.message().to_string(),
                started.elapsed(),
            ),
            Ok(Ok(_)) => Seen::Wrong("session", "accepted without Hello".into()),
            Err(_) => Seen::Wrong("session", format!("no answer in {CLOSED_WITHIN:?}")),
        }
    })
}

/// A connection sending `head` then random bytes, 1 MB in all, while
/// reading until the controller closes it.
fn garbage(addr: String, kind: &'static str, head: Vec<u8>) -> JoinHandle<Seen> {
    tokio::spawn(async move {
        let started = Instant::now();
        let s = match TcpStream::connect(&addr).await {
            Ok(s) => s,
            Err(e) => return Seen::Wrong(kind, format!("connect: {e}")),
        };
        let (reader, mut writer) = s.into_split();
        let mut bytes = head;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        while bytes.len() < GARBAGE_BYTES {
            // xorshift64: reproducible noise
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        bytes.truncate(GARBAGE_BYTES);
        // Writing fails once the controller has closed the connection.
        tokio::spawn(async move { writer.write_all(&bytes).await });
        until_closed(kind, reader, started).await
    })
}

/// The first flight of a TLS client (its ClientHello).
fn client_hello() -> Vec<u8> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = "localhost".try_into().expect("server name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("TLS client");
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).expect("ClientHello");
    hello
}

#[test]
fn held_connections_and_garbage_neither_stall_nor_crash_a_run() {
    let plan = r#"
[run]
name = "grpc-abuse"
window = "500ms"
[agents]
local = 2
[target.simulator]
ttft = "5ms"
itl = "1ms"
output_tokens = 4
[request]
max_tokens = 4
[[phase]]
name = "steady"
kind = "constant"
rate = 10.0
duration = "16s"
"#;
    let (dir, path) = plan_file(plan);
    let out = dir.path().join("run");
    let (mut controller, url) = stampede_tests::start_remote_controller(&path, &out);
    let addr = url.trim_start_matches("http://").to_string();
    controller.wait_for_line("phase steady", Duration::from_secs(60));

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let started = Instant::now();
    let abuse: Vec<JoinHandle<Seen>> = rt.block_on(async {
        let mut all = Vec::new();
        for _ in 0..80 {
            all.push(hold(addr.clone(), "silent", b""));
            all.push(hold(addr.clone(), "preface", PREFACE));
        }
        for _ in 0..40 {
            all.push(silent_session(url.clone()));
        }
        let http1 = format!(
            "POST /stampede.v1.CoordinatorService/Session HTTP/1.1\r\nHost: {addr}\r\n\
             Content-Type: application/grpc\r\nContent-Length: {GARBAGE_BYTES}\r\n\r\n"
        );
        all.push(garbage(addr.clone(), "random", Vec::new()));
        all.push(garbage(addr.clone(), "http1", http1.into_bytes()));
        all.push(garbage(addr.clone(), "tls", client_hello()));
        all
    });
    let seen: Vec<Seen> = rt.block_on(async {
        let mut seen = Vec::new();
        for task in abuse {
            seen.push(task.await.expect("abuse task"));
        }
        seen
    });
    let took = started.elapsed();
    // Every abusive connection was dealt with while the run was still going:
    // by the controller, not by its exit.
    assert!(
        controller.child.try_wait().expect("try_wait").is_none(),
        "the controller exited before the abuse ended ({took:?}): {:?}",
        controller.seen
    );
    check_abuse(&seen);
    eprintln!("200 held + 3 garbage connections all closed within {took:?}");

    let (code, output) = controller.wait_exit(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{output}");
    assert!(!output.contains("panicked"), "{output}");
    check_run(&out);
    drop(rt);
}

/// Every held connection closed within its bound, every silent session
/// refused for its missing Hello, all garbage closed at once.
fn check_abuse(seen: &[Seen]) {
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for s in seen {
        match s {
            Seen::Closed(kind, after) => {
                // Garbage is closed at its first wrong byte; the rest after a timeout.
                let bound = if matches!(*kind, "random" | "http1" | "tls") {
                    Duration::from_secs(5)
                } else {
                    CLOSED_WITHIN
                };
                assert!(*after < bound, "{kind} closed only after {after:?}");
                *counts.entry(kind).or_default() += 1;
            }
            Seen::Refused(code, message, after) => {
                assert_eq!(*code, tonic::Code::DeadlineExceeded, "{message}");
                assert!(message.contains("Hello"), "{message}");
                assert!(*after < CLOSED_WITHIN, "refused after {after:?}");
                *counts.entry("session").or_default() += 1;
            }
            Seen::Wrong(kind, what) => panic!("{kind}: {what}"),
        }
    }
    let expected = [
        ("http1", 1),
        ("preface", 80),
        ("random", 1),
        ("session", 40),
        ("silent", 80),
        ("tls", 1),
    ];
    assert_eq!(counts.into_iter().collect::<Vec<_>>(), expected);
}

/// The run's results: both agents took part to the end, every arrival was
/// sent and answered, and the books reconcile.
fn check_run(out: &std::path::Path) {
    let summary = check_books(out);
    let phase = &summary["phases"][0];
    assert_eq!(
        phase["agents"],
        serde_json::json!(["local-0", "local-1"]),
        "{phase:#}"
    );
    assert_eq!(phase["lost_agents"], serde_json::json!([]), "{phase:#}");
    let r = &phase["requests"];
    assert_eq!(
        r["sent"].as_u64(),
        Some(160),
        "10 req/s for 16 s: {phase:#}"
    );
    assert_eq!(r["ok"], r["sent"], "{phase:#}");
    assert!(out.join("stats.txt").exists());
}

//! Token timestamps are when the bytes reached this host, not when the
//! agent's task got round to reading them: a response that arrives while the
//! agent's only runtime thread is blocked keeps its arrival time.

use stampede_agent::client::{Target, execute};
use stampede_agent::session::http_client;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;
use tokio::time::Instant;

/// Head and first token in one write; the rest in a second one.
const HEAD_AND_FIRST: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
transfer-encoding: chunked\r\n\r\n\
2f\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n\r\n";
const REST: &str = "48\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"b\"},\"finish_reason\":\"length\"}]}\n\n\r\n\
e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n";

/// When the server wrote the first token: just before and just after.
struct Written {
    before: Instant,
    after: Instant,
}

/// A one-request server on its own OS thread: tells `got_request` when the
/// request is in, writes the head and first token 20 ms later (reporting
/// when on `written`), and the rest once `go_on` says so.
fn server(
    got_request: tokio::sync::oneshot::Sender<()>,
    written: mpsc::Sender<Written>,
    go_on: mpsc::Receiver<()>,
) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        // The body is `{}`: the request is complete once it follows the head.
        while !request.ends_with(b"\r\n\r\n{}") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "client closed before its request was complete");
            request.extend_from_slice(&buf[..n]);
        }
        let _ = got_request.send(());
        std::thread::sleep(Duration::from_millis(20));
        let before = Instant::now();
        s.write_all(HEAD_AND_FIRST.as_bytes()).unwrap();
        let after = Instant::now();
        written.send(Written { before, after }).unwrap();
        go_on.recv().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        s.write_all(REST.as_bytes()).unwrap();
        // Hold the connection until the client has read everything.
        let _ = s.read(&mut buf);
    });
    addr
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn tokens_are_timed_at_arrival_even_when_the_agent_reads_late() {
    assert!(
        stampede_rxtime::wait_until_active(Duration::from_secs(5)),
        "the kernel stamps received segments"
    );
    let (got_tx, got_rx) = tokio::sync::oneshot::channel();
    let (written_tx, written_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    let addr = server(got_tx, written_tx, go_rx);
    let client = http_client();
    assert!(client.h1().is_some(), "plain http:// takes the lean client");
    let target = Target {
        client,
        url: format!("http://{addr}/v1/chat/completions"),
        body: "{}".into(),
        stream: true,
        headers: Default::default(),
        first_token_timeout: None,
    };
    // This test's runtime has one thread: blocking it keeps the request's
    // task from reading while its first token arrives.
    const BLOCKED: Duration = Duration::from_millis(300);
    let blocker = tokio::spawn(async move {
        got_rx.await.unwrap();
        std::thread::sleep(BLOCKED);
        let unblocked = Instant::now();
        go_tx.send(()).unwrap();
        unblocked
    });
    let intended = Instant::now();
    let mut gaps = Vec::new();
    let ok = execute(
        &target,
        intended,
        intended + Duration::from_secs(10),
        &mut gaps,
    )
    .await
    .expect("the stream completes");
    let unblocked = blocker.await.unwrap();
    let w = written_rx.recv().unwrap();
    // The first token arrived while the server wrote it (the kernel stamps
    // it on delivery; its wall-clock age maps it back within microseconds).
    let slack = Duration::from_millis(2);
    assert!(
        ok.first_token + slack >= w.before && ok.first_token <= w.after + slack,
        "first token timed {:?} after the server's write began (which took {:?}); \
         the task read it {:?} after the write",
        ok.first_token.saturating_duration_since(w.before),
        w.after - w.before,
        unblocked.saturating_duration_since(w.after),
    );
    // The second came after the thread was free again, so the gap between
    // the two is at least the time the thread was blocked.
    assert!(ok.last_token > unblocked, "second token after the block");
    assert_eq!(gaps.len(), 1);
    assert!(
        Duration::from_micros(gaps[0]) >= BLOCKED - Duration::from_millis(30),
        "ITL {} µs spans the block",
        gaps[0]
    );
}

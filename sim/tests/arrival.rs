//! The timeline starts when a request reached the server's socket, so a server too busy to
//! read it at once counts that wait in its own measured first-token latency.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use stampede_sim::SimConfig;
use tokio_util::sync::CancellationToken;

const BLOCK: Duration = Duration::from_millis(300);

/// Reads one response with a `Content-Length` body off `conn`; returns its body.
fn read_response(conn: &mut BufReader<TcpStream>) -> String {
    let mut len = 0;
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).expect("response head");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().expect("content-length");
        }
    }
    let mut body = vec![0; len];
    conn.read_exact(&mut body).expect("body");
    String::from_utf8(body).expect("utf-8 body")
}

#[test]
fn a_request_read_late_is_timed_from_its_arrival() {
    assert!(
        stampede_rxtime::wait_until_active(Duration::from_secs(5)),
        "the kernel stamps received segments"
    );
    // The simulator on a one-thread runtime of its own, which the test can block.
    let shutdown = CancellationToken::new();
    let (tx, rx) = mpsc::channel::<(SocketAddr, tokio::runtime::Handle)>();
    let stop = shutdown.clone();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let cfg = SimConfig {
                ttft: Duration::from_millis(20),
                itl: Duration::from_millis(1),
                output_tokens: 4,
                ..SimConfig::default()
            };
            let sim = stampede_sim::start(cfg, "127.0.0.1:0".parse().unwrap(), stop.clone())
                .await
                .expect("start");
            tx.send((sim.addr, tokio::runtime::Handle::current()))
                .expect("send");
            stop.cancelled().await;
            sim.wait().await.expect("clean shutdown");
        });
    });
    let (addr, handle) = rx.recv().expect("simulator address");

    // Accepted and served once, so its reads are stamped before the stall.
    let mut conn = BufReader::new(TcpStream::connect(addr).expect("connect"));
    let get = |path: &str, close: bool| {
        let connection = if close { "close" } else { "keep-alive" };
        format!("GET {path} HTTP/1.1\r\nhost: sim\r\nconnection: {connection}\r\n\r\n")
    };
    conn.get_mut()
        .write_all(get("/health", false).as_bytes())
        .expect("write");
    read_response(&mut conn);

    // Stall the simulator's only thread, then send a request it cannot read until the
    // stall ends.
    let (started_tx, started) = mpsc::channel();
    handle.spawn(async move {
        started_tx.send(()).expect("started");
        std::thread::sleep(BLOCK);
    });
    started.recv().expect("stall started");
    let body = r#"{"model":"stampede-sim","prompt":"hi","stream":true}"#;
    let request = format!(
        "POST /v1/completions HTTP/1.1\r\nhost: sim\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let sent = Instant::now();
    conn.get_mut().write_all(request.as_bytes()).expect("write");
    let mut streamed = String::new();
    conn.read_to_string(&mut streamed).expect("stream");
    let took = sent.elapsed();
    assert!(streamed.contains("data: [DONE]"), "{streamed}");
    assert!(took >= BLOCK, "the stall held the request for {took:?}");

    let mut admin = BufReader::new(TcpStream::connect(addr).expect("connect"));
    admin
        .get_mut()
        .write_all(get("/sim/latency", true).as_bytes())
        .expect("write");
    let latency: serde_json::Value =
        serde_json::from_str(&read_response(&mut admin)).expect("latency JSON");
    let first = &latency["first_token"];
    assert_eq!(first["count"], 1, "{latency}");
    // The first token left after the stall; timed from the arrival, that is the stall
    // and more. Timed from the handler start it would be about the configured 20 ms.
    let p50 = first["p50_ms"].as_f64().expect("p50_ms");
    let block_ms = BLOCK.as_secs_f64() * 1e3;
    assert!(
        p50 >= block_ms - 10.0,
        "first token {p50} ms after arrival, stalled {block_ms} ms: {latency}"
    );
    assert!(
        p50 <= took.as_secs_f64() * 1e3 + 1.0,
        "{p50} ms exceeds the client's whole wait {took:?}"
    );

    shutdown.cancel();
    server.join().expect("server thread");
}

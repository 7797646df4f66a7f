use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

#[test]
fn label_values_escape_backslashes_quotes_and_newlines() {
    assert_eq!(escape("plain"), "plain");
    assert_eq!(escape(r#"a\b"c"#), r#"a\\b\"c"#);
    assert_eq!(escape("two\nlines"), "two\\nlines");
}

/// One HTTP/1.1 request on a fresh connection; the whole response as text.
async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn the_page_is_served_as_prometheus_text_until_shutdown() {
    let shutdown = CancellationToken::new();
    let page = || "stampede_test_total 7\n".to_string();
    let addr = serve(([127, 0, 0, 1], 0).into(), page, shutdown.clone())
        .await
        .unwrap();
    let response = get(addr, "/metrics").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{response}"
    );
    assert!(
        response.ends_with("\r\n\r\nstampede_test_total 7\n"),
        "{response}"
    );
    assert!(get(addr, "/other").await.starts_with("HTTP/1.1 404"));
    shutdown.cancel();
    // The listener closes once the server has drained.
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("still listening on {addr} after shutdown");
}

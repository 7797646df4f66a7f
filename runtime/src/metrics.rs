//! Serving live Prometheus metrics: a `/metrics` route over a page that the
//! caller renders (the agent's counters, or the controller's with its local
//! agents'), and the label escaping those pages need. What the pages hold
//! belongs to each binary; how they are served is the same for both.

#[cfg(test)]
mod tests;

/// Escape a label value.
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serve `page()` as `/metrics` on `addr` until `shutdown`; returns the bound address.
pub async fn serve(
    addr: std::net::SocketAddr,
    page: fn() -> String,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || async move {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                page(),
            )
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
    });
    Ok(bound)
}

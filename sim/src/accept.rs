//! Accepted connections whose reads are stamped with their kernel receive time.
//!
//! A request's timeline (and its measured first-token latency) should start when the
//! request reached the server, not when a busy server's task got round to reading it: the
//! wait between the two is the server's, and a client benchmark that subtracts the server's
//! latency must not be charged for it. Each accepted connection is a
//! [`StampedStream`](stampede_rxtime::StampedStream); handlers see the time of the latest read
//! on their connection as [`RequestArrival`]. With HTTP/1.1 (no pipelining) that read is
//! the one that brought the request head. With HTTP/2 it may be a later frame of another
//! stream — later, so never an earlier start than the truth.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use stampede_rxtime::{LastArrival, StampedStream};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// A TCP listener handing out [`StampedStream`]s with `TCP_NODELAY` set.
pub(crate) struct StampedListener(pub(crate) TcpListener);

impl Listener for StampedListener {
    type Io = StampedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((tcp, addr)) => {
                    // Small SSE events must leave at once, not wait for Nagle.
                    if let Err(err) = tcp.set_nodelay(true) {
                        tracing::trace!(%err, "failed to set TCP_NODELAY");
                    }
                    return (StampedStream::new(tcp), addr);
                }
                // The peer gave up before the accept: nothing to serve.
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    // Out of file descriptors, say: wait for connections to close.
                    tracing::error!("accept error: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Per-connection handle to when its latest read's bytes arrived, as `ConnectInfo`.
#[derive(Debug, Clone)]
pub(crate) struct RequestArrival(LastArrival);

impl RequestArrival {
    /// When the request reached the server, at most `now`; `now` when unknown.
    pub(crate) fn at_most(&self, now: Instant) -> Instant {
        self.0.get().map_or(now, |at| at.min(now))
    }
}

impl Connected<IncomingStream<'_, StampedListener>> for RequestArrival {
    fn connect_info(stream: IncomingStream<'_, StampedListener>) -> Self {
        Self(stream.io().last_arrival().clone())
    }
}

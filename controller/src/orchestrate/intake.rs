//! What a connection to the agents' endpoint must do before the gRPC server
//! sees it, and how long the server keeps one that stopped answering, so
//! that no peer holds the controller's resources for long by doing nothing.
//!
//! Within [`HANDSHAKE_TIMEOUT`] of being accepted a connection must have
//! finished its TLS handshake (on a TLS endpoint) and sent the HTTP/2 client
//! preface, or it is closed. Bytes that are not the preface (garbage, an
//! HTTP/1.1 request, a TLS ClientHello on a plaintext endpoint) close it as
//! soon as they arrive, and connections still being vetted are dropped when
//! the endpoint shuts down. hyper has no such bound of its own: a connection
//! that never sends its preface would wait forever, and so would a graceful
//! shutdown waiting for it.
//!
//! Once served, a connection is probed with HTTP/2 pings ([`KEEPALIVE_INTERVAL`],
//! [`KEEPALIVE_TIMEOUT`]) and TCP keepalive, so an agent that died without
//! closing its connection (a power cut, a partition) is noticed within
//! seconds, its session ends and its reconnect grace starts.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::transport::server::{Connected, TcpIncoming};

/// How long an accepted connection may take to finish its TLS handshake and
/// send the HTTP/2 preface.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Quiet time on a served connection after which the server sends a ping.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// How long the server waits for a ping's acknowledgement before it closes
/// the connection.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(3);

/// TCP keepalive: idle time before the first probe, time between probes,
/// and unanswered probes before the kernel drops the connection.
const TCP_KEEPALIVE: (Duration, Duration, u32) =
    (Duration::from_secs(10), Duration::from_secs(5), 3);

/// Concurrent streams one connection may open (an agent holds one session
/// per connection).
pub const MAX_CONCURRENT_STREAMS: u32 = 8;
/// Largest HTTP/2 frame payload accepted (the protocol's minimum, 16 KiB).
pub const MAX_FRAME_BYTES: u32 = 16 * 1024;
/// Largest header list accepted on a request (16 KiB).
pub const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;

/// The gRPC server with the endpoint's HTTP/2 settings.
pub fn server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_frame_size(MAX_FRAME_BYTES)
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
}

/// Serve `routes` on the vetted connections arriving on `conns`, until `shutdown`.
pub async fn serve<IO>(
    routes: Routes,
    conns: mpsc::Receiver<IO>,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error>
where
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
{
    server()
        .add_routes(routes)
        .serve_with_incoming_shutdown(
            ReceiverStream::new(conns).map(Ok::<_, std::io::Error>),
            shutdown.cancelled_owned(),
        )
        .await
}

/// Accept connections on `listener` (with TCP keepalive) until `shutdown`;
/// each is vetted by `vet` in a task of its own, given [`HANDSHAKE_TIMEOUT`]
/// and dropped if the endpoint shuts down first.
pub async fn accept<F, Fut>(listener: TcpListener, shutdown: CancellationToken, vet: F)
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (idle, interval, retries) = TCP_KEEPALIVE;
    let mut incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(idle))
        .with_keepalive_interval(Some(interval))
        .with_keepalive_retries(Some(retries));
    loop {
        let stream = tokio::select! {
            next = incoming.next() => match next {
                Some(Ok(stream)) => stream,
                Some(Err(e)) => {
                    tracing::warn!("accepting an agent connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                None => break,
            },
            () = shutdown.cancelled() => break,
        };
        let Ok(peer) = stream.peer_addr() else {
            continue;
        };
        let vetting = vet(stream, peer);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                r = tokio::time::timeout(HANDSHAKE_TIMEOUT, vetting) => if r.is_err() {
                    tracing::debug!(
                        "closed the connection from {peer}: not ready for gRPC within {HANDSHAKE_TIMEOUT:?}"
                    );
                },
                () = shutdown.cancelled() => {}
            }
        });
    }
}

/// Read the HTTP/2 preface from `io` and hand the connection to `to`;
/// anything else closes it.
pub async fn hand_over<IO>(mut io: IO, peer: SocketAddr, to: mpsc::Sender<Vetted<IO>>)
where
    IO: AsyncRead + Unpin,
{
    match read_preface(&mut io).await {
        Ok(()) => {
            let _ = to.send(Vetted { io, replayed: 0 }).await;
        }
        Err(e) => tracing::debug!("closed the connection from {peer}: {e}"),
    }
}

/// Read exactly the HTTP/2 preface, failing at the first byte that differs.
async fn read_preface<IO: AsyncRead + Unpin>(io: &mut IO) -> std::io::Result<()> {
    let mut got = [0u8; PREFACE.len()];
    let mut have = 0;
    while have < got.len() {
        let n = io.read(&mut got[have..]).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before the HTTP/2 preface",
            ));
        }
        if got[have..have + n] != PREFACE[have..have + n] {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not an HTTP/2 (gRPC) client",
            ));
        }
        have += n;
    }
    Ok(())
}

/// A connection whose HTTP/2 preface was read and checked here; the server
/// reads the preface again from this wrapper, then the connection's bytes.
pub struct Vetted<IO> {
    io: IO,
    /// How much of the preface the server has read back.
    replayed: usize,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Vetted<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.replayed < PREFACE.len() {
            let n = (PREFACE.len() - this.replayed).min(buf.remaining());
            buf.put_slice(&PREFACE[this.replayed..this.replayed + n]);
            this.replayed += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Vetted<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<IO: Connected> Connected for Vetted<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
#[path = "intake_tests.rs"]
mod tests;

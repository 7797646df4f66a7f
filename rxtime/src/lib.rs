//! When received bytes reached this host, not when a task got round to
//! reading them.
//!
//! A timestamp taken after a read returns includes the time the reading task
//! waited to be woken and scheduled — on a busy machine, up to milliseconds
//! the peer did not spend. On Linux, [`enable`] asks the kernel to stamp every
//! received segment (`SO_TIMESTAMPNS`) and reads go through `recvmsg`, so each
//! read carries the time its last segment arrived. That stamp is on the wall
//! clock (`CLOCK_REALTIME`); [`arrival`] carries it over to tokio's monotonic
//! clock, which all other timestamps use, by subtracting its age from "now".
//!
//! A stamp that is missing (the kernel gave none, another platform), in the
//! future, or older than [`MAX_AGE`] (the wall clock was stepped) falls back
//! to "now" — the reading time, which is never early. Callers that know a
//! lower bound (the request's send time, the previous read) floor the result
//! at it.
//!
//! Linux stamps segments on receive only while some socket on the host asks
//! for it, and turns that on a moment *after* the first one asks (a deferred
//! kernel work item). Bytes that arrive before then carry no stamp and are
//! timed when read. [`hold_enabled`] keeps one socket asking for the life of
//! the process, so stamping is on before the first request and stays on
//! between connections; [`wait_until_active`] waits until it has taken effect.
//!
//! The agent's HTTP/1.1 client times tokens with [`read`]; the simulator
//! accepts [`StampedStream`]s so its server-side latency starts when the
//! request reached its socket.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Stamps older than this are taken as a wall-clock step, not as bytes that
/// waited that long: the read's own time is used instead.
pub const MAX_AGE: Duration = Duration::from_secs(10);

/// When bytes stamped `stamp` by the kernel arrived, on the monotonic clock,
/// given both clocks read together just after the read (`mono_now`,
/// `real_now`).
pub fn arrival(mono_now: Instant, real_now: SystemTime, stamp: Option<SystemTime>) -> Instant {
    let Some(stamp) = stamp else {
        return mono_now;
    };
    match real_now.duration_since(stamp) {
        Ok(age) if age <= MAX_AGE => mono_now.checked_sub(age).unwrap_or(mono_now),
        _ => mono_now,
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io::{self, IoSliceMut};
    use std::net::{Ipv4Addr, UdpSocket};
    use std::os::fd::{AsRawFd, RawFd};
    use std::sync::OnceLock;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
    use nix::sys::time::TimeSpec;
    use tokio::io::Interest;
    use tokio::net::TcpStream;

    /// Room for one control message: the receive timestamp.
    pub fn control_buffer() -> Vec<u8> {
        nix::cmsg_space!(TimeSpec)
    }

    /// Asks the kernel to stamp `stream`'s received segments; `false` if it
    /// refused (reads then fall back to their own time).
    pub fn enable(stream: &TcpStream) -> bool {
        hold_enabled();
        setsockopt(stream, sockopt::ReceiveTimestampns, &true).is_ok()
    }

    /// A loopback UDP socket asking for receive stamps.
    fn stamped_udp() -> io::Result<UdpSocket> {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        setsockopt(&sock, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)?;
        Ok(sock)
    }

    /// The socket that keeps the host's receive stamping on (see the crate doc).
    static HOLDER: OnceLock<Option<UdpSocket>> = OnceLock::new();

    pub fn hold_enabled() -> bool {
        HOLDER.get_or_init(|| stamped_udp().ok()).is_some()
    }

    /// Whether a datagram that waited `WAIT` unread comes back stamped with
    /// its arrival rather than its reading.
    fn stamps_arrivals() -> io::Result<bool> {
        const WAIT: Duration = Duration::from_millis(2);
        let sock = stamped_udp()?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
        sock.send_to(b"?", sock.local_addr()?)?;
        std::thread::sleep(WAIT);
        let mut buf = [0u8; 1];
        let (_, stamp) = recv_stamped(sock.as_raw_fd(), &mut buf, &mut control_buffer())?;
        Ok(stamp
            .and_then(|s| SystemTime::now().duration_since(s).ok())
            .is_some_and(|age| age >= WAIT / 2))
    }

    pub fn wait_until_active(timeout: Duration) -> bool {
        if !hold_enabled() {
            return false;
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match stamps_arrivals() {
                Ok(true) => return true,
                Ok(false) => {}
                // A probe that could not run at all: do not spin on it.
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
        }
    }

    /// One non-blocking `recvmsg`: the byte count and the kernel's stamp.
    pub fn try_read(
        stream: &TcpStream,
        buf: &mut [u8],
        control: &mut [u8],
    ) -> io::Result<(usize, Option<SystemTime>)> {
        let fd = stream.as_raw_fd();
        stream.try_io(Interest::READABLE, || recv_stamped(fd, buf, control))
    }

    /// One `recvmsg` on `fd`: the byte count and the kernel's stamp.
    fn recv_stamped(
        fd: RawFd,
        buf: &mut [u8],
        control: &mut [u8],
    ) -> io::Result<(usize, Option<SystemTime>)> {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = recvmsg::<()>(fd, &mut iov, Some(control), MsgFlags::empty())
            .map_err(io::Error::from)?;
        let stamp = msg.cmsgs().ok().and_then(|mut c| {
            c.find_map(|m| match m {
                ControlMessageOwned::ScmTimestampns(ts) => wall_time(ts),
                _ => None,
            })
        });
        Ok((msg.bytes, stamp))
    }

    /// A kernel timestamp as wall-clock time; `None` if it is before 1970.
    fn wall_time(ts: TimeSpec) -> Option<SystemTime> {
        let secs = u64::try_from(ts.tv_sec()).ok()?;
        let nanos = u32::try_from(ts.tv_nsec()).ok()?;
        UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;
    use std::time::{Duration, SystemTime};

    use tokio::net::TcpStream;

    /// No control messages are read on this platform.
    pub fn control_buffer() -> Vec<u8> {
        Vec::new()
    }

    /// Receive timestamps are not used on this platform.
    pub fn enable(_stream: &TcpStream) -> bool {
        false
    }

    pub fn hold_enabled() -> bool {
        false
    }

    pub fn wait_until_active(_timeout: Duration) -> bool {
        false
    }

    /// One non-blocking read; no stamp on this platform.
    pub fn try_read(
        stream: &TcpStream,
        buf: &mut [u8],
        _control: &mut [u8],
    ) -> io::Result<(usize, Option<SystemTime>)> {
        stream.try_read(buf).map(|n| (n, None))
    }
}

pub use imp::{control_buffer, enable};

/// Keeps the host's receive stamping on for the life of the process (one
/// loopback UDP socket that asks for it); call it early, before the first
/// connection. `false` where that is not possible (another platform, no
/// socket). [`enable`] calls it too.
pub fn hold_enabled() -> bool {
    imp::hold_enabled()
}

/// Blocks until received bytes are stamped with their arrival (the kernel
/// has acted on [`hold_enabled`]), for at most `timeout`: probes a loopback
/// datagram left unread for 2 ms. `false` if stamping did not take effect,
/// or on another platform.
pub fn wait_until_active(timeout: Duration) -> bool {
    imp::wait_until_active(timeout)
}

/// One non-blocking read into `buf`: the byte count (0 at end of stream) and
/// when those bytes reached this host. `control` comes from
/// [`control_buffer`]. `WouldBlock` means "not readable yet" and clears the
/// stream's readiness, as [`TcpStream::try_read`] does.
fn try_read(
    stream: &TcpStream,
    buf: &mut [u8],
    control: &mut [u8],
) -> io::Result<(usize, Instant)> {
    let (n, stamp) = imp::try_read(stream, buf, control)?;
    Ok((n, arrival(Instant::now(), SystemTime::now(), stamp)))
}

/// Polls [`try_read`] until it has bytes, end of stream or an error.
fn poll_read(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    buf: &mut [u8],
    control: &mut [u8],
) -> Poll<io::Result<(usize, Instant)>> {
    loop {
        ready!(stream.poll_read_ready(cx))?;
        match try_read(stream, buf, control) {
            Err(e) if would_block(&e) => {}
            done => return Poll::Ready(done),
        }
    }
}

/// Reads into `buf` once `stream` is readable: the byte count (0 at end of
/// stream) and when those bytes reached this host.
pub async fn read(
    stream: &TcpStream,
    buf: &mut [u8],
    control: &mut [u8],
) -> io::Result<(usize, Instant)> {
    loop {
        stream.readable().await?;
        match try_read(stream, buf, control) {
            Err(e) if would_block(&e) => {}
            done => return done,
        }
    }
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// When the latest read of a [`StampedStream`] brought bytes; shared, so a
/// request handler can ask while the connection owns the stream.
#[derive(Debug, Clone, Default)]
pub struct LastArrival(Arc<Mutex<Option<Instant>>>);

impl LastArrival {
    /// The arrival of the latest read that brought bytes; `None` before any.
    pub fn get(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, at: Instant) {
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Reads arrive in order: a wall-clock step cannot put one before the last.
        *last = Some(last.map_or(at, |prev| prev.max(at)));
    }
}

/// A TCP stream whose reads record when their bytes arrived ([`LastArrival`]);
/// writes pass straight through.
#[derive(Debug)]
pub struct StampedStream {
    inner: TcpStream,
    control: Vec<u8>,
    last: LastArrival,
}

impl StampedStream {
    /// Wraps `inner`, enabling receive timestamps on it (see [`enable`]).
    pub fn new(inner: TcpStream) -> Self {
        enable(&inner);
        Self {
            inner,
            control: control_buffer(),
            last: LastArrival::default(),
        }
    }

    /// The handle to this stream's latest arrival.
    pub fn last_arrival(&self) -> &LastArrival {
        &self.last
    }
}

impl AsyncRead for StampedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let dst = buf.initialize_unfilled();
        let (n, at) = ready!(poll_read(&this.inner, cx, dst, &mut this.control))?;
        buf.advance(n);
        if n > 0 {
            this.last.set(at);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for StampedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[test]
    fn stamps_map_to_the_monotonic_clock_by_their_age() {
        let mono = Instant::now();
        let real = SystemTime::now();
        let ms = Duration::from_millis;
        assert_eq!(arrival(mono, real, Some(real - ms(3))), mono - ms(3));
        assert_eq!(arrival(mono, real, Some(real)), mono);
        // No stamp, a stamp from the future, one older than a plausible wait:
        // the read's own time.
        assert_eq!(arrival(mono, real, None), mono);
        assert_eq!(arrival(mono, real, Some(real + ms(5))), mono);
        assert_eq!(arrival(mono, real, Some(real - MAX_AGE - ms(1))), mono);
        assert_eq!(arrival(mono, real, Some(real - MAX_AGE)), mono - MAX_AGE);
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    /// Bytes left unread for 200 ms are dated to their sending, not their
    /// reading (Linux; elsewhere reads are dated when they return).
    #[tokio::test]
    async fn a_late_read_is_dated_to_the_bytes_arrival() {
        let active = wait_until_active(Duration::from_secs(5));
        assert_eq!(
            active,
            cfg!(target_os = "linux"),
            "receive stamping took effect"
        );
        let (mut tx, rx) = pair().await;
        let mut rx = StampedStream::new(rx);
        assert_eq!(rx.last_arrival().get(), None);
        let sent = Instant::now();
        tx.write_all(b"hello").await.unwrap();
        let written = Instant::now();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut buf = [0u8; 16];
        let n = rx.read(&mut buf).await.unwrap();
        let read = Instant::now();
        assert_eq!(&buf[..n], b"hello");
        let at = rx.last_arrival().get().expect("a read brought bytes");
        if cfg!(target_os = "linux") {
            assert!(at >= sent.checked_sub(Duration::from_millis(1)).unwrap());
            assert!(
                at <= written + Duration::from_millis(20),
                "dated {:?} after the write, {:?} before the read",
                at - written,
                read - at
            );
        } else {
            assert!(at >= read - Duration::from_millis(20));
        }
        // End of stream records nothing and is a read of 0.
        drop(tx);
        assert_eq!(rx.read(&mut buf).await.unwrap(), 0);
        assert_eq!(rx.last_arrival().get(), Some(at));
    }

    /// Writes through the wrapper reach the peer unchanged, vectored or not.
    #[tokio::test]
    async fn writes_pass_through() {
        let (mut peer, s) = pair().await;
        let mut s = StampedStream::new(s);
        s.write_all(b"ab").await.unwrap();
        let parts = [io::IoSlice::new(b"cd"), io::IoSlice::new(b"ef")];
        let n = s.write_vectored(&parts).await.unwrap();
        s.write_all(&b"cdef"[n..]).await.unwrap();
        s.shutdown().await.unwrap();
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"abcdef");
    }
}

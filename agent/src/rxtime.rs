//! When response bytes reached this host, not when the agent got round to
//! reading them.
//!
//! A token's timestamp taken after the read returns includes the time the
//! agent's task waited to be woken and scheduled — time the server did not
//! spend. On Linux the lean HTTP/1.1 client asks the kernel to stamp every
//! received segment (`SO_TIMESTAMPNS`) and reads with `recvmsg`, so each read
//! carries the time its last segment arrived. That stamp is on the wall clock
//! (`CLOCK_REALTIME`); [`arrival`] carries it over to the monotonic clock all
//! other timestamps use by subtracting its age from "now".
//!
//! A stamp that is missing (the kernel did not give one, another platform),
//! in the future, or older than [`MAX_AGE`] (the wall clock was stepped)
//! falls back to "now" — the reading time, which is never early. Callers
//! also floor the result at the request's send time and at the previous
//! read's arrival, so a clock step can shorten nothing below what happened.

use std::time::{Duration, SystemTime};

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
    use std::os::fd::AsRawFd;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
    use nix::sys::time::TimeSpec;
    use tokio::io::Interest;
    use tokio::net::TcpStream;
    use tokio::time::Instant;

    /// Room for one control message: the receive timestamp.
    pub fn control_buffer() -> Vec<u8> {
        nix::cmsg_space!(TimeSpec)
    }

    /// Asks the kernel to stamp `stream`'s received segments; `false` if it
    /// refused (reads then fall back to their own time).
    pub fn enable(stream: &TcpStream) -> bool {
        setsockopt(stream, sockopt::ReceiveTimestampns, &true).is_ok()
    }

    /// Reads into `buf` once `stream` is readable: the byte count (0 at end
    /// of stream) and when those bytes arrived.
    pub async fn read(
        stream: &TcpStream,
        buf: &mut [u8],
        control: &mut [u8],
    ) -> io::Result<(usize, Instant)> {
        let fd = stream.as_raw_fd();
        loop {
            stream.readable().await?;
            let got = stream.try_io(Interest::READABLE, || {
                let mut iov = [IoSliceMut::new(&mut *buf)];
                let msg = recvmsg::<()>(fd, &mut iov, Some(&mut *control), MsgFlags::empty())
                    .map_err(io::Error::from)?;
                let stamp = msg.cmsgs().ok().and_then(|mut c| {
                    c.find_map(|m| match m {
                        ControlMessageOwned::ScmTimestampns(ts) => wall_time(ts),
                        _ => None,
                    })
                });
                Ok((msg.bytes, stamp))
            });
            match got {
                Ok((n, stamp)) => {
                    let mono_now = Instant::now();
                    let at = super::arrival(mono_now, SystemTime::now(), stamp);
                    return Ok((n, at));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
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

    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;
    use tokio::time::Instant;

    /// No control messages are read on this platform.
    pub fn control_buffer() -> Vec<u8> {
        Vec::new()
    }

    /// Receive timestamps are not used on this platform.
    pub fn enable(_stream: &TcpStream) -> bool {
        false
    }

    /// Reads into `buf`: the byte count and the time the read returned.
    pub async fn read(
        stream: &mut TcpStream,
        buf: &mut [u8],
        _control: &mut [u8],
    ) -> io::Result<(usize, Instant)> {
        let n = stream.read(buf).await?;
        Ok((n, Instant::now()))
    }
}

pub use imp::{control_buffer, enable};

/// Reads into `buf`: the byte count (0 at end of stream) and when those
/// bytes reached this host (see the module doc). `control` comes from
/// [`control_buffer`].
pub async fn read(
    stream: &mut TcpStream,
    buf: &mut [u8],
    control: &mut [u8],
) -> std::io::Result<(usize, Instant)> {
    imp::read(stream, buf, control).await
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

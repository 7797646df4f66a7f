//! How an agent knows its controller is still there, at a cost a controller
//! serving 10,000 agents can carry.
//!
//! A controller is lost in one of three ways, and each has its own sign:
//! - **Its process dies.** Its kernel closes the connection and the session
//!   ends at once.
//! - **Its host is cut off or powered off.** TCP keepalive probes
//!   ([`TCP_KEEPALIVE`]) and a bound on unacknowledged bytes
//!   ([`TCP_USER_TIMEOUT`]) end the connection within [`TCP_USER_TIMEOUT`].
//!   The controller's kernel answers the probes; its process never wakes for
//!   them.
//! - **Its process stops answering without closing** (frozen, stopped: a
//!   process whose runtime still runs but whose run loop is stuck answers,
//!   as it answered HTTP/2 pings). A window report not acknowledged within
//!   [`ack_deadline`] sends a [`proto::PingRequest`], which the controller's
//!   process answers at once, outside its run loop. No answer within [`PING_TIMEOUT`] ends the
//!   session; an answer says the controller is only behind (or does not take
//!   that report) and the watch starts over ([`AckWatch`]). Between phases,
//!   when no report waits, an HTTP/2 ping after [`HTTP2_PING_INTERVAL`] of
//!   silence does the same.
//!
//! An HTTP/2 ping every second would find all three within 3 s, but each
//! costs the controller's process a wake-up and two system calls: 12–15 µs
//! in `controller_scale`, most of its budget of 20 µs per agent-window at
//! 10,000 agents, where windows are sent ten to a message.

use socket2::{SockRef, TcpKeepalive};
use stampede_common::proto::{self, session_request::Kind as Up};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// TCP keepalive: quiet time before the first probe, and time between
/// probes.
pub const TCP_KEEPALIVE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(1));

/// How long sent bytes or keepalive probes may go unanswered by the
/// controller's host before the kernel drops the connection.
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(4);

/// How long a new session waits for the controller's `Welcome` (a frozen
/// controller's kernel still accepts the connection and its bytes).
pub const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the controller has to answer a [`proto::PingRequest`].
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Silence after which the agent pings the controller over HTTP/2, and how
/// long it waits for the answer: the check for a session with no report
/// waiting (while reports flow, each acknowledgement resets the silence).
pub const HTTP2_PING_INTERVAL: Duration = Duration::from_secs(20);
/// See [`HTTP2_PING_INTERVAL`].
pub const HTTP2_PING_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a sent report may wait for its acknowledgement before the agent
/// asks the controller whether it is there: half the time between the
/// phase's reports, at least 2 s (a controller acknowledges within
/// milliseconds when it keeps up; one serving 10,000 agents, behind by
/// seconds, is not taken for lost).
pub fn ack_deadline(report_interval: Duration) -> Duration {
    (report_interval / 2).max(Duration::from_secs(2))
}

/// Set the connection's options towards the controller: no Nagle delay,
/// keepalive probes and the bound on unanswered bytes.
pub fn tune(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let sock = SockRef::from(stream);
    let (idle, interval) = TCP_KEEPALIVE;
    let keepalive = TcpKeepalive::new().with_time(idle);
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "macos"))]
    let keepalive = keepalive.with_interval(interval).with_retries(3);
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "macos")))]
    let _ = interval;
    sock.set_tcp_keepalive(&keepalive)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    sock.set_tcp_user_timeout(Some(TCP_USER_TIMEOUT))?;
    Ok(())
}

/// Most messages an [`AckWatch`] keeps; beyond it the oldest is forgotten
/// (the deadline then runs from a later one).
const MAX_WAITING: usize = 1024;

/// The report messages of one session that wait for their acknowledgement.
#[derive(Debug, Default)]
pub struct AckWatch {
    /// Each message's last sequence number and when it was sent, in sending
    /// order.
    waiting: VecDeque<(u64, Instant)>,
}

impl AckWatch {
    /// A message was sent at `at`; it waits if it carries window reports.
    pub fn sent(&mut self, kind: &Up, at: Instant) {
        let last = match kind {
            Up::WindowReport(w) => w.sequence,
            Up::WindowReports(b) => match b.reports.last() {
                Some(w) => w.sequence,
                None => return,
            },
            _ => return,
        };
        if self.waiting.len() >= MAX_WAITING {
            self.waiting.pop_front();
        }
        self.waiting.push_back((last, at));
    }

    /// An acknowledgement arrived: the controller takes a session's reports
    /// in order, so every message up to its highest sequence is answered
    /// (one that carried only another phase's reports is never
    /// acknowledged, and does not wait beyond the next).
    pub fn acked(&mut self, ack: &proto::Ack) {
        let top = ack
            .more_sequences
            .iter()
            .copied()
            .fold(ack.sequence, u64::max);
        while self.waiting.front().is_some_and(|(last, _)| *last <= top) {
            self.waiting.pop_front();
        }
    }

    /// The controller answered a ping: what waits is not its silence.
    pub fn answered(&mut self) {
        self.waiting.clear();
    }

    /// When to ask the controller whether it is there (`None`: nothing waits).
    pub fn due(&self, deadline: Duration) -> Option<Instant> {
        self.waiting.front().map(|(_, at)| *at + deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(sequence: u64) -> proto::WindowReport {
        proto::WindowReport {
            sequence,
            ..Default::default()
        }
    }

    fn ack(sequence: u64, more: &[u64]) -> proto::Ack {
        proto::Ack {
            sequence,
            more_sequences: more.to_vec(),
        }
    }

    #[test]
    fn the_deadline_is_half_the_report_interval_and_at_least_two_seconds() {
        assert_eq!(ack_deadline(Duration::from_secs(1)), Duration::from_secs(2));
        assert_eq!(
            ack_deadline(Duration::from_secs(10)),
            Duration::from_secs(5)
        );
        assert_eq!(ack_deadline(Duration::ZERO), Duration::from_secs(2));
    }

    #[test]
    fn the_oldest_unanswered_message_sets_the_deadline() {
        let t0 = Instant::now();
        let d = Duration::from_secs(2);
        let mut w = AckWatch::default();
        assert_eq!(w.due(d), None);
        w.sent(&Up::PhaseDone(proto::PhaseDone::default()), t0);
        assert_eq!(w.due(d), None, "PhaseDone is not acknowledged");
        w.sent(&Up::WindowReport(window(1)), t0);
        let gathered = proto::WindowReports {
            reports: vec![window(2), window(3)],
        };
        w.sent(&Up::WindowReports(gathered), t0 + d);
        assert_eq!(w.due(d), Some(t0 + d));
        w.acked(&ack(1, &[]));
        assert_eq!(w.due(d), Some(t0 + 2 * d));
        // A partial acknowledgement of the gathered message does not answer it.
        w.acked(&ack(2, &[]));
        assert_eq!(w.due(d), Some(t0 + 2 * d));
        w.acked(&ack(2, &[3]));
        assert_eq!(w.due(d), None);
    }

    #[test]
    fn a_message_never_acknowledged_waits_only_until_a_later_one_is() {
        let t0 = Instant::now();
        let d = Duration::from_secs(2);
        let mut w = AckWatch::default();
        w.sent(&Up::WindowReport(window(4)), t0);
        w.sent(&Up::WindowReport(window(5)), t0 + d);
        w.acked(&ack(5, &[]));
        assert_eq!(w.due(d), None);
        w.sent(&Up::WindowReport(window(6)), t0);
        w.answered();
        assert_eq!(w.due(d), None);
    }
}

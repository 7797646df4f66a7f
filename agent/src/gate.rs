//! The last look at a request before its bytes go out, so that "sent" means
//! written to the server.
//!
//! An agent stalled (SIGSTOP, a frozen VM, CPU starvation) between picking
//! a request up and writing it would otherwise write a request that can
//! only time out, and blame the server for it. Instead, a request whose
//! deadline (intended time + request timeout) has passed when its
//! connection is ready is not written: it is [`Miss::Expired`], counted where
//! the open loop counts arrivals it reaches too late. A request that goes
//! out is announced once, immediately before its write; one that fails
//! before it could be written (its connection refused, or timing out or
//! abandoned while connecting) is announced when it fails, so every request
//! that ends as a success or a failure class was counted as sent.

use crate::failure::FailureClass;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::time::Instant;

/// A request that brought no success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// It failed as this class (after it was written, or while connecting).
    Failed(FailureClass),
    /// Its deadline had passed before it could be written: never sent.
    Expired,
}

impl From<FailureClass> for Miss {
    fn from(class: FailureClass) -> Self {
        Miss::Failed(class)
    }
}

/// One request's times and the check it passes just before its write.
pub struct WriteGate<'a> {
    intended: Instant,
    deadline: Instant,
    on_sent: Option<&'a (dyn Fn() + Sync)>,
    sent: AtomicBool,
}

impl<'a> WriteGate<'a> {
    /// A request intended at `intended` that may run until `deadline`.
    pub fn new(intended: Instant, deadline: Instant) -> Self {
        Self {
            intended,
            deadline,
            on_sent: None,
            sent: AtomicBool::new(false),
        }
    }

    /// Call `on_sent` once when the request counts as sent.
    #[must_use]
    pub fn on_sent(mut self, on_sent: &'a (dyn Fn() + Sync)) -> Self {
        self.on_sent = Some(on_sent);
        self
    }

    /// When the request was due.
    pub fn intended(&self) -> Instant {
        self.intended
    }

    /// Until when it may run.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Called with the connection in hand, immediately before the write:
    /// [`Miss::Expired`] when the deadline has passed, otherwise the request
    /// counts as sent.
    pub fn pass(&self) -> Result<(), Miss> {
        if Instant::now() >= self.deadline {
            return Err(Miss::Expired);
        }
        self.mark_sent();
        Ok(())
    }

    /// Count the request as sent, unless it already is.
    pub fn mark_sent(&self) {
        if !self.sent.swap(true, Ordering::Relaxed)
            && let Some(on_sent) = self.on_sent
        {
            on_sent();
        }
    }

    /// Whether the request counts as sent.
    pub fn is_sent(&self) -> bool {
        self.sent.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_request_is_sent_once_and_never_past_its_deadline() {
        let count = AtomicU32::new(0);
        let on_sent = || {
            count.fetch_add(1, Ordering::Relaxed);
        };
        let now = Instant::now();
        let gate = WriteGate::new(now, now + Duration::from_secs(1)).on_sent(&on_sent);
        assert_eq!(gate.pass(), Ok(()));
        gate.mark_sent();
        assert_eq!(count.load(Ordering::Relaxed), 1);

        let late = WriteGate::new(now, now + Duration::from_secs(1)).on_sent(&on_sent);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(late.pass(), Err(Miss::Expired));
        assert!(!late.is_sent());
        assert_eq!(count.load(Ordering::Relaxed), 1);
    }
}

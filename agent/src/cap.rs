//! The open loop's concurrency cap (`max_concurrency`, as in `vllm bench
//! serve --max-concurrency`): a rate with a bound on requests in flight.
//!
//! Unlike the `max_in_flight` safety bound, which skips an arrival that
//! finds the agent full, an arrival under the cap waits for a free slot.
//! Waiting arrivals are not tasks or queued entries: the open loop itself
//! waits, so the arrivals behind the first one stay in the (lazily computed)
//! schedule with their intended times, and they are served first come,
//! first served. Memory does not grow with the wait. An arrival whose
//! deadline (intended time + request timeout) passes while it waits expires
//! unsent; one that gets a slot is sent with its latency measured from its
//! intended time, and the wait is part of its schedule lag.
//!
//! Only the open loop takes slots (it alone raises the in-flight count);
//! each request gives its slot back when it ends ([`Cap::freed`]).

use std::sync::atomic::{AtomicU32, Ordering};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The cap of one phase on this agent.
#[derive(Debug)]
pub struct Cap {
    /// The cluster-wide cap (this agent's part depends on its slice).
    pub total: u32,
    freed: Notify,
}

/// How a wait for a slot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A slot was free at once.
    Free,
    /// A slot freed after a wait: the arrival can be sent now.
    Freed,
    /// The arrival's deadline passed first.
    Expired,
    /// The phase was stopped first.
    Stopped,
}

impl Cap {
    /// A cap of `total` requests in flight across the cluster; `None` for 0 (no cap).
    pub fn new(total: u32) -> Option<Self> {
        (total > 0).then(|| Self {
            total,
            freed: Notify::new(),
        })
    }

    /// A request of the phase ended: wake the arrival waiting for a slot.
    pub fn freed(&self) {
        // A permit is kept when nobody waits yet, so no wake-up is lost
        // between the check in `slot` and its wait.
        self.freed.notify_one();
    }

    /// Wait until fewer than `part` requests are in flight (then the caller
    /// takes the slot by raising `in_flight`), the `deadline` passes or `stop`.
    pub async fn slot(
        &self,
        in_flight: &AtomicU32,
        part: u32,
        deadline: Instant,
        stop: &CancellationToken,
    ) -> Slot {
        let mut free = Slot::Free;
        loop {
            if in_flight.load(Ordering::Acquire) < part {
                return free;
            }
            free = Slot::Freed;
            if Instant::now() >= deadline {
                return Slot::Expired;
            }
            tokio::select! {
                biased;
                () = stop.cancelled() => return Slot::Stopped,
                () = self.freed.notified() => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_freed_slot_wakes_the_waiting_arrival() {
        let cap = Arc::new(Cap::new(1).unwrap());
        let in_flight = Arc::new(AtomicU32::new(1));
        let stop = CancellationToken::new();
        let far = Instant::now() + Duration::from_secs(60);
        let releaser = {
            let (cap, in_flight) = (cap.clone(), in_flight.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                in_flight.fetch_sub(1, Ordering::AcqRel);
                cap.freed();
            })
        };
        let before = Instant::now();
        assert_eq!(cap.slot(&in_flight, 1, far, &stop).await, Slot::Freed);
        assert_eq!(before.elapsed(), Duration::from_secs(2));
        releaser.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_at_the_deadline_or_on_stop() {
        let cap = Cap::new(2).unwrap();
        let full = AtomicU32::new(2);
        let stop = CancellationToken::new();
        let deadline = Instant::now() + Duration::from_secs(3);
        assert_eq!(cap.slot(&full, 2, deadline, &stop).await, Slot::Expired);
        assert_eq!(Instant::now(), deadline);
        stop.cancel();
        let later = deadline + Duration::from_secs(3);
        assert_eq!(cap.slot(&full, 2, later, &stop).await, Slot::Stopped);
        assert_eq!(
            cap.slot(&AtomicU32::new(1), 2, later, &stop).await,
            Slot::Free
        );
        assert!(Cap::new(0).is_none());
    }
}

//! A high-resolution timer for deadlines that must not be late.
//!
//! tokio's timer works in whole milliseconds: a sleep fires on the first
//! millisecond tick at or after its deadline, up to ~1.5 ms late, so a 5 ms
//! inter-token gap comes out as a mix of ~4.3 and ~5.3 ms gaps, and a 20 ms
//! TTFT up to 1.5 ms long. Benchmarks compare both against the configured
//! values, so every simulated deadline (each token of a fixed timeline, each
//! engine step) waits here instead. Deadlines sit in a heap served by one OS
//! thread that waits on a condition variable with nanosecond timeouts (late
//! by the kernel's timer slack, ~50 µs) and wakes every task due, in one
//! batch, whenever it wakes.
//!
//! Cost per deadline: one heap push under a mutex (a notification only when
//! it becomes the earliest) and one wake from the timer thread. Deadlines
//! that fall due together share one wake-up of the thread, and wake-ups come
//! at most every [`MIN_PERIOD`], so with thousands of open streams the
//! wake-ups, which cost more than the deadlines, stay bounded (measured with
//! the `sim_cost` bench: docs/simulator.md, "Cost").

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

struct Entry {
    at: Instant,
    seq: u64,
    waker: Waker,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // Reversed: the heap's top is the earliest deadline.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other.at.cmp(&self.at).then(other.seq.cmp(&self.seq))
    }
}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Entry>,
    seq: u64,
    shutdown: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

/// Owner of the timer thread; the thread ends when the last handle is dropped.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .shutdown = true;
        self.0.cv.notify_all();
    }
}

/// A handle to the timer; cheap to clone.
#[derive(Clone)]
pub struct HrTimer {
    owner: Arc<Owner>,
}

impl HrTimer {
    /// Start the timer thread.
    pub fn new() -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("stampede-sim-timer".into())
            .spawn(move || run(&worker))?;
        Ok(Self {
            owner: Arc::new(Owner(shared)),
        })
    }

    /// A future that completes at `at` (std clock).
    pub fn sleep_until(&self, at: Instant) -> HrSleep {
        HrSleep {
            shared: self.owner.0.clone(),
            at,
            registered: None,
        }
    }
}

/// Shortest time between two batches of wakes: bounds the thread's wake-ups
/// (and the runtime's) at 10,000 a second however dense the deadlines, for at
/// most this much added lateness, and only while deadlines are that dense.
const MIN_PERIOD: Duration = Duration::from_micros(100);

fn run(shared: &Shared) {
    let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    let mut due: Vec<Waker> = Vec::new();
    let mut last_batch: Option<Instant> = None;
    loop {
        if state.shutdown {
            // Wake everyone so no task waits forever on a dead timer.
            due.extend(state.heap.drain().map(|e| e.waker));
            drop(state);
            due.into_iter().for_each(Waker::wake);
            return;
        }
        let now = Instant::now();
        while state.heap.peek().is_some_and(|e| e.at <= now) {
            if let Some(e) = state.heap.pop() {
                due.push(e.waker);
            }
        }
        if !due.is_empty() {
            last_batch = Some(now);
            drop(state);
            due.drain(..).for_each(Waker::wake);
            state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            continue;
        }
        state = match state.heap.peek().map(|e| e.at) {
            Some(at) => {
                let at = last_batch.map_or(at, |b| at.max(b + MIN_PERIOD));
                shared
                    .cv
                    .wait_timeout(state, at.saturating_duration_since(now))
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => shared.cv.wait(state).unwrap_or_else(|e| e.into_inner()),
        };
    }
}

/// Future returned by [`HrTimer::sleep_until`].
pub struct HrSleep {
    shared: Arc<Shared>,
    at: Instant,
    registered: Option<Waker>,
}

impl Future for HrSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.at {
            return Poll::Ready(());
        }
        if self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        let waker = cx.waker().clone();
        let at = self.at;
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.shutdown {
            return Poll::Ready(());
        }
        let earliest = state.heap.peek().is_none_or(|e| at < e.at);
        state.seq += 1;
        let seq = state.seq;
        state.heap.push(Entry {
            at,
            seq,
            waker: waker.clone(),
        });
        drop(state);
        if earliest {
            self.shared.cv.notify_one();
        }
        self.registered = Some(waker);
        Poll::Pending
    }
}

/// The process's timer, started on first use; `None` if its thread could not
/// start (then callers fall back to tokio's timer).
fn process_timer() -> Option<&'static HrTimer> {
    static TIMER: OnceLock<Option<HrTimer>> = OnceLock::new();
    TIMER.get_or_init(|| HrTimer::new().ok()).as_ref()
}

/// What a simulated timeline sleeps on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Clock {
    /// The process's high-resolution timer, on the real clock.
    #[default]
    Precise,
    /// tokio's timer, which tests in paused time can drive.
    #[cfg(test)]
    Tokio,
}

impl Clock {
    /// Returns at `at` (at once if it has passed).
    pub(crate) async fn sleep_until(self, at: tokio::time::Instant) {
        match (self, process_timer()) {
            (Self::Precise, Some(timer)) => timer.sleep_until(at.into_std()).await,
            _ => tokio::time::sleep_until(at).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn fires_on_time_and_in_order() {
        let timer = HrTimer::new().unwrap();
        let start = Instant::now();
        let mut late = Vec::new();
        for ms in [3u64, 1, 2] {
            let at = start + Duration::from_millis(10 + ms);
            let t = timer.clone();
            late.push(tokio::spawn(async move {
                t.sleep_until(at).await;
                Instant::now().saturating_duration_since(at)
            }));
        }
        for h in late {
            let lateness = h.await.unwrap();
            // Generous: a shared 2-core machine may preempt the timer thread.
            assert!(lateness < Duration::from_millis(20), "late by {lateness:?}");
        }
        assert!(start.elapsed() >= Duration::from_millis(13));
    }

    #[tokio::test]
    async fn past_deadline_is_ready_at_once() {
        let timer = HrTimer::new().unwrap();
        timer.sleep_until(Instant::now()).await;
    }
}

//! The continuous-batching engine: one task stepping the running batch, like vLLM's
//! scheduler loop.
//!
//! A fixed per-request timeline cannot saturate, so stress phases against it never find a
//! knee. Here requests queue for a bounded number of batch slots and KV blocks, prefill costs
//! time proportional to the uncached prompt, and every step slows down as the batch grows.
//! The cost is one timer for the whole engine (not one per request) and a few atomic stores
//! per running request per step, so tens of thousands of open streams stay cheap.
//!
//! Handlers [`Engine::submit`] a request and get a [`SeqHandle`]; the engine publishes each
//! token by bumping the handle's counter and waking it. Dropping the handle (client gone)
//! marks the sequence cancelled; the engine frees its slot and blocks at the next step.

mod kv;
mod sched;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::EngineConfig;
use crate::faults::Faults;
use crate::hrtimer::Clock;
use crate::stats::ModelStats;
use kv::block_hashes;
use sched::{Core, Seq};

/// How far behind real time a step may start before the engine stops catching up and
/// restarts its timeline at "now" (keeps steps back to back under timer granularity without
/// bursting tokens after a long stall).
const CATCH_UP: Duration = Duration::from_millis(2);

/// Why a request was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubmitError {
    /// The waiting queue is full.
    QueueFull,
    /// The request needs more KV blocks than the whole cache has.
    TooLarge {
        /// Blocks it needs.
        needed: u64,
        /// Blocks the cache has.
        capacity: u64,
    },
    /// The engine has shut down.
    Closed,
}

/// The per-request state shared by the engine and the response.
#[derive(Debug, Default)]
pub(crate) struct SeqShared {
    /// Tokens generated so far (published by the engine).
    emitted: AtomicU32,
    /// The engine dropped the request without finishing it.
    failed: AtomicBool,
    /// The response is gone; the engine should stop generating.
    cancelled: AtomicBool,
    notify: Notify,
}

/// A response's view of its sequence in the engine.
#[derive(Debug)]
pub(crate) struct SeqHandle {
    shared: Arc<SeqShared>,
    len: u32,
    sent: u32,
}

impl SeqHandle {
    /// Tokens this request generates.
    pub(crate) fn len(&self) -> u32 {
        self.len
    }

    /// Whether every token has been handed out.
    pub(crate) fn emitted_all(&self) -> bool {
        self.sent >= self.len
    }

    /// Waits for the next token and returns its index; `None` at the end (or on failure).
    pub(crate) async fn next_token(&mut self) -> Option<u32> {
        loop {
            if self.sent >= self.len {
                return None;
            }
            if self.sent < self.shared.emitted.load(Ordering::Acquire) {
                self.sent += 1;
                return Some(self.sent - 1);
            }
            if self.shared.failed.load(Ordering::Acquire) {
                return None;
            }
            // `notify_one` stores a permit, so a token published since the load still wakes us.
            self.shared.notify.notified().await;
        }
    }

    /// Waits for the last token; `false` if the engine gave up on the request.
    pub(crate) async fn finish(&mut self) -> bool {
        while self.next_token().await.is_some() {}
        self.sent >= self.len
    }
}

impl Drop for SeqHandle {
    fn drop(&mut self) {
        self.shared.cancelled.store(true, Ordering::Release);
    }
}

/// State shared by the engine task and the submitters.
#[derive(Debug)]
struct Shared {
    core: Mutex<Core>,
    wake: Notify,
    stats: Arc<ModelStats>,
    faults: Arc<Faults>,
    shutdown: CancellationToken,
    spawned: AtomicBool,
    /// What step ends are slept on.
    clock: Clock,
}

/// A handle to one engine; cheap to clone. The engine task is spawned on first use.
#[derive(Debug, Clone)]
pub(crate) struct Engine {
    shared: Arc<Shared>,
}

impl Engine {
    /// An engine with settings `cfg`; `jitter` and `seed` as in [`crate::SimConfig`]; its
    /// steps end on `clock`; it drives the metrics in `stats` (its model's). It exits once
    /// `shutdown` is cancelled and no request is left.
    pub(crate) fn new(
        cfg: EngineConfig,
        jitter: f64,
        seed: u64,
        stats: Arc<ModelStats>,
        faults: Arc<Faults>,
        shutdown: CancellationToken,
        clock: Clock,
    ) -> Self {
        stats
            .metrics
            .kv_total_blocks
            .store(u64::from(cfg.num_blocks), Ordering::Relaxed);
        Self {
            shared: Arc::new(Shared {
                core: Mutex::new(Core::new(cfg, jitter, seed)),
                wake: Notify::new(),
                stats,
                faults,
                shutdown,
                spawned: AtomicBool::new(false),
                clock,
            }),
        }
    }

    /// Queues a request of `prompt_ids` generating `len` tokens that arrived at `arrival`
    /// (`max_tokens`: its parameter, for the metrics). Must be called inside a Tokio runtime
    /// (the engine task is spawned on first use).
    pub(crate) fn submit(
        &self,
        prompt_ids: &[u32],
        len: u32,
        arrival: Instant,
        max_tokens: Option<u32>,
    ) -> Result<SeqHandle, SubmitError> {
        let (block_size, prefix_caching) = {
            let core = lock(&self.shared.core);
            (core.cfg.block_size, core.kv.prefix_caching())
        };
        // Hash outside the lock: it is the only per-prompt-token work.
        let hashes = if prefix_caching {
            block_hashes(prompt_ids, block_size)
        } else {
            Vec::new()
        };
        let shared = Arc::new(SeqShared::default());
        let mut seq = Seq::new(
            Arc::clone(&shared),
            prompt_ids.len() as u64,
            len,
            hashes,
            arrival,
        );
        seq.max_tokens = max_tokens;
        {
            let mut core = lock(&self.shared.core);
            core.enqueue(seq, &self.shared.stats.metrics)?;
        }
        self.ensure_running();
        self.shared.wake.notify_one();
        Ok(SeqHandle {
            shared,
            len,
            sent: 0,
        })
    }

    fn ensure_running(&self) {
        if !self.shared.spawned.swap(true, Ordering::AcqRel) {
            tokio::spawn(run(Arc::clone(&self.shared)));
        }
    }
}

fn lock(core: &Mutex<Core>) -> MutexGuard<'_, Core> {
    // A panic while holding the lock cannot leave the counters worse than stale.
    core.lock().unwrap_or_else(|p| p.into_inner())
}

/// The engine loop: plan a step, sleep until it ends (on the high-resolution timer when
/// serving, so a step is not stretched to tokio's next millisecond tick), publish its
/// tokens; idle when empty.
async fn run(shared: Arc<Shared>) {
    let metrics = &shared.stats.metrics;
    let mut prev_end: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let start = match prev_end {
            Some(p) if now <= p + CATCH_UP => p,
            _ => now,
        };
        let slowdown = shared.faults.slowdown(start);
        let planned = lock(&shared.core).begin_step(metrics, slowdown, start);
        let Some(duration) = planned else {
            prev_end = None;
            tokio::select! {
                () = shared.wake.notified() => continue,
                () = shared.shutdown.cancelled() => {
                    let mut core = lock(&shared.core);
                    if core.is_idle() {
                        core.close();
                        return;
                    }
                    continue;
                }
            }
        };
        let end = start.checked_add(duration).unwrap_or(start);
        shared.clock.sleep_until(end).await;
        lock(&shared.core).end_step(end, duration, metrics);
        prev_end = Some(end);
    }
}

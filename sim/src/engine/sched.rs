//! The scheduler state: waiting queue, running batch, KV cache, and the step arithmetic.
//!
//! Synchronous and clock-free (instants are passed in), so the whole model is a few plain
//! functions under one lock, and the step-time formula lives in exactly one place
//! ([`Core::begin_step`]) that `docs/simulator.md` describes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::kv::{Allocation, KvCache, blocks_for};
use super::{SeqShared, SubmitError};
use crate::config::EngineConfig;
use crate::metrics::{Finished, Metrics};
use crate::rng::{Rng, scale};

/// One request inside the engine.
#[derive(Debug)]
pub(super) struct Seq {
    shared: Arc<SeqShared>,
    prompt_len: u64,
    len: u32,
    hashes: Vec<u64>,
    arrival: Instant,
    alloc: Option<Allocation>,
    generated: u32,
    /// The request's `max_tokens` parameter, for the metrics.
    pub(super) max_tokens: Option<u32>,
    /// Start of the step that admitted it.
    admitted: Option<Instant>,
    /// End of the step that gave its first token.
    first_token: Option<Instant>,
    /// Prompt tokens that hit the prefix cache.
    cached: u64,
}

impl Seq {
    pub(super) fn new(
        shared: Arc<SeqShared>,
        prompt_len: u64,
        len: u32,
        hashes: Vec<u64>,
        arrival: Instant,
    ) -> Self {
        Self {
            shared,
            prompt_len,
            len: len.max(1),
            hashes,
            arrival,
            alloc: None,
            generated: 0,
            max_tokens: None,
            admitted: None,
            first_token: None,
            cached: 0,
        }
    }

    /// The request histograms' view of it once its last token came at `end`.
    fn finished(&self, end: Instant) -> Finished {
        let admitted = self.admitted.unwrap_or(self.arrival);
        let first = self.first_token.unwrap_or(end);
        Finished {
            queued: admitted.saturating_duration_since(self.arrival),
            prefill: first.saturating_duration_since(admitted),
            decode: end.saturating_duration_since(first),
            prompt_tokens: self.prompt_len,
            cached_tokens: self.cached,
            generation_tokens: self.generated,
            max_tokens: self.max_tokens,
        }
    }

    fn cancelled(&self) -> bool {
        self.shared.cancelled.load(Ordering::Acquire)
    }

    fn total_len(&self) -> u64 {
        self.prompt_len + u64::from(self.len)
    }
}

/// Everything the engine owns.
#[derive(Debug)]
pub(super) struct Core {
    pub(super) cfg: EngineConfig,
    pub(super) kv: KvCache,
    waiting: VecDeque<Seq>,
    running: Vec<Seq>,
    jitter: f64,
    rng: Rng,
    closed: bool,
}

impl Core {
    pub(super) fn new(cfg: EngineConfig, jitter: f64, seed: u64) -> Self {
        Self {
            kv: KvCache::new(cfg.block_size, cfg.num_blocks, cfg.prefix_caching),
            cfg,
            waiting: VecDeque::new(),
            running: Vec::new(),
            jitter,
            rng: Rng::new(seed, u64::MAX),
            closed: false,
        }
    }

    /// Queues `seq`, or refuses it: queue full, larger than the cache, engine closed.
    pub(super) fn enqueue(&mut self, seq: Seq, metrics: &Metrics) -> Result<(), SubmitError> {
        if self.closed {
            return Err(SubmitError::Closed);
        }
        let needed = blocks_for(seq.total_len(), self.cfg.block_size);
        if needed > self.kv.total() {
            return Err(SubmitError::TooLarge {
                needed,
                capacity: self.kv.total(),
            });
        }
        if self.waiting.len() >= self.cfg.max_waiting as usize {
            return Err(SubmitError::QueueFull);
        }
        self.waiting.push_back(seq);
        metrics
            .waiting
            .store(self.waiting.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// No request waiting or running.
    pub(super) fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    /// Refuses all later submissions.
    pub(super) fn close(&mut self) {
        self.closed = true;
    }

    /// Starts a step at `now`: drops cancelled requests, admits waiting ones (FIFO, while a
    /// batch slot and KV blocks are free) and returns the step's duration,
    /// `(step_base + step_per_seq × running + prefill_per_token × uncached prompt tokens)
    /// × jitter × slowdown`; `None` when there is nothing to run.
    pub(super) fn begin_step(
        &mut self,
        metrics: &Metrics,
        slowdown: f64,
        now: Instant,
    ) -> Option<Duration> {
        let kv = &mut self.kv;
        self.running.retain_mut(|s| {
            if s.cancelled() {
                if let Some(a) = s.alloc.take() {
                    kv.release(a);
                }
                false
            } else {
                true
            }
        });
        self.waiting.retain(|s| !s.cancelled());

        let mut prefill_tokens = 0u64;
        while self.running.len() < self.cfg.max_num_seqs as usize {
            let Some(head) = self.waiting.front_mut() else {
                break;
            };
            let Some(alloc) = self
                .kv
                .allocate(&head.hashes, head.prompt_len, head.total_len())
            else {
                if self.running.is_empty() {
                    // Cannot happen (submit checks the size, and an empty batch frees every
                    // block), but never wedge the engine on it: fail the request.
                    if let Some(s) = self.waiting.pop_front() {
                        s.shared.failed.store(true, Ordering::Release);
                        s.shared.notify.notify_one();
                    }
                    continue;
                }
                break; // head-of-line: wait for blocks to free up
            };
            if self.kv.prefix_caching() {
                metrics
                    .prefix_queries
                    .fetch_add(head.prompt_len, Ordering::Relaxed);
                metrics
                    .prefix_hits
                    .fetch_add(alloc.hit_tokens, Ordering::Relaxed);
            }
            prefill_tokens += head.prompt_len.saturating_sub(alloc.hit_tokens);
            metrics.prefilled(head.prompt_len, alloc.hit_tokens);
            head.cached = alloc.hit_tokens;
            head.admitted = Some(now);
            head.alloc = Some(alloc);
            head.hashes = Vec::new();
            if let Some(s) = self.waiting.pop_front() {
                self.running.push(s);
            }
        }
        self.publish_gauges(metrics);
        if self.running.is_empty() {
            return None;
        }
        let cfg = &self.cfg;
        let per_seq = cfg
            .step_per_seq
            .checked_mul(u32::try_from(self.running.len()).unwrap_or(u32::MAX))
            .unwrap_or(Duration::MAX);
        let prefill = cfg
            .prefill_per_token
            .checked_mul(u32::try_from(prefill_tokens).unwrap_or(u32::MAX))
            .unwrap_or(Duration::MAX);
        let base = cfg
            .step_base
            .saturating_add(per_seq)
            .saturating_add(prefill);
        let factor = self.rng.jitter(self.jitter) * slowdown;
        Some(scale(base, factor).max(Duration::from_nanos(1)))
    }

    /// Ends the step that ended at `end` and lasted `duration`: every running request gets
    /// one token; finished ones leave the batch and release their blocks.
    pub(super) fn end_step(&mut self, end: Instant, duration: Duration, metrics: &Metrics) {
        let kv = &mut self.kv;
        let mut decode_tokens = 0u64;
        // vLLM's iteration tokens: the prompts of requests prefilled here, and every token.
        let mut step_tokens = 0u64;
        self.running.retain_mut(|s| {
            if s.cancelled() {
                return true; // dropped at the next step start
            }
            s.generated += 1;
            step_tokens += 1;
            if s.generated == 1 {
                step_tokens += s.prompt_len;
                s.first_token = Some(end);
                metrics
                    .ttft
                    .observe(end.saturating_duration_since(s.arrival));
            } else {
                decode_tokens += 1;
            }
            s.shared.emitted.store(s.generated, Ordering::Release);
            s.shared.notify.notify_one();
            if s.generated >= s.len {
                metrics.finished(&s.finished(end));
                if let Some(a) = s.alloc.take() {
                    kv.release(a);
                }
                return false;
            }
            true
        });
        metrics.itl.observe_n(duration, decode_tokens);
        if let Some(h) = &metrics.iteration_tokens
            && step_tokens > 0
        {
            h.observe_count(step_tokens);
        }
        self.publish_gauges(metrics);
    }

    fn publish_gauges(&self, metrics: &Metrics) {
        metrics
            .running
            .store(self.running.len() as u64, Ordering::Relaxed);
        metrics
            .waiting
            .store(self.waiting.len() as u64, Ordering::Relaxed);
        metrics
            .kv_used_blocks
            .store(self.kv.used(), Ordering::Relaxed);
    }
}

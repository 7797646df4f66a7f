//! Request and token counters.
//!
//! Tests and the controller read these to check what the simulator really did (for example
//! that a disconnected client was not counted as served). Lock-free atomics, so thousands of
//! concurrent streams can update them cheaply.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Live counters of one simulator instance, shared between the server and its owner.
///
/// `requests_started` counts every generation request whose handler ran, so
/// `started = served + rejected + in flight + abandoned by the client`.
#[derive(Debug, Default)]
pub struct SimStats {
    started: AtomicU64,
    served: AtomicU64,
    rejected: AtomicU64,
    prompt_tokens: AtomicU64,
    output_tokens: AtomicU64,
}

/// A point-in-time copy of [`SimStats`], served as JSON by `GET /sim/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Generation requests whose handler started (valid or not).
    pub requests_started: u64,
    /// Generation requests answered completely (streams: `[DONE]` handed to the body).
    pub requests_served: u64,
    /// Generation requests answered with a 4xx error.
    pub requests_rejected: u64,
    /// Estimated prompt tokens of the accepted requests (whitespace-separated words).
    pub prompt_tokens: u64,
    /// Content tokens emitted (streamed tokens count even if the client left afterwards).
    pub output_tokens: u64,
}

impl SimStats {
    /// New counters, all zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Generation requests whose handler started (valid or not).
    pub fn requests_started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Generation requests answered completely.
    pub fn requests_served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Generation requests answered with a 4xx error.
    pub fn requests_rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Estimated prompt tokens of the accepted requests.
    pub fn prompt_tokens(&self) -> u64 {
        self.prompt_tokens.load(Ordering::Relaxed)
    }

    /// Content tokens emitted.
    pub fn output_tokens(&self) -> u64 {
        self.output_tokens.load(Ordering::Relaxed)
    }

    /// Copies all counters. Each is read atomically, the set as a whole is not.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            requests_started: self.requests_started(),
            requests_served: self.requests_served(),
            requests_rejected: self.requests_rejected(),
            prompt_tokens: self.prompt_tokens(),
            output_tokens: self.output_tokens(),
        }
    }

    /// Counts a started request and returns its sequence number (used in response ids).
    pub(crate) fn record_started(&self) -> u64 {
        self.started.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn record_served(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_prompt_tokens(&self, n: u64) {
        self.prompt_tokens.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_output_tokens(&self, n: u64) {
        self.output_tokens.fetch_add(n, Ordering::Relaxed);
    }
}

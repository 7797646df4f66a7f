//! Request, token and fault counters.
//!
//! Tests and the controller read these to check what the simulator really did (for example
//! that a disconnected client was not counted as served, or how many faults were injected).
//! Lock-free atomics, so thousands of concurrent streams can update them cheaply.
//! The server keeps one [`SimStats`] for all its models, and each model one of its own
//! ([`ModelStats`]); a request's [`Tally`] counts into both.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::faults::Fault;
use crate::latency::{FirstTokenLatency, LatencySnapshot};
use crate::metrics::Metrics;

/// Live counters of one simulator instance, shared between the server and its owner.
///
/// `requests_started` counts every generation request whose handler ran, so
/// `started = served + rejected + queue_full + injected faults + in flight + abandoned by the
/// client` (a malformed-chunk request that completes is both injected and served).
#[derive(Debug, Default)]
pub struct SimStats {
    started: AtomicU64,
    served: AtomicU64,
    rejected: AtomicU64,
    queue_full: AtomicU64,
    prompt_tokens: AtomicU64,
    output_tokens: AtomicU64,
    faults: [AtomicU64; 6],
    traced: AtomicU64,
    /// Requests generating now on the fixed timeline, across models.
    running: AtomicU64,
    /// Most requests generating at once so far (fixed mode: in flight).
    peak_running: AtomicU64,
    /// The latest `traceparent` headers received, oldest first, at most [`TRACEPARENTS_KEPT`].
    traceparents: Mutex<VecDeque<String>>,
    pub(crate) first_token: FirstTokenLatency,
}

/// One served model's counters (requests routed to it) and metrics.
#[derive(Debug, Default)]
pub(crate) struct ModelStats {
    /// Its requests and tokens, in the shape of the server's.
    pub(crate) counts: SimStats,
    /// Its gauges and histograms.
    pub(crate) metrics: Metrics,
}

impl ModelStats {
    /// Counters at zero and `metrics`.
    pub(crate) fn new(metrics: Metrics) -> Self {
        Self {
            counts: SimStats::new(),
            metrics,
        }
    }
}

/// Where one request's outcome is counted: the server's totals and its model's.
#[derive(Debug, Clone)]
pub(crate) struct Tally {
    /// The server's counters.
    pub(crate) server: Arc<SimStats>,
    /// The model's counters and metrics.
    pub(crate) model: Arc<ModelStats>,
}

impl Tally {
    fn both(&self, f: impl Fn(&SimStats)) {
        f(&self.server);
        f(&self.model.counts);
    }

    /// The request was routed to the model (the server counted it when it started).
    pub(crate) fn routed(&self) {
        self.model.counts.record_started();
    }

    pub(crate) fn served(&self) {
        self.both(SimStats::record_served);
    }

    pub(crate) fn queue_full(&self) {
        self.both(SimStats::record_queue_full);
    }

    pub(crate) fn fault(&self, fault: Fault) {
        self.both(|s| s.record_fault(fault));
    }

    pub(crate) fn prompt_tokens(&self, n: u64) {
        self.both(|s| s.add_prompt_tokens(n));
    }

    pub(crate) fn output_tokens(&self, n: u64) {
        self.both(|s| s.add_output_tokens(n));
    }

    /// The measured arrival → first token latency of a streamed request (server-wide).
    pub(crate) fn first_token(&self, latency: Duration) {
        self.server.first_token.observe(latency);
    }
}

/// How many `traceparent` headers `/sim/traceparents` keeps (the latest ones).
pub const TRACEPARENTS_KEPT: usize = 1024;

/// The `traceparent` headers the simulator received, served by `GET /sim/traceparents`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traceparents {
    /// Generation requests that carried a `traceparent` header.
    pub seen: u64,
    /// The latest headers, oldest first (at most [`TRACEPARENTS_KEPT`]).
    pub recent: Vec<String>,
}

/// How many faults of each kind were injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultCounts {
    /// Requests answered with an injected 429.
    pub error_429: u64,
    /// Requests answered with an injected 500.
    pub error_500: u64,
    /// Requests answered with an injected 503.
    pub error_503: u64,
    /// Responses whose connection was aborted mid-stream.
    pub stream_cut: u64,
    /// Requests that hung before their first token.
    pub hang: u64,
    /// Responses that carried a malformed chunk.
    pub malformed: u64,
}

impl FaultCounts {
    /// Faults of every kind (a malformed chunk counts even if the response completed).
    pub fn total(&self) -> u64 {
        [
            self.error_429,
            self.error_500,
            self.error_503,
            self.stream_cut,
            self.hang,
            self.malformed,
        ]
        .iter()
        .fold(0u64, |s, n| s.saturating_add(*n))
    }
}

/// A point-in-time copy of [`SimStats`], served as JSON by `GET /sim/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Generation requests whose handler started (valid or not).
    pub requests_started: u64,
    /// Generation requests answered completely (streams: `[DONE]` handed to the body).
    pub requests_served: u64,
    /// Generation requests answered with a 4xx error for bad input (not injected faults).
    pub requests_rejected: u64,
    /// Generation requests refused because the engine's waiting queue was full.
    #[serde(default)]
    pub requests_queue_full: u64,
    /// Estimated prompt tokens of the accepted requests (whitespace-separated words).
    pub prompt_tokens: u64,
    /// Content tokens emitted (streamed tokens count even if the client left afterwards).
    pub output_tokens: u64,
    /// Injected faults by kind.
    #[serde(default)]
    pub faults_injected: FaultCounts,
    /// Generation requests that carried a W3C `traceparent` header.
    #[serde(default)]
    pub requests_traced: u64,
    /// Most requests generating at once so far, in fixed mode (a load
    /// generator's concurrency cap can be checked against it).
    #[serde(default)]
    pub peak_running: u64,
}

impl SimStats {
    /// New counters, all zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// A request started generating: count it running, and in the peak.
    pub(crate) fn running_started(&self) {
        let now = self.running.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_running.fetch_max(now, Ordering::Relaxed);
    }

    /// A request counted by [`Self::running_started`] ended.
    pub(crate) fn running_ended(&self) {
        self.running.fetch_sub(1, Ordering::Relaxed);
    }

    /// Generation requests whose handler started (valid or not).
    pub fn requests_started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Generation requests answered completely.
    pub fn requests_served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Generation requests answered with a 4xx error for bad input.
    pub fn requests_rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Generation requests refused because the waiting queue was full.
    pub fn requests_queue_full(&self) -> u64 {
        self.queue_full.load(Ordering::Relaxed)
    }

    /// Estimated prompt tokens of the accepted requests.
    pub fn prompt_tokens(&self) -> u64 {
        self.prompt_tokens.load(Ordering::Relaxed)
    }

    /// Content tokens emitted.
    pub fn output_tokens(&self) -> u64 {
        self.output_tokens.load(Ordering::Relaxed)
    }

    /// Injected faults by kind.
    pub fn faults_injected(&self) -> FaultCounts {
        let f = |i: usize| self.faults[i].load(Ordering::Relaxed);
        FaultCounts {
            error_429: f(0),
            error_500: f(1),
            error_503: f(2),
            stream_cut: f(3),
            hang: f(4),
            malformed: f(5),
        }
    }

    /// Measured handler-start → first-token latency since the last
    /// [`reset_latency`](Self::reset_latency) (streamed requests only).
    pub fn latency(&self) -> LatencySnapshot {
        LatencySnapshot {
            first_token: self.first_token.summary(),
        }
    }

    /// Starts a new latency measurement interval.
    pub fn reset_latency(&self) {
        self.first_token.reset();
    }

    /// Copies all counters. Each is read atomically, the set as a whole is not.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            requests_started: self.requests_started(),
            requests_served: self.requests_served(),
            requests_rejected: self.requests_rejected(),
            requests_queue_full: self.requests_queue_full(),
            prompt_tokens: self.prompt_tokens(),
            output_tokens: self.output_tokens(),
            faults_injected: self.faults_injected(),
            requests_traced: self.traced.load(Ordering::Relaxed),
            peak_running: self.peak_running.load(Ordering::Relaxed),
        }
    }

    /// The `traceparent` headers received so far (the latest ones).
    pub fn traceparents(&self) -> Traceparents {
        let recent = self.traceparents.lock().unwrap_or_else(|e| e.into_inner());
        Traceparents {
            seen: self.traced.load(Ordering::Relaxed),
            recent: recent.iter().cloned().collect(),
        }
    }

    /// Keeps a request's `traceparent` header (the oldest kept one goes when full).
    pub(crate) fn record_traceparent(&self, value: &str) {
        self.traced.fetch_add(1, Ordering::Relaxed);
        let mut recent = self.traceparents.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == TRACEPARENTS_KEPT {
            recent.pop_front();
        }
        recent.push_back(value.to_string());
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

    pub(crate) fn record_queue_full(&self) {
        self.queue_full.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_fault(&self, fault: Fault) {
        let i = match fault {
            Fault::Status(429) => 0,
            Fault::Status(503) => 2,
            Fault::Status(_) => 1,
            Fault::Cut => 3,
            Fault::Hang => 4,
            Fault::Malformed => 5,
        };
        self.faults[i].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_prompt_tokens(&self, n: u64) {
        self.prompt_tokens.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_output_tokens(&self, n: u64) {
        self.output_tokens.fetch_add(n, Ordering::Relaxed);
    }
}

//! Measured server-side first-token latency.
//!
//! The Prometheus TTFT histogram (`metrics`) records each request's *scheduled* first-token
//! offset in vLLM's coarse buckets. A benchmark of the client needs what the server really
//! did: the time from the request's arrival (the kernel's receive time of the read that
//! brought its head, see `accept`) to the first content token being handed to the HTTP body,
//! a late read, timer lateness and scheduling delays included. That is kept here in an exact HDR histogram, so "client TTFT minus server TTFT" isolates the
//! client and the network. Served as quantiles by `GET /sim/latency`; `DELETE /sim/latency`
//! starts a new measurement interval.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// An auto-resizing HDR histogram (3 significant digits) of first-token latencies in
/// microseconds, behind a lock (one short critical section per streamed request).
#[derive(Debug)]
pub(crate) struct FirstTokenLatency {
    hist: Mutex<Histogram<u64>>,
}

impl Default for FirstTokenLatency {
    fn default() -> Self {
        let hist = Histogram::new(3).expect("3 significant digits is a valid configuration");
        Self {
            hist: Mutex::new(hist),
        }
    }
}

/// Quantiles of the measured first-token latency since the last reset, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Streamed requests whose first token was handed out.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest value.
    pub max_ms: f64,
}

/// The body of `GET /sim/latency`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySnapshot {
    /// Request arrival → first content token handed to the response body (streams only).
    pub first_token: LatencySummary,
}

impl FirstTokenLatency {
    fn lock(&self) -> std::sync::MutexGuard<'_, Histogram<u64>> {
        self.hist.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let mut h = self.lock();
        // Auto-resizing, so this fails only beyond the histogram's absolute maximum.
        if h.record(us).is_err() {
            h.saturating_record(us);
        }
    }

    pub(crate) fn summary(&self) -> LatencySummary {
        let h = self.lock();
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.5)),
            p90_ms: ms(h.value_at_quantile(0.9)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }

    pub(crate) fn reset(&self) {
        self.lock().reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_reset() {
        let l = FirstTokenLatency::default();
        assert_eq!(l.summary(), LatencySummary::default());
        for ms in 1..=100u64 {
            l.observe(Duration::from_millis(ms));
        }
        let s = l.summary();
        assert_eq!(s.count, 100);
        assert!((s.p50_ms - 50.0).abs() < 0.1, "{s:?}");
        assert!((s.p99_ms - 99.0).abs() < 0.1, "{s:?}");
        assert!((s.max_ms - 100.0).abs() < 0.1, "{s:?}");
        assert!((s.mean_ms - 50.5).abs() < 0.1, "{s:?}");
        l.reset();
        assert_eq!(l.summary().count, 0);
    }

    #[test]
    fn extremes_are_kept() {
        let l = FirstTokenLatency::default();
        l.observe(Duration::ZERO);
        l.observe(Duration::from_secs(10 * 3600));
        let s = l.summary();
        assert_eq!(s.count, 2);
        assert!(
            (s.max_ms - 36_000_000.0).abs() / 36_000_000.0 < 1e-3,
            "{s:?}"
        );
    }
}

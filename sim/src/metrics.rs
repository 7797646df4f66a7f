//! The server's own metrics in Prometheus text format, with vLLM's names and meanings.
//!
//! stampede scrapes a real vLLM's `/metrics` per phase (prefix-cache hits, KV usage,
//! running/waiting), so the simulator exposes the same names, label (`model_name`) and
//! histogram buckets; the scrape-and-delta code can then be tested without a GPU.
//! Everything is a lock-free atomic: updates cost one `fetch_add`, scrapes never block.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::stats::SimStats;

/// vLLM's `time_to_first_token_seconds` buckets.
const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/// vLLM's `inter_token_latency_seconds` buckets.
const ITL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
/// vLLM's `e2e_request_latency_seconds` buckets.
const E2E_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];

/// A Prometheus histogram with fixed buckets.
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative); the last one is `+Inf`.
    counts: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records `n` observations of `d`.
    pub(crate) fn observe_n(&self, d: Duration, n: u64) {
        if n == 0 {
            return;
        }
        let secs = d.as_secs_f64();
        let i = self.bounds.partition_point(|b| *b < secs);
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(n, Ordering::Relaxed);
        }
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos
            .fetch_add(nanos.saturating_mul(n), Ordering::Relaxed);
    }

    /// Records one observation.
    pub(crate) fn observe(&self, d: Duration) {
        self.observe_n(d, 1);
    }

    /// Total observations.
    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    fn render(&self, out: &mut String, name: &str, help: &str, label: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            match self.bounds.get(i) {
                Some(b) => {
                    let _ = writeln!(out, "{name}_bucket{{{label},le=\"{b:?}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{{label},le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{label}}} {sum:?}");
        let _ = writeln!(out, "{name}_count{{{label}}} {cumulative}");
    }
}

/// Gauges, cache counters and latency histograms (the plain counters live in [`SimStats`]).
#[derive(Debug)]
pub(crate) struct Metrics {
    /// Requests generating (engine: in the running batch; fixed mode: in flight).
    pub running: AtomicU64,
    /// Requests waiting for a batch slot.
    pub waiting: AtomicU64,
    /// KV blocks held by running requests.
    pub kv_used_blocks: AtomicU64,
    /// KV capacity in blocks (0 in fixed mode).
    pub kv_total_blocks: AtomicU64,
    /// Prompt tokens looked up in the prefix cache.
    pub prefix_queries: AtomicU64,
    /// Prompt tokens found in the prefix cache.
    pub prefix_hits: AtomicU64,
    /// Time to first token.
    pub ttft: Histogram,
    /// Inter-token latency.
    pub itl: Histogram,
    /// Arrival to last token.
    pub e2e: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            running: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            kv_used_blocks: AtomicU64::new(0),
            kv_total_blocks: AtomicU64::new(0),
            prefix_queries: AtomicU64::new(0),
            prefix_hits: AtomicU64::new(0),
            ttft: Histogram::new(TTFT_BUCKETS),
            itl: Histogram::new(ITL_BUCKETS),
            e2e: Histogram::new(E2E_BUCKETS),
        }
    }
}

impl Metrics {
    /// KV-cache usage in `[0, 1]` (vLLM's `kv_cache_usage_perc` is a fraction too).
    pub(crate) fn kv_usage(&self) -> f64 {
        let total = self.kv_total_blocks.load(Ordering::Relaxed);
        if total == 0 {
            return 0.0;
        }
        self.kv_used_blocks.load(Ordering::Relaxed) as f64 / total as f64
    }
}

/// `value` escaped for a Prometheus label value.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The whole `/metrics` page (Prometheus text format 0.0.4).
pub(crate) fn render(stats: &SimStats, model: &str) -> String {
    let m = &stats.metrics;
    let label = format!("model_name=\"{}\"", escape_label(model));
    let mut out = String::with_capacity(8 * 1024);
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let gauge = |out: &mut String, name: &str, help: &str, value: String| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{{label}}} {value}"
        );
    };
    gauge(
        &mut out,
        "vllm:num_requests_running",
        "Number of requests in model execution batches.",
        load(&m.running).to_string(),
    );
    gauge(
        &mut out,
        "vllm:num_requests_waiting",
        "Number of requests waiting to be processed.",
        load(&m.waiting).to_string(),
    );
    gauge(
        &mut out,
        "vllm:kv_cache_usage_perc",
        "KV-cache usage. 1 means 100 percent usage.",
        format!("{:?}", m.kv_usage()),
    );
    let counters = [
        (
            "vllm:prefix_cache_queries_total",
            "Prefix cache queries, in terms of number of queried tokens.",
            load(&m.prefix_queries),
        ),
        (
            "vllm:prefix_cache_hits_total",
            "Prefix cache hits, in terms of number of cached tokens.",
            load(&m.prefix_hits),
        ),
        (
            "vllm:prompt_tokens_total",
            "Number of prefill tokens processed.",
            stats.prompt_tokens(),
        ),
        (
            "vllm:generation_tokens_total",
            "Number of generation tokens processed.",
            stats.output_tokens(),
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{{label}}} {value}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP vllm:request_success_total Count of successfully processed requests.\n\
         # TYPE vllm:request_success_total counter\n\
         vllm:request_success_total{{{label},finished_reason=\"length\"}} {}",
        stats.requests_served()
    );
    m.ttft.render(
        &mut out,
        "vllm:time_to_first_token_seconds",
        "Histogram of time to first token in seconds.",
        &label,
    );
    m.itl.render(
        &mut out,
        "vllm:inter_token_latency_seconds",
        "Histogram of inter-token latency in seconds.",
        &label,
    );
    m.e2e.render(
        &mut out,
        "vllm:e2e_request_latency_seconds",
        "Histogram of e2e request latency in seconds.",
        &label,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new(&[0.01, 0.1]);
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_millis(10)); // on the bound: le="0.01"
        h.observe_n(Duration::from_millis(50), 3);
        h.observe(Duration::from_secs(2));
        let mut out = String::new();
        h.render(&mut out, "x", "help", "model_name=\"m\"");
        assert!(
            out.contains("x_bucket{model_name=\"m\",le=\"0.01\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{model_name=\"m\",le=\"0.1\"} 5\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{model_name=\"m\",le=\"+Inf\"} 6\n"),
            "{out}"
        );
        assert!(out.contains("x_count{model_name=\"m\"} 6\n"), "{out}");
        assert!(out.contains("x_sum{model_name=\"m\"} 2.165\n"), "{out}");
        assert_eq!(h.count(), 6);
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

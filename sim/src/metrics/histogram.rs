//! A Prometheus histogram with fixed buckets, lock-free.
//!
//! vLLM's families are histograms of durations (seconds) and of counts (tokens, the `n`
//! parameter); both are the same cumulative-bucket structure, so one type holds either,
//! keeping its sum in integer units (nanoseconds or counts) so updates are one `fetch_add`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Cumulative-bucket histogram; observations are bucketed by `value ≤ bound`.
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: Box<[f64]>,
    /// Per bucket (not cumulative); the last one is `+Inf`.
    counts: Box<[AtomicU64]>,
    /// Sum of the observations in units of `unit` (nanoseconds or plain counts).
    sum: AtomicU64,
    /// The value of one unit of `sum` in the exposed unit.
    unit: f64,
}

impl Histogram {
    /// A histogram of durations, exposed in seconds, with upper bounds `bounds` (seconds).
    pub(crate) fn new(bounds: &[f64]) -> Self {
        Self::with(bounds.into(), 1e-9)
    }

    /// A histogram of counts with upper bounds `bounds`.
    pub(crate) fn of_counts(bounds: impl IntoIterator<Item = u64>) -> Self {
        Self::with(bounds.into_iter().map(|b| b as f64).collect(), 1.0)
    }

    fn with(bounds: Box<[f64]>, unit: f64) -> Self {
        Self {
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            bounds,
            sum: AtomicU64::new(0),
            unit,
        }
    }

    /// Records `n` observations of `value` (exposed unit) worth `units` each in the sum.
    fn add(&self, value: f64, units: u64, n: u64) {
        if n == 0 {
            return;
        }
        let i = self.bounds.partition_point(|b| *b < value);
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(n, Ordering::Relaxed);
        }
        self.sum
            .fetch_add(units.saturating_mul(n), Ordering::Relaxed);
    }

    /// Records `n` observations of `d`.
    pub(crate) fn observe_n(&self, d: Duration, n: u64) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.add(d.as_secs_f64(), nanos, n);
    }

    /// Records one observation of `d`.
    pub(crate) fn observe(&self, d: Duration) {
        self.observe_n(d, 1);
    }

    /// Records one observation of the count `v`.
    pub(crate) fn observe_count(&self, v: u64) {
        self.add(v as f64, v, 1);
    }

    /// Total observations.
    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Appends the series of one label set: `_bucket`s (cumulative), `_sum`, `_count`.
    pub(crate) fn render(&self, out: &mut String, name: &str, label: &str) {
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
        let sum = self.sum.load(Ordering::Relaxed) as f64 * self.unit;
        let _ = writeln!(out, "{name}_sum{{{label}}} {sum:?}");
        let _ = writeln!(out, "{name}_count{{{label}}} {cumulative}");
    }
}

/// vLLM's `build_1_2_5_buckets(max)`: 1, 2, 5, 10, 20, 50, … up to `max`.
pub(crate) fn one_two_five(max: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut scale = 1u64;
    loop {
        for m in [1u64, 2, 5] {
            match m.checked_mul(scale) {
                Some(v) if v <= max => out.push(v),
                _ => return out,
            }
        }
        scale = match scale.checked_mul(10) {
            Some(s) => s,
            None => return out,
        };
    }
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
        h.render(&mut out, "x", "model_name=\"m\"");
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
    fn count_histograms_and_vllm_buckets() {
        assert_eq!(one_two_five(100), [1, 2, 5, 10, 20, 50, 100]);
        assert_eq!(one_two_five(4), [1, 2]);
        assert_eq!(one_two_five(u64::MAX).len(), 58);
        let h = Histogram::of_counts([1, 2, 5]);
        h.observe_count(2);
        h.observe_count(7);
        let mut out = String::new();
        h.render(&mut out, "t", "a=\"b\"");
        assert!(out.contains("t_bucket{a=\"b\",le=\"2.0\"} 1\n"), "{out}");
        assert!(out.contains("t_bucket{a=\"b\",le=\"+Inf\"} 2\n"), "{out}");
        assert!(out.contains("t_sum{a=\"b\"} 9.0\n"), "{out}");
    }
}

//! The one percentile rule of every report: numpy's default (`linear`,
//! Hyndman & Fan type 7) over the histogram's recorded values.
//!
//! `vllm bench serve`, GuideLLM, inference-perf and AIPerf compute their
//! percentiles with numpy's default, so a user who compares stampede with
//! them compares like with like. For `n` values sorted ascending, the
//! q-quantile sits at position `h = (n − 1)·q`: the value at `⌊h⌋` plus the
//! fraction `h − ⌊h⌋` of the step to the next value. HdrHistogram's own
//! `value_at_quantile` instead returns the value of rank `⌈q·n⌉` (the Rust
//! crate) or a rounded rank (the Java and Python tools): on a phase of a few
//! hundred requests their p99 can land one whole sample higher. Each value
//! here is its bucket's highest equivalent value, as HdrHistogram reports it,
//! so the rule changes which samples are interpolated, never the precision.
//! `docs/metrics.md` documents the rule next to the metric definitions.

use hdrhistogram::{Counter, Histogram};

/// The `q`-quantile (`q` clamped to [0, 1]) of `h`'s values; `None` when empty.
pub fn quantile<T: Counter>(h: &Histogram<T>, q: f64) -> Option<f64> {
    let n = h.len();
    if n == 0 {
        return None;
    }
    let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
    let position = q * (n - 1) as f64;
    let below = (position.floor() as u64).min(n - 1);
    let fraction = position - below as f64;
    let (low, high) = values_at_ranks(h, below);
    Some(low + fraction * (high - low))
}

/// [`quantile`], with 0 for an empty histogram (tables and files that print
/// a number for every phase).
pub fn quantile_or_zero<T: Counter>(h: &Histogram<T>, q: f64) -> f64 {
    quantile(h, q).unwrap_or(0.0)
}

/// The values of 0-based ranks `rank` and `rank + 1` (the last value when
/// `rank` is the last rank), in one pass over the recorded buckets.
fn values_at_ranks<T: Counter>(h: &Histogram<T>, rank: u64) -> (f64, f64) {
    let mut seen = 0u64;
    let mut low = None;
    let mut last = 0.0;
    for v in h.iter_recorded() {
        let value = h.highest_equivalent(v.value_iterated_to()) as f64;
        seen += v.count_at_value().as_u64();
        last = value;
        match low {
            None if seen > rank + 1 => return (value, value),
            None if seen > rank => low = Some(value),
            Some(l) => return (l, value),
            None => {}
        }
    }
    (low.unwrap_or(last), last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(values: &[u64]) -> Histogram<u64> {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in values {
            h.record(*v).unwrap();
        }
        h
    }

    #[test]
    fn matches_numpy_linear_on_exact_values() {
        // numpy.percentile([1, 2, 3, 4], q) for q = 0, 25, 50, 90, 100.
        let h = of(&[1, 2, 3, 4]);
        let want = [(0.0, 1.0), (0.25, 1.75), (0.5, 2.5), (0.9, 3.7), (1.0, 4.0)];
        for (q, expected) in want {
            let got = quantile(&h, q).unwrap();
            assert!((got - expected).abs() < 1e-9, "q={q}: {got} != {expected}");
        }
    }

    #[test]
    fn interpolates_across_repeated_values() {
        // numpy.percentile([10]*3 + [20]*2, 50) == 10; 75 -> 20; 60 -> 14.
        let h = of(&[10, 10, 10, 20, 20]);
        assert_eq!(quantile(&h, 0.5), Some(10.0));
        assert_eq!(quantile(&h, 0.75), Some(20.0));
        assert!((quantile(&h, 0.6).unwrap() - 14.0).abs() < 1e-9);
    }

    #[test]
    fn small_phase_p99_differs_from_the_rank_rule() {
        // 100 values 1..=100: numpy's p99 is 99.01; the ceil(q·n) rank rule
        // returns 99 and a rounded rank returns 100 at q = 0.995.
        let h = of(&(1..=100).collect::<Vec<_>>());
        assert!((quantile(&h, 0.99).unwrap() - 99.01).abs() < 1e-9);
        assert_eq!(h.value_at_quantile(0.99), 99);
    }

    #[test]
    fn empty_single_and_out_of_range() {
        let empty = of(&[]);
        assert_eq!(quantile(&empty, 0.5), None);
        assert_eq!(quantile_or_zero(&empty, 0.5), 0.0);
        let one = of(&[7]);
        assert_eq!(quantile(&one, 0.0), Some(7.0));
        assert_eq!(quantile(&one, 1.0), Some(7.0));
        let h = of(&[1, 2]);
        assert_eq!(quantile(&h, -1.0), Some(1.0));
        assert_eq!(quantile(&h, 2.0), Some(2.0));
        assert_eq!(quantile(&h, f64::NAN), Some(1.0));
    }
}

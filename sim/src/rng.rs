//! A tiny seeded random source (SplitMix64).
//!
//! The simulator must be deterministic given a seed, across platforms and dependency
//! upgrades, so it carries its own ten-line generator instead of relying on a crate whose
//! stream may change between versions. Statistical quality is ample for jitter and fault
//! selection.

/// SplitMix64 generator.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator for stream `stream` of seed `seed` (e.g. one stream per request).
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        let mut r = Self(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        // Decorrelate neighbouring streams.
        r.next_u64();
        r
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A jitter factor uniform in `[1 - j, 1 + j]`; exactly `1.0` when `j` is 0.
    pub(crate) fn jitter(&mut self, j: f64) -> f64 {
        if j <= 0.0 {
            return 1.0;
        }
        1.0 + j * (2.0 * self.unit() - 1.0)
    }
}

/// `d` scaled by `factor` (≥ 0), saturating instead of panicking on absurd values.
pub(crate) fn scale(d: std::time::Duration, factor: f64) -> std::time::Duration {
    if factor == 1.0 {
        return d;
    }
    std::time::Duration::try_from_secs_f64(d.as_secs_f64() * factor.max(0.0))
        .unwrap_or(std::time::Duration::from_secs(86_400 * 365))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_uniform_enough() {
        let a: Vec<u64> = (0..5).map(|_| Rng::new(7, 3).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::new(7, 3).next_u64(), Rng::new(7, 4).next_u64());
        let mut r = Rng::new(1, 0);
        let n = 100_000;
        let mean = (0..n).map(|_| r.unit()).sum::<f64>() / f64::from(n);
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        let mut r = Rng::new(1, 0);
        for _ in 0..1000 {
            let f = r.jitter(0.2);
            assert!((0.8..=1.2).contains(&f));
        }
        assert_eq!(r.jitter(0.0), 1.0);
    }

    #[test]
    fn scale_saturates() {
        use std::time::Duration;
        assert_eq!(
            scale(Duration::from_millis(10), 2.0),
            Duration::from_millis(20)
        );
        assert!(scale(Duration::MAX, 2.0) > Duration::from_secs(1));
        assert_eq!(scale(Duration::from_millis(3), f64::NAN), Duration::ZERO);
    }
}

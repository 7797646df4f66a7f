//! Capped, jittered exponential backoff for reconnecting to the controller.
//!
//! Delay n is drawn uniformly from [d/2, d] where d = min(base · 2ⁿ, cap):
//! agents that lost the controller together do not come back in lockstep,
//! and no delay ever exceeds the cap.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// Backoff state.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
    rng: SmallRng,
}

impl Backoff {
    /// Backoff starting at `base`, never above `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap: cap.max(base),
            attempt: 0,
            rng: SmallRng::from_os_rng(),
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        let ceiling = self.base.saturating_mul(factor).min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let lo = ceiling / 2;
        let span = ceiling.saturating_sub(lo);
        lo + span.mul_f64(self.rng.random::<f64>())
    }

    /// Start over after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_stays_under_the_cap_with_jitter() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(2);
        let mut b = Backoff::new(base, cap);
        let delays: Vec<_> = (0..40).map(|_| b.next_delay()).collect();
        for (n, d) in delays.iter().enumerate() {
            let ceiling = base.saturating_mul(1 << n.min(20)).min(cap);
            assert!(
                *d <= ceiling && *d >= ceiling / 2,
                "delay {n} = {d:?}, ceiling {ceiling:?}"
            );
        }
        // Jitter: the capped delays are not all equal.
        let tail = &delays[10..];
        assert!(tail.iter().any(|d| *d != tail[0]));
        b.reset();
        assert!(b.next_delay() <= base);
    }
}

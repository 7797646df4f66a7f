//! Fault injection: what fraction of requests fail, and how.
//!
//! Load generators must classify every way a server misbehaves, so the simulator can
//! produce each on demand: error statuses, streams cut mid-response, hangs before the first
//! token, malformed chunks, and a warming period after (re)start where everything is slower.
//! The settings are fixed at start and replaceable at run time (`POST /sim/faults`); each
//! request draws its fate from a seeded per-request random stream, so a run is repeatable.

use std::sync::RwLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::config::ConfigError;
use crate::rng::Rng;

/// Rates of injected faults (each a probability per accepted generation request) and the
/// slow-start period. The rates are mutually exclusive outcomes, so their sum must be ≤ 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Answer `429 Too Many Requests` at once.
    pub error_429: f64,
    /// Answer `500 Internal Server Error` at once.
    pub error_500: f64,
    /// Answer `503 Service Unavailable` at once.
    pub error_503: f64,
    /// Start a normal `200` response, then abort the connection after half the tokens
    /// (no `[DONE]`, no final chunk).
    pub stream_cut: f64,
    /// Send the response head (and, for chat streams, the role chunk) but never a token,
    /// until the client gives up or the server shuts down.
    pub hang: f64,
    /// Replace one chunk (the middle token of a stream, or the whole non-streaming body) by
    /// invalid JSON; the stream then continues normally.
    pub malformed: f64,
    /// Length of the slow-start period, counted from server start or from the last
    /// `POST /sim/faults`. `0s` disables it.
    #[serde(with = "crate::dur")]
    pub warmup: Duration,
    /// Latency multiplier at the start of the warm-up; it falls linearly to 1 at its end.
    pub warmup_factor: f64,
}

impl Default for FaultConfig {
    /// No faults, no warm-up (factor 1).
    fn default() -> Self {
        Self {
            error_429: 0.0,
            error_500: 0.0,
            error_503: 0.0,
            stream_cut: 0.0,
            hang: 0.0,
            malformed: 0.0,
            warmup: Duration::ZERO,
            warmup_factor: 1.0,
        }
    }
}

impl FaultConfig {
    /// Each rate in `[0, 1]`, their sum ≤ 1, warm-up factor in `[1, 1000]`, warm-up ≤ 24 h.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut sum = 0.0;
        for (key, rate) in self.rates() {
            if !(rate.is_finite() && (0.0..=1.0).contains(&rate)) {
                return Err(ConfigError::new(
                    key,
                    format!("fault rate must be in [0, 1], got {rate}"),
                ));
            }
            sum += rate;
        }
        if sum > 1.0 + 1e-9 {
            return Err(ConfigError::new(
                "faults",
                format!("fault rates are exclusive outcomes and must sum to at most 1, got {sum}"),
            ));
        }
        if !(self.warmup_factor.is_finite() && (1.0..=1000.0).contains(&self.warmup_factor)) {
            return Err(ConfigError::new(
                "warmup_factor",
                format!("must be in [1, 1000], got {}", self.warmup_factor),
            ));
        }
        if self.warmup > Duration::from_secs(86_400) {
            return Err(ConfigError::new("warmup", "must be at most 24h"));
        }
        Ok(())
    }

    fn rates(&self) -> [(&'static str, f64); 6] {
        [
            ("error_429", self.error_429),
            ("error_500", self.error_500),
            ("error_503", self.error_503),
            ("stream_cut", self.stream_cut),
            ("hang", self.hang),
            ("malformed", self.malformed),
        ]
    }
}

/// The fate of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Answer with this error status at once.
    Status(u16),
    /// Abort the connection after half the tokens.
    Cut,
    /// Never send a token.
    Hang,
    /// One malformed chunk.
    Malformed,
}

/// The live fault settings of one simulator.
#[derive(Debug)]
pub(crate) struct Faults {
    seed: u64,
    inner: RwLock<(FaultConfig, Instant)>,
}

impl Faults {
    /// Settings `cfg`, warm-up counted from now.
    pub(crate) fn new(cfg: FaultConfig, seed: u64) -> Self {
        Self {
            seed,
            inner: RwLock::new((cfg, Instant::now())),
        }
    }

    /// The current settings.
    pub(crate) fn get(&self) -> FaultConfig {
        match self.inner.read() {
            Ok(g) => g.0.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        }
    }

    /// Replaces the settings (already validated) and restarts the warm-up period.
    pub(crate) fn set(&self, cfg: FaultConfig) {
        let value = (cfg, Instant::now());
        match self.inner.write() {
            Ok(mut g) => *g = value,
            Err(poisoned) => *poisoned.into_inner() = value,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&FaultConfig, Instant) -> T) -> T {
        match self.inner.read() {
            Ok(g) => f(&g.0, g.1),
            Err(poisoned) => {
                let g = poisoned.into_inner();
                f(&g.0, g.1)
            }
        }
    }

    /// The fate of request number `seq`: one uniform draw from its own random stream,
    /// compared against the cumulative rates in a fixed order.
    pub(crate) fn draw(&self, seq: u64) -> Option<Fault> {
        self.with(|cfg, _| {
            let u = Rng::new(self.seed ^ 0xFA17, seq).unit();
            let outcomes = [
                (cfg.error_429, Fault::Status(429)),
                (cfg.error_500, Fault::Status(500)),
                (cfg.error_503, Fault::Status(503)),
                (cfg.stream_cut, Fault::Cut),
                (cfg.hang, Fault::Hang),
                (cfg.malformed, Fault::Malformed),
            ];
            let mut acc = 0.0;
            for (rate, fault) in outcomes {
                acc += rate;
                if u < acc {
                    return Some(fault);
                }
            }
            None
        })
    }

    /// The warm-up latency multiplier at `now`: `warmup_factor` at the start of the period,
    /// falling linearly to 1 at its end, 1 afterwards.
    pub(crate) fn slowdown(&self, now: Instant) -> f64 {
        self.with(|cfg, since| {
            if cfg.warmup.is_zero() || cfg.warmup_factor <= 1.0 {
                return 1.0;
            }
            let elapsed = now.saturating_duration_since(since);
            if elapsed >= cfg.warmup {
                return 1.0;
            }
            let left = 1.0 - elapsed.as_secs_f64() / cfg.warmup.as_secs_f64();
            1.0 + (cfg.warmup_factor - 1.0) * left
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(FaultConfig::default().validate().is_ok());
        let bad = |c: FaultConfig| c.validate().is_err();
        assert!(bad(FaultConfig {
            error_429: -0.1,
            ..FaultConfig::default()
        }));
        assert!(bad(FaultConfig {
            hang: f64::NAN,
            ..FaultConfig::default()
        }));
        assert!(bad(FaultConfig {
            error_500: 0.6,
            stream_cut: 0.6,
            ..FaultConfig::default()
        }));
        assert!(bad(FaultConfig {
            warmup_factor: 0.5,
            ..FaultConfig::default()
        }));
    }

    #[test]
    fn draws_follow_the_rates_and_the_seed() {
        let f = Faults::new(
            FaultConfig {
                error_429: 0.1,
                stream_cut: 0.2,
                ..FaultConfig::default()
            },
            42,
        );
        let n = 20_000;
        let draws: Vec<_> = (0..n).map(|i| f.draw(i)).collect();
        let count = |x: Option<Fault>| draws.iter().filter(|d| **d == x).count() as f64 / n as f64;
        assert!((count(Some(Fault::Status(429))) - 0.1).abs() < 0.01);
        assert!((count(Some(Fault::Cut)) - 0.2).abs() < 0.01);
        assert!((count(None) - 0.7).abs() < 0.01);
        assert_eq!(draws[17], f.draw(17));
        f.set(FaultConfig::default());
        assert!((0..1000).all(|i| f.draw(i).is_none()));
    }

    #[tokio::test(start_paused = true)]
    async fn warmup_decays_linearly() {
        let f = Faults::new(
            FaultConfig {
                warmup: Duration::from_secs(10),
                warmup_factor: 3.0,
                ..FaultConfig::default()
            },
            0,
        );
        let t0 = Instant::now();
        assert!((f.slowdown(t0) - 3.0).abs() < 1e-9);
        assert!((f.slowdown(t0 + Duration::from_secs(5)) - 2.0).abs() < 1e-9);
        assert_eq!(f.slowdown(t0 + Duration::from_secs(10)), 1.0);
    }
}

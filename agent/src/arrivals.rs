//! Open-loop arrival schedules: seeded, deterministic and shardable.
//!
//! A schedule is a base process in *operational time* (spacing with mean 1:
//! even, exponential or gamma) mapped through the inverse of the cumulative
//! rate Λ(t) = ∫₀ᵗ rate(u) du. A constant rate, a linear ramp and rate steps
//! are all the same mechanism; a Poisson stream stays Poisson under a
//! changing rate (it becomes the inhomogeneous Poisson process of that rate).
//!
//! Sharding: every agent builds the *same* cluster-wide sequence from the
//! seed and sends arrival k when its shard owns k (k mod n with equal
//! weights; in proportion to the weights otherwise, see
//! [`stampede_common::shard`]), so the union of the n shards is exactly the
//! unsharded sequence. Generating the skipped arrivals costs a few
//! nanoseconds each.

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, Exp1, Gamma};
use stampede_common::proto;

/// Spacing of arrivals in operational time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Spacing {
    /// Exactly 1 apart (the first at 0).
    Uniform,
    /// Exponential with mean 1 (a Poisson process).
    Poisson,
    /// Gamma with shape `b` and mean 1 (`b` = 1 is Poisson).
    Gamma(f64),
}

/// Rate over time, requests per second.
#[derive(Debug, Clone, PartialEq)]
pub enum Profile {
    /// One rate.
    Constant(f64),
    /// From `from` to `to` over `over` seconds, then `to`.
    Linear {
        /// Rate at 0.
        from: f64,
        /// Rate at `over`.
        to: f64,
        /// Ramp length (s).
        over: f64,
    },
    /// (rate, seconds) steps; the last rate continues.
    Steps(Vec<(f64, f64)>),
}

/// A schedule that cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid arrival schedule: {0}")]
pub struct ScheduleError(pub String);

impl Profile {
    /// Time at which the cumulative rate reaches `s` (∞ if it never does).
    pub fn inverse(&self, s: f64) -> f64 {
        match self {
            Profile::Constant(r) => s / r,
            Profile::Linear { from, to, over } => {
                let slope = (to - from) / over;
                let at_end = from * over + slope * over * over / 2.0;
                if s <= at_end {
                    if slope.abs() < 1e-12 {
                        s / from
                    } else {
                        // slope/2·t² + from·t − s = 0, the root in [0, over].
                        (-from + (from * from + 2.0 * slope * s).max(0.0).sqrt()) / slope
                    }
                } else if *to > 0.0 {
                    over + (s - at_end) / to
                } else {
                    f64::INFINITY
                }
            }
            Profile::Steps(steps) => {
                let (mut t, mut acc) = (0.0, 0.0);
                for (i, &(rate, len)) in steps.iter().enumerate() {
                    let last = i + 1 == steps.len();
                    if rate > 0.0 && (last || s <= acc + rate * len) {
                        return t + (s - acc) / rate;
                    }
                    t += len;
                    acc += rate * len;
                }
                f64::INFINITY
            }
        }
    }

    /// Mean rate over the first `secs` seconds.
    pub fn mean_rate(&self, secs: f64) -> f64 {
        // Λ(secs) / secs, with Λ found by bisection on the inverse.
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        while self.inverse(hi) < secs && hi < 1e15 {
            hi *= 2.0;
        }
        for _ in 0..200 {
            let mid = (lo + hi) / 2.0;
            if self.inverse(mid) < secs {
                lo = mid
            } else {
                hi = mid
            }
        }
        lo / secs
    }
}

/// The cluster-wide arrival sequence of a phase: (index k, seconds from start).
#[derive(Debug, Clone)]
pub struct Schedule {
    profile: Profile,
    spacing: Spacing,
    gamma: Option<Gamma<f64>>,
    rng: SmallRng,
    s: f64,
    k: u64,
}

impl Schedule {
    /// A schedule; `seed` fixes the random spacing.
    pub fn new(profile: Profile, spacing: Spacing, seed: u64) -> Result<Self, ScheduleError> {
        let bad = |m: String| Err(ScheduleError(m));
        let ok_rate = |r: f64| r.is_finite() && r >= 0.0;
        match &profile {
            Profile::Constant(r) if !(r.is_finite() && *r > 0.0) => {
                return bad(format!("rate {r}"));
            }
            Profile::Linear { from, to, over } => {
                if !ok_rate(*from) || !ok_rate(*to) || (*from == 0.0 && *to == 0.0) {
                    return bad(format!("ramp {from} → {to}"));
                }
                if !(over.is_finite() && *over > 0.0) {
                    return bad(format!("ramp length {over} s"));
                }
            }
            Profile::Steps(steps) => {
                if steps.is_empty() || !steps.iter().any(|(r, _)| *r > 0.0) {
                    return bad("steps need at least one positive rate".into());
                }
                if let Some((r, l)) = steps
                    .iter()
                    .find(|(r, l)| !(ok_rate(*r) && l.is_finite() && *l > 0.0))
                {
                    return bad(format!("step {r} req/s for {l} s"));
                }
            }
            Profile::Constant(_) => {}
        }
        let gamma = match spacing {
            Spacing::Gamma(b) if b.is_finite() && b > 0.0 => Some(
                Gamma::new(b, 1.0 / b)
                    .map_err(|e| ScheduleError(format!("burstiness {b}: {e}")))?,
            ),
            Spacing::Gamma(b) => return bad(format!("burstiness {b} (must be positive)")),
            _ => None,
        };
        Ok(Self {
            profile,
            spacing,
            gamma,
            rng: SmallRng::seed_from_u64(seed),
            s: 0.0,
            k: 0,
        })
    }

    /// From the wire form.
    pub fn from_proto(o: &proto::OpenLoop) -> Result<Self, ScheduleError> {
        use proto::rate_profile::Profile as P;
        let profile = match o.profile.as_ref().and_then(|p| p.profile.as_ref()) {
            Some(P::Constant(c)) => Profile::Constant(c.requests_per_second),
            Some(P::Linear(l)) => Profile::Linear {
                from: l.from,
                to: l.to,
                over: l.over_ms as f64 / 1e3,
            },
            Some(P::Steps(s)) => Profile::Steps(
                s.steps
                    .iter()
                    .map(|st| (st.requests_per_second, st.duration_ms as f64 / 1e3))
                    .collect(),
            ),
            None => return Err(ScheduleError("no rate profile".into())),
        };
        let spacing = match proto::Arrival::try_from(o.arrival) {
            Ok(proto::Arrival::Uniform) => Spacing::Uniform,
            Ok(proto::Arrival::Poisson) => Spacing::Poisson,
            Ok(proto::Arrival::Gamma) => Spacing::Gamma(o.burstiness),
            _ => return Err(ScheduleError(format!("arrival kind {}", o.arrival))),
        };
        Self::new(profile, spacing, o.seed)
    }
}

impl Iterator for Schedule {
    type Item = (u64, f64);

    fn next(&mut self) -> Option<(u64, f64)> {
        let step = match self.spacing {
            Spacing::Uniform => {
                if self.k == 0 {
                    0.0
                } else {
                    1.0
                }
            }
            Spacing::Poisson => Exp1.sample(&mut self.rng),
            Spacing::Gamma(_) => self.gamma.as_ref().map_or(1.0, |g| g.sample(&mut self.rng)),
        };
        self.s += step;
        let t = self.profile.inverse(self.s);
        if !t.is_finite() {
            return None;
        }
        let k = self.k;
        self.k += 1;
        Some((k, t))
    }
}

/// The arrivals of shard `index` of `map`: those it owns.
pub fn shard(
    schedule: Schedule,
    map: &stampede_common::shard::ShardMap,
    index: u32,
) -> impl Iterator<Item = (u64, f64)> {
    schedule.filter(move |(k, _)| map.owner(*k) == index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stampede_common::shard::ShardMap;

    fn times(p: Profile, s: Spacing, seed: u64, horizon: f64) -> Vec<f64> {
        Schedule::new(p, s, seed)
            .unwrap()
            .map(|(_, t)| t)
            .take_while(|t| *t < horizon)
            .collect()
    }

    /// Kolmogorov–Smirnov statistic of `xs` against the CDF `cdf`.
    fn ks(mut xs: Vec<f64>, cdf: impl Fn(f64) -> f64) -> f64 {
        xs.sort_by(f64::total_cmp);
        let n = xs.len() as f64;
        xs.iter()
            .enumerate()
            .map(|(i, &x)| {
                let f = cdf(x);
                (f - i as f64 / n).abs().max((f - (i + 1) as f64 / n).abs())
            })
            .fold(0.0, f64::max)
    }

    fn gaps(ts: &[f64]) -> Vec<f64> {
        ts.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// Critical KS value at α = 0.01 for n samples.
    fn ks_critical(n: usize) -> f64 {
        1.628 / (n as f64).sqrt()
    }

    #[test]
    fn uniform_constant_is_exact() {
        let ts = times(Profile::Constant(4.0), Spacing::Uniform, 0, 1.0);
        assert_eq!(ts, vec![0.0, 0.25, 0.5, 0.75]);
    }

    #[test]
    fn poisson_gaps_are_exponential() {
        let rate = 200.0;
        let g = gaps(&times(Profile::Constant(rate), Spacing::Poisson, 42, 50.0));
        assert!(g.len() > 9_000);
        let d = ks(g.clone(), |x| 1.0 - (-rate * x).exp());
        assert!(d < ks_critical(g.len()), "KS {d}");
        // A wrong rate must fail the same test: the test has power.
        assert!(ks(g.clone(), |x| 1.0 - (-rate * 1.1 * x).exp()) > ks_critical(g.len()));
        let mean = g.iter().sum::<f64>() / g.len() as f64;
        assert!((mean * rate - 1.0).abs() < 0.03, "mean gap {mean}");
    }

    #[test]
    fn gamma_gaps_fit_their_distribution() {
        let (rate, b) = (100.0, 0.5);
        let g = gaps(&times(Profile::Constant(rate), Spacing::Gamma(b), 7, 100.0));
        // Gamma(shape b, scale 1/(b·rate)): mean 1/rate, CV² = 1/b.
        let n = g.len() as f64;
        let mean = g.iter().sum::<f64>() / n;
        let var = g.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        assert!((mean * rate - 1.0).abs() < 0.03, "mean {mean}");
        let cv2 = var / (mean * mean);
        assert!(
            (cv2 - 1.0 / b).abs() < 0.15,
            "CV² {cv2}, expected {}",
            1.0 / b
        );
        // KS against the gamma CDF, computed by numeric integration of its density.
        let dist = Gamma::new(b, 1.0 / (b * rate)).unwrap();
        let mut sample_ref: Vec<f64> = {
            let mut rng = SmallRng::seed_from_u64(999);
            (0..200_000).map(|_| dist.sample(&mut rng)).collect()
        };
        sample_ref.sort_by(f64::total_cmp);
        let cdf = |x: f64| sample_ref.partition_point(|v| *v <= x) as f64 / sample_ref.len() as f64;
        let d = ks(g.clone(), cdf);
        assert!(d < ks_critical(g.len()) + 0.005, "KS {d}");
        // Poisson (CV² = 1) is clearly rejected for b = 0.5.
        assert!(ks(g, |x| 1.0 - (-rate * x).exp()) > ks_critical(10_000));
    }

    #[test]
    fn shards_union_to_the_whole_sequence() {
        for spacing in [Spacing::Uniform, Spacing::Poisson, Spacing::Gamma(0.3)] {
            let profile = Profile::Linear {
                from: 10.0,
                to: 200.0,
                over: 5.0,
            };
            let whole: Vec<(u64, f64)> = Schedule::new(profile.clone(), spacing, 3)
                .unwrap()
                .take_while(|(_, t)| *t < 5.0)
                .collect();
            // Equal shards, and shards weighted like agents of 2, 8 and 4 cores.
            for weights in [[1u32, 1, 1], [2, 8, 4]] {
                let map = ShardMap::weighted(&weights).unwrap();
                let shards: Vec<Vec<(u64, f64)>> = (0..3)
                    .map(|i| {
                        shard(Schedule::new(profile.clone(), spacing, 3).unwrap(), &map, i)
                            .take_while(|(_, t)| *t < 5.0)
                            .collect()
                    })
                    .collect();
                let mut union: Vec<(u64, f64)> = shards.concat();
                union.sort_by_key(|(k, _)| *k);
                assert_eq!(union, whole, "{spacing:?} {weights:?}");
                // Each shard's share is its weight's, to within one arrival.
                let total: u32 = weights.iter().sum();
                for (s, w) in shards.iter().zip(weights) {
                    let expected = whole.len() as f64 * f64::from(w) / f64::from(total);
                    assert!(
                        (s.len() as f64 - expected).abs() <= 1.0,
                        "{weights:?}: {} vs {expected}",
                        s.len()
                    );
                }
            }
        }
    }

    #[test]
    fn linear_ramp_has_the_right_count_and_shape() {
        // 10 → 110 req/s over 10 s: Λ(10) = 600 arrivals, Λ(5) = 50 + 125 = 175.
        let ts = times(
            Profile::Linear {
                from: 10.0,
                to: 110.0,
                over: 10.0,
            },
            Spacing::Uniform,
            0,
            10.0,
        );
        assert_eq!(ts.len(), 600);
        assert_eq!(ts.iter().filter(|t| **t < 5.0).count(), 175);
        // Poisson under the same ramp: count within 4σ.
        let n = times(
            Profile::Linear {
                from: 10.0,
                to: 110.0,
                over: 10.0,
            },
            Spacing::Poisson,
            5,
            10.0,
        )
        .len() as f64;
        assert!((n - 600.0).abs() < 4.0 * 600f64.sqrt(), "{n}");
    }

    #[test]
    fn steps_follow_their_rates_and_skip_zero_steps() {
        let p = Profile::Steps(vec![(10.0, 1.0), (0.0, 1.0), (20.0, 1.0)]);
        let ts = times(p.clone(), Spacing::Uniform, 0, 3.0);
        // Λ(3) = 30 arrivals at operational times 0..30; the one at Λ = 10 lands
        // at the first instant the cumulative rate reaches it: t = 1.0.
        assert_eq!(ts.len(), 30);
        assert_eq!(ts.iter().filter(|t| **t <= 1.0).count(), 11);
        assert_eq!(ts.iter().filter(|t| **t > 1.0 && **t < 2.0).count(), 0);
        assert_eq!(ts.iter().filter(|t| **t >= 2.0).count(), 19);
        assert!((p.mean_rate(3.0) - 10.0).abs() < 1e-6);
    }

    #[test]
    fn bad_schedules_are_errors() {
        assert!(Schedule::new(Profile::Constant(0.0), Spacing::Uniform, 0).is_err());
        assert!(Schedule::new(Profile::Constant(f64::NAN), Spacing::Uniform, 0).is_err());
        assert!(Schedule::new(Profile::Constant(1.0), Spacing::Gamma(0.0), 0).is_err());
        assert!(
            Schedule::new(
                Profile::Linear {
                    from: 0.0,
                    to: 0.0,
                    over: 1.0
                },
                Spacing::Uniform,
                0
            )
            .is_err()
        );
        assert!(Schedule::new(Profile::Steps(vec![]), Spacing::Uniform, 0).is_err());
        assert!(Schedule::new(Profile::Steps(vec![(5.0, -1.0)]), Spacing::Uniform, 0).is_err());
    }

    #[test]
    fn ramp_down_to_zero_ends() {
        // Λ(2) = 10: arrivals at operational times 0..=10, the last exactly at 2 s.
        let ts = times(
            Profile::Linear {
                from: 10.0,
                to: 0.0,
                over: 2.0,
            },
            Spacing::Uniform,
            0,
            100.0,
        );
        assert_eq!(ts.len(), 11);
        assert!((ts[10] - 2.0).abs() < 1e-9);
    }
}

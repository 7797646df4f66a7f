//! A validated load phase: what every kind shares (name, duration, bounds,
//! objectives, fault actions) and a [`PhaseKind`] whose variants each hold
//! only the keys that apply to that kind — a ramp has no users, a replay has
//! no rate, and only a replay carries a trace.
//!
//! Code that reads a phase generically (a report's offered rate, the users
//! of a closed loop, the trace to replay) asks the accessors on [`Phase`]
//! rather than matching on the kind itself.

use crate::fault::FaultAction;
use crate::slo::Slo;
use crate::trace::Trace;
use std::sync::Arc;
use std::time::Duration;

/// A validated phase.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// Name.
    pub name: String,
    /// Kind and its load.
    pub kind: PhaseKind,
    /// Arrival duration (of each step, for a stress phase).
    pub duration: Duration,
    /// Total request bound (across agents).
    pub max_requests: Option<u64>,
    /// Most requests in flight across all agents (open-loop kinds only).
    pub max_concurrency: Option<u32>,
    /// Grace period for in-flight requests.
    pub drain: Duration,
    /// Service-level objectives (run-wide ones merged with the phase's own).
    pub slo: Vec<Slo>,
    /// Start left out of the results.
    pub warmup: Duration,
    /// End left out of the results (with the drain), when non-zero.
    pub cooldown: Duration,
    /// Fault actions fired at offsets into the phase, in time order.
    pub faults: Vec<FaultAction>,
}

/// Kind of phase with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum PhaseKind {
    /// One user, closed loop: the unloaded latency reference.
    Baseline,
    /// Open loop at a constant cluster-wide rate (requests/s).
    Constant {
        /// Arrivals per second.
        rate: f64,
        /// Spacing of arrivals.
        arrival: Arrival,
    },
    /// Open loop with the rate rising (or falling) from `from` to `to`.
    Ramp {
        /// Rate at the start.
        from: f64,
        /// Rate at the end.
        to: f64,
        /// Equal steps instead of a linear change.
        steps: Option<u32>,
        /// Spacing of arrivals.
        arrival: Arrival,
    },
    /// Closed loop with a fixed number of users.
    Concurrency {
        /// Users across all agents.
        users: u32,
    },
    /// Open-loop steps of rising rate until one fails its objectives; the
    /// phase's duration is each step's. Reports the knee.
    Stress(Stress),
    /// A long constant-rate phase with a drift report.
    Soak {
        /// Arrivals per second.
        rate: f64,
        /// Spacing of arrivals.
        arrival: Arrival,
        /// Windows compared at each end (`None`: a tenth of them).
        drift_windows: Option<u32>,
        /// Largest allowed relative growth of TTFT/E2E p99.
        max_drift: Option<f64>,
    },
    /// Open loop at the recorded times of a trace.
    Replay {
        /// Replay this many times faster than recorded.
        time_scale: f64,
        /// The trace (`None` when the plan was checked without reading files).
        trace: Option<Arc<Trace>>,
    },
}

/// Parameters of a stress search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stress {
    /// First step's rate.
    pub from: f64,
    /// Highest rate tried.
    pub to: f64,
    /// How the next rate is chosen.
    pub search: Search,
    /// Most steps.
    pub max_steps: u32,
    /// Spacing of arrivals.
    pub arrival: Arrival,
    /// A step fails above this error rate.
    pub max_error_rate: f64,
    /// A step fails when achieved/offered falls below this.
    pub min_achieved: f64,
    /// A step fails when more than this share of agent windows were saturated.
    pub max_saturated: f64,
}

/// How a stress phase picks its next rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Search {
    /// Multiply by `factor` until a step fails, then bisect until the bracket
    /// is within `precision` of the passing rate.
    Adaptive {
        /// Growth factor (> 1).
        factor: f64,
        /// Relative width at which bisection stops.
        precision: f64,
    },
    /// Add `step` each time until a step fails.
    Linear {
        /// Rate increment.
        step: f64,
    },
}

/// Spacing of open-loop arrivals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrival {
    /// Evenly spaced.
    Uniform,
    /// Poisson process (exponential gaps).
    Poisson,
    /// Gamma-distributed gaps with this shape.
    Gamma {
        /// Shape: 1 is Poisson, < 1 burstier, > 1 more regular.
        burstiness: f64,
    },
}

impl PhaseKind {
    /// The kind's name as written in plans.
    pub fn name(&self) -> &'static str {
        match self {
            PhaseKind::Baseline => "baseline",
            PhaseKind::Constant { .. } => "constant",
            PhaseKind::Ramp { .. } => "ramp",
            PhaseKind::Concurrency { .. } => "concurrency",
            PhaseKind::Stress(_) => "stress",
            PhaseKind::Soak { .. } => "soak",
            PhaseKind::Replay { .. } => "replay",
        }
    }

    /// Mean offered rate for open-loop kinds (a ramp's average).
    pub fn offered_rate(&self) -> Option<f64> {
        match self {
            PhaseKind::Constant { rate, .. } | PhaseKind::Soak { rate, .. } => Some(*rate),
            PhaseKind::Ramp { from, to, .. } => Some((from + to) / 2.0),
            _ => None,
        }
    }
}

impl Phase {
    /// Mean offered rate (requests/s) of an open-loop phase; `None` for
    /// closed loops, stress searches and replays.
    pub fn offered_rate(&self) -> Option<f64> {
        self.kind.offered_rate()
    }

    /// Offered rate `t` into the phase, for the kinds that have one.
    pub fn offered_rate_at(&self, t: Duration) -> Option<f64> {
        let frac = (t.as_secs_f64() / self.duration.as_secs_f64().max(1e-9)).clamp(0.0, 1.0);
        match self.kind {
            PhaseKind::Constant { rate, .. } | PhaseKind::Soak { rate, .. } => Some(rate),
            PhaseKind::Ramp {
                from,
                to,
                steps: None,
                ..
            } => Some(from + (to - from) * frac),
            PhaseKind::Ramp {
                from,
                to,
                steps: Some(n),
                ..
            } => {
                let j = ((frac * f64::from(n)).floor() as u32).min(n - 1);
                Some(if n == 1 {
                    to
                } else {
                    from + (to - from) * f64::from(j) / f64::from(n - 1)
                })
            }
            _ => None,
        }
    }

    /// Users across all agents of a closed-loop phase (a baseline's one);
    /// `None` for open loops.
    pub fn users(&self) -> Option<u32> {
        match self.kind {
            PhaseKind::Baseline => Some(1),
            PhaseKind::Concurrency { users } => Some(users),
            _ => None,
        }
    }

    /// The trace a replay phase sends and its time scale; `None` for other
    /// kinds and for a replay checked without reading files.
    pub fn replayed(&self) -> Option<(&Arc<Trace>, f64)> {
        match &self.kind {
            PhaseKind::Replay {
                time_scale,
                trace: Some(trace),
            } => Some((trace, *time_scale)),
            _ => None,
        }
    }

    /// Windows `first..end` whose results count (after warm-up, before cool-down).
    pub fn measured_windows(&self, window: Duration) -> (u32, u32) {
        let w = window.as_nanos().max(1);
        let first = u32::try_from(self.warmup.as_nanos().div_ceil(w)).unwrap_or(u32::MAX);
        let end = if self.cooldown.is_zero() {
            u32::MAX
        } else {
            u32::try_from(self.duration.saturating_sub(self.cooldown).as_nanos() / w)
                .unwrap_or(u32::MAX)
        };
        (first, end)
    }

    /// One step of a stress phase: the same phase at a constant `rate`.
    pub fn stress_step(&self, rate: f64) -> Phase {
        let arrival = match self.kind {
            PhaseKind::Stress(s) => s.arrival,
            _ => Arrival::Uniform,
        };
        Phase {
            kind: PhaseKind::Constant { rate, arrival },
            ..self.clone()
        }
    }
}

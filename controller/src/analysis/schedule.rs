//! A phase's open-loop arrival schedule, in one place: the wire form every
//! agent builds the cluster-wide arrival sequence from, and the number of
//! arrivals it defines, which the summary holds the sent requests against.

use stampede_common::proto;
use stampede_plan::{Arrival, Phase, PhaseKind};
use std::time::Duration;

/// The wire form of an open-loop phase's arrival process.
pub fn open_loop(phase: &Phase, seed: u64, index: u32) -> proto::OpenLoop {
    use proto::rate_profile::Profile as P;
    let (profile, arrival) = match phase.kind {
        PhaseKind::Constant { rate, arrival } | PhaseKind::Soak { rate, arrival, .. } => (
            P::Constant(proto::ConstantRate {
                requests_per_second: rate,
            }),
            arrival,
        ),
        PhaseKind::Ramp {
            from,
            to,
            steps: None,
            arrival,
        } => (
            P::Linear(proto::LinearRamp {
                from,
                to,
                over_ms: millis(phase.duration),
            }),
            arrival,
        ),
        PhaseKind::Ramp {
            from,
            to,
            steps: Some(n),
            arrival,
        } => {
            let step_ms = (millis(phase.duration) / u64::from(n)).max(1);
            let steps = (0..n)
                .map(|j| proto::RateStep {
                    requests_per_second: if n == 1 {
                        to
                    } else {
                        from + (to - from) * f64::from(j) / f64::from(n - 1)
                    },
                    duration_ms: step_ms,
                })
                .collect();
            (P::Steps(proto::RateSteps { steps }), arrival)
        }
        // A stress phase runs as constant-rate steps; this shape is its first.
        PhaseKind::Stress(s) => (
            P::Constant(proto::ConstantRate {
                requests_per_second: s.from,
            }),
            s.arrival,
        ),
        PhaseKind::Baseline | PhaseKind::Concurrency { .. } | PhaseKind::Replay { .. } => (
            P::Constant(proto::ConstantRate {
                requests_per_second: 1.0,
            }),
            Arrival::Uniform,
        ),
    };
    let (arrival, burstiness) = match arrival {
        Arrival::Uniform => (proto::Arrival::Uniform, 0.0),
        Arrival::Poisson => (proto::Arrival::Poisson, 0.0),
        Arrival::Gamma { burstiness } => (proto::Arrival::Gamma, burstiness),
    };
    proto::OpenLoop {
        profile: Some(proto::RateProfile {
            profile: Some(profile),
        }),
        arrival: arrival as i32,
        burstiness,
        // A distinct, reproducible stream per phase.
        seed: seed ^ (u64::from(index) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    }
}

/// Arrivals the open-loop schedule of plan phase `index` defines in its
/// measured interval (the planned window without warm-up and cool-down, within
/// the phase's request bound): exactly the arrivals agents send, skip or let
/// expire between them. `None` for closed loops.
pub fn scheduled_arrivals(phase: &Phase, seed: u64, index: u32, window: Duration) -> Option<u64> {
    use stampede_agent::arrivals::Schedule;
    let arrivals: Box<dyn Iterator<Item = (u64, f64)>> = match phase.kind {
        PhaseKind::Baseline | PhaseKind::Concurrency { .. } => return None,
        PhaseKind::Replay { .. } => {
            let (trace, time_scale) = phase.replayed()?;
            let trace = trace.to_proto(time_scale);
            let replay = stampede_agent::replay::Replay::from_proto(&trace).ok()?;
            Box::new(std::sync::Arc::new(replay).arrivals())
        }
        _ => Box::new(Schedule::from_proto(&open_loop(phase, seed, index)).ok()?),
    };
    let (first, end) = phase.measured_windows(window);
    let secs = |i: u32| window.as_secs_f64() * f64::from(i);
    let (from, to) = (secs(first), secs(end).min(phase.duration.as_secs_f64()));
    let bound = phase.max_requests.unwrap_or(u64::MAX);
    let count = arrivals
        .take_while(|(k, at)| *k < bound && *at < to)
        .filter(|(_, at)| *at >= from)
        .count();
    Some(count as u64)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

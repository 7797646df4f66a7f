//! Verdicts on a phase's merged results: its service-level objectives, the
//! extra checks of a stress step (errors, achieved rate, saturated agents),
//! a soak's drift between its first and last windows, and goodput.
//!
//! The run loop (to steer a stress search) and the reports (rebuilt from the
//! raw log) both call [`apply`] on the same merged data, so a rebuilt run
//! reaches the same verdicts as the live one.

use crate::analysis::merge::{Aggregate, PhaseAccumulator};
use crate::model::PhaseSummary;
use crate::model::{Check, Drift, DriftEnd};
use stampede_common::metric::Metric;
use stampede_common::quantile::{quantile, quantile_or_zero};
use stampede_plan::slo::{Slo, Stat, Subject};
use stampede_plan::{Phase, PhaseKind, Stress};
use std::time::Duration;

fn p(h: &hdrhistogram::Histogram<u64>, q: f64) -> Option<f64> {
    quantile(h, q).map(|v| v / 1e3)
}

fn error_rate(c: &stampede_common::proto::Counters) -> f64 {
    let done = c.ok + c.failed;
    if done == 0 {
        0.0
    } else {
        c.failed as f64 / done as f64
    }
}

/// Evaluate one objective on merged results.
pub fn check(slo: &Slo, total: &Aggregate) -> Check {
    let (observed, unit) = match slo.subject {
        Subject::Latency { metric, stat } => {
            let h = total.hist(metric);
            let v = match stat {
                Stat::Quantile(q) => p(h, q),
                Stat::Mean => (!h.is_empty()).then(|| h.mean() / 1e3),
                Stat::Max => (!h.is_empty()).then(|| h.max() as f64 / 1e3),
            };
            (v, "ms")
        }
        Subject::ErrorRate => {
            let c = &total.counters;
            ((c.ok + c.failed > 0).then(|| error_rate(c)), "fraction")
        }
    };
    Check {
        objective: slo.text.clone(),
        observed,
        unit,
        passed: observed.is_some_and(|v| slo.op.holds(v, slo.threshold)),
    }
}

/// The extra checks that end a stress search.
fn stress_checks(s: &Stress, summary: &PhaseSummary, acc: &PhaseAccumulator) -> Vec<Check> {
    let c = &acc.total.counters;
    let done = c.ok + c.failed;
    let mut out = vec![Check {
        objective: format!("error_rate <= {}%", s.max_error_rate * 100.0),
        observed: (done > 0).then(|| error_rate(c)),
        unit: "fraction",
        passed: done > 0 && error_rate(c) <= s.max_error_rate,
    }];
    if let Some(offered) = summary.offered_rate.filter(|o| *o > 0.0) {
        let ratio = summary.achieved_rate / offered;
        out.push(Check {
            objective: format!("achieved/offered >= {}%", s.min_achieved * 100.0),
            observed: Some(ratio),
            unit: "fraction",
            passed: ratio >= s.min_achieved,
        });
    }
    // A single slow window is scheduling noise; a share of them is an agent
    // that cannot keep up.
    let saturated: u64 = summary.saturated_windows.values().sum();
    let reported: u64 = acc.windows.values().map(|(_, n)| u64::from(*n)).sum();
    let share = if reported == 0 {
        0.0
    } else {
        saturated as f64 / reported as f64
    };
    out.push(Check {
        objective: format!("saturated agent windows <= {}%", s.max_saturated * 100.0),
        observed: Some(share),
        unit: "fraction",
        passed: share <= s.max_saturated,
    });
    out
}

/// Windows of the arrival period (completions in the drain are not steady state).
fn steady_windows(duration: Duration, window: Duration) -> u32 {
    let n = duration.as_nanos().div_ceil(window.as_nanos().max(1));
    u32::try_from(n).unwrap_or(u32::MAX).max(1)
}

/// A soak's drift report, from its per-window results.
pub fn drift(
    acc: &PhaseAccumulator,
    duration: Duration,
    window: Duration,
    wanted: Option<u32>,
    first_window: u32,
) -> Option<Drift> {
    let n = steady_windows(duration, window);
    // Completions reach their steady rate one request latency after the
    // start: windows before that are skipped (at least the first).
    let e2e = acc.total.hist(Metric::E2e);
    let settle_micros = quantile_or_zero(e2e, 0.5).ceil() as u64;
    let skip = u32::try_from(u128::from(settle_micros).div_ceil(window.as_micros().max(1)))
        .unwrap_or(u32::MAX)
        .max(1)
        .max(first_window)
        .min(n / 2);
    let k = wanted
        .unwrap_or(n / 10)
        .clamp(1, (n - skip).div_ceil(2).max(1));
    let merged = |range: std::ops::Range<u32>| {
        let mut a = Aggregate::default();
        for (_, (w, _)) in acc.windows.range(range) {
            a.merge(w);
        }
        let secs = window.as_secs_f64() * f64::from(k);
        DriftEnd {
            ttft_p99_ms: p(a.hist(Metric::Ttft), 0.99),
            e2e_p99_ms: p(a.hist(Metric::E2e), 0.99),
            throughput: a.counters.ok as f64 / secs,
            error_rate: error_rate(&a.counters),
        }
    };
    if acc.windows.is_empty() {
        return None;
    }
    let first = merged(skip..skip + k);
    let last = merged(n - k..n);
    let change = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if a > 0.0 => Some(b / a - 1.0),
        _ => None,
    };
    // Least squares over (minutes, error rate) of every steady window.
    let pts: Vec<(f64, f64)> = (skip..n)
        .map(|i| {
            let c = acc
                .windows
                .get(&i)
                .map(|(a, _)| a.counters)
                .unwrap_or_default();
            (window.as_secs_f64() * f64::from(i) / 60.0, error_rate(&c))
        })
        .collect();
    let m = pts.len() as f64;
    let (mx, my) = (
        pts.iter().map(|p| p.0).sum::<f64>() / m,
        pts.iter().map(|p| p.1).sum::<f64>() / m,
    );
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    Some(Drift {
        windows: k,
        skipped: skip,
        ttft_p99_change: change(first.ttft_p99_ms, last.ttft_p99_ms),
        e2e_p99_change: change(first.e2e_p99_ms, last.e2e_p99_ms),
        throughput_change: (first.throughput > 0.0)
            .then(|| last.throughput / first.throughput - 1.0),
        error_rate_slope_per_min: if sxx > 0.0 { sxy / sxx } else { 0.0 },
        first,
        last,
    })
}

/// Fill `summary`'s verdict fields: objectives (plus stress / drift checks),
/// goodput, and a soak's drift. `planned` is the phase as planned (a stress
/// step's summary is built from a constant-rate copy of it).
pub fn apply(
    planned: &Phase,
    summary: &mut PhaseSummary,
    acc: &PhaseAccumulator,
    window: Duration,
) {
    let mut checks: Vec<Check> = planned.slo.iter().map(|s| check(s, &acc.total)).collect();
    match planned.kind {
        PhaseKind::Stress(s) => {
            let mut extra = stress_checks(&s, summary, acc);
            // An error-rate objective of the phase replaces the default bound.
            if planned.slo.iter().any(|o| o.subject == Subject::ErrorRate) {
                extra.remove(0);
            }
            checks.extend(extra);
        }
        PhaseKind::Soak {
            drift_windows,
            max_drift,
            ..
        } => {
            let (first, end) = planned.measured_windows(window);
            let steady = planned.duration.min(window * end.min(u32::MAX / 2));
            summary.drift = drift(acc, steady, window, drift_windows, first);
            if let (Some(limit), Some(d)) = (max_drift, &summary.drift) {
                for (name, change) in [
                    ("ttft.p99", d.ttft_p99_change),
                    ("e2e.p99", d.e2e_p99_change),
                ] {
                    checks.push(Check {
                        objective: format!("{name} drift <= {}%", limit * 100.0),
                        observed: change,
                        unit: "fraction",
                        passed: change.is_some_and(|c| c <= limit),
                    });
                }
            }
        }
        _ => {}
    }
    summary.slo_passed = (!checks.is_empty()).then(|| checks.iter().all(|c| c.passed));
    summary.slo = checks;
    let bounded = !stampede_plan::slo::request_bounds(&planned.slo).is_empty();
    summary.goodput = (bounded && summary.finished_s > 0.0)
        .then(|| acc.total.counters.good as f64 / summary.finished_s);
    summary.good_requests = bounded.then_some(acc.total.counters.good);
}

/// The goodput bounds to send agents for `phase` (`None`: it has none).
pub fn goodput_bounds(phase: &Phase) -> Option<stampede_common::proto::GoodputBounds> {
    let bounds = stampede_plan::slo::request_bounds(&phase.slo);
    let micros = |m: Metric| {
        bounds.iter().find(|(x, _)| *x == m).map_or(0, |(_, d)| {
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
        })
    };
    (!bounds.is_empty()).then(|| stampede_common::proto::GoodputBounds {
        ttft_micros: micros(Metric::Ttft),
        tpot_micros: micros(Metric::Tpot),
        e2e_micros: micros(Metric::E2e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use stampede_plan::{Arrival, Search};

    /// A window whose requests all took `ttft_ms` to first token and
    /// `e2e_ms` in all, `ok` of them succeeding and `failed` failing.
    fn window(ttft_ms: u64, e2e_ms: u64, ok: u64, failed: u64) -> Aggregate {
        let mut a = Aggregate::default();
        a.record_n(Metric::Ttft, ttft_ms * 1000, ok);
        a.record_n(Metric::E2e, e2e_ms * 1000, ok);
        a.counters.ok = ok;
        a.counters.failed = failed;
        a.counters.sent = ok + failed;
        if failed > 0 {
            a.errors.insert("http_5xx:503".into(), failed);
        }
        a
    }

    fn accumulate(windows: Vec<Aggregate>) -> PhaseAccumulator {
        let mut acc = PhaseAccumulator::default();
        for (i, w) in windows.into_iter().enumerate() {
            acc.total.merge(&w);
            acc.windows.insert(i as u32, (w, 1));
        }
        acc
    }

    #[test]
    fn drift_compares_steady_first_windows_with_the_last() {
        // 20 one-second windows; E2E 1.5 s, so the first two are settling.
        let windows = (0..20)
            .map(|i| {
                let ok = if i < 2 { 5 } else { 10 };
                window(10 + i, 1500, ok, u64::from(i >= 18))
            })
            .collect();
        let acc = accumulate(windows);
        let d = drift(
            &acc,
            Duration::from_secs(20),
            Duration::from_secs(1),
            Some(3),
            0,
        )
        .unwrap();
        assert_eq!((d.skipped, d.windows), (2, 3));
        // First: windows 2..5 (TTFT 12–14 ms); last: 17..20 (27–29 ms).
        let first = d.first.ttft_p99_ms.unwrap();
        let last = d.last.ttft_p99_ms.unwrap();
        assert!(
            (first - 14.0).abs() < 0.1 && (last - 29.0).abs() < 0.1,
            "{d:?}"
        );
        assert!((d.ttft_p99_change.unwrap() - (last / first - 1.0)).abs() < 1e-12);
        assert_eq!(d.e2e_p99_change.map(|c| c.abs() < 0.01), Some(true));
        assert_eq!((d.first.throughput, d.last.throughput), (10.0, 10.0));
        assert!(d.last.error_rate > 0.0 && d.first.error_rate == 0.0);
        assert!(d.error_rate_slope_per_min > 0.0, "{d:?}");
    }

    #[test]
    fn a_soak_fails_its_objectives_when_latency_drifts_beyond_the_bound() {
        let acc = accumulate((0..10).map(|i| window(10 + 5 * i, 100, 10, 0)).collect());
        let phase = Phase {
            name: "soak".into(),
            kind: PhaseKind::Soak {
                rate: 10.0,
                arrival: Arrival::Uniform,
                drift_windows: Some(2),
                max_drift: Some(0.5),
            },
            duration: Duration::from_secs(10),
            max_requests: None,
            max_concurrency: None,
            drain: Duration::from_secs(1),
            slo: Vec::new(),
            warmup: Duration::ZERO,
            cooldown: Duration::ZERO,
            faults: Vec::new(),
        };
        let mut s = crate::analysis::summary::summarize(
            &phase,
            &acc,
            (Vec::new(), Vec::new()),
            false,
            None,
        );
        apply(&phase, &mut s, &acc, Duration::from_secs(1));
        assert_eq!(s.slo_passed, Some(false), "{:?}", s.slo);
        let ttft = s
            .slo
            .iter()
            .find(|c| c.objective.starts_with("ttft.p99 drift"))
            .unwrap();
        assert!(!ttft.passed && ttft.observed.unwrap() > 0.5, "{ttft:?}");
        let e2e = s
            .slo
            .iter()
            .find(|c| c.objective.starts_with("e2e.p99 drift"))
            .unwrap();
        assert!(e2e.passed, "{e2e:?}");
    }

    #[test]
    fn a_stress_step_fails_on_errors_lag_behind_or_saturated_agents() {
        let phase = Phase {
            name: "knee".into(),
            kind: PhaseKind::Stress(Stress {
                from: 10.0,
                to: 100.0,
                search: Search::Linear { step: 10.0 },
                max_steps: 10,
                arrival: Arrival::Uniform,
                max_error_rate: 0.01,
                min_achieved: 0.95,
                max_saturated: 0.25,
            }),
            duration: Duration::from_secs(4),
            max_requests: None,
            max_concurrency: None,
            drain: Duration::from_secs(1),
            slo: vec![Slo::parse("ttft.p99 < 100ms").unwrap()],
            warmup: Duration::ZERO,
            cooldown: Duration::ZERO,
            faults: Vec::new(),
        };
        let step = phase.stress_step(10.0);
        let verdict = |acc: &PhaseAccumulator, tweak: &dyn Fn(&mut PhaseSummary)| {
            let mut s = crate::analysis::summary::summarize(
                &step,
                acc,
                (Vec::new(), Vec::new()),
                false,
                None,
            );
            tweak(&mut s);
            apply(&phase, &mut s, acc, Duration::from_secs(1));
            let failed: Vec<String> = s
                .slo
                .iter()
                .filter(|c| !c.passed)
                .map(|c| c.objective.clone())
                .collect();
            (s.slo_passed, failed)
        };
        let healthy = accumulate((0..4).map(|_| window(20, 200, 10, 0)).collect());
        let arrivals = |s: &mut PhaseSummary| s.achieved_rate = 10.0;
        assert_eq!(verdict(&healthy, &arrivals), (Some(true), vec![]));

        let errors = accumulate((0..4).map(|_| window(20, 200, 10, 1)).collect());
        assert_eq!(
            verdict(&errors, &arrivals).1,
            vec!["error_rate <= 1%".to_string()]
        );
        let behind = |s: &mut PhaseSummary| s.achieved_rate = 9.0;
        assert_eq!(
            verdict(&healthy, &behind).1,
            vec!["achieved/offered >= 95%".to_string()]
        );
        // 1 of 4 agent windows saturated is within 25%; 2 of 4 is not.
        for (n, ok) in [(1, true), (2, false)] {
            let saturated = |s: &mut PhaseSummary| {
                s.achieved_rate = 10.0;
                s.saturated_windows.insert("a".into(), n);
            };
            assert_eq!(verdict(&healthy, &saturated).0, Some(ok), "{n}");
        }
        let slow = accumulate((0..4).map(|_| window(200, 400, 10, 0)).collect());
        assert_eq!(
            verdict(&slow, &arrivals).1,
            vec!["ttft.p99 < 100ms".to_string()]
        );
    }
}

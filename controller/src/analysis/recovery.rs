//! Recovery analysis: how a phase's time series reacted to its fault actions.
//!
//! A fault *episode* starts with an action that injects a fault and ends with
//! the next action that restores the target (for the simulator: every fault
//! off); an episode with no restoring action is measured until the series
//! recovers by itself. From the 1-window time series the analysis takes a
//! pre-fault band (mean + k·stddev of the window error rate and TTFT p90, with
//! minimum widths so noise does not count as impact), then finds the first
//! window after the fault that leaves the band (impact) and the first window
//! after the restore from which both are back in the band for a few windows
//! (recovery), and counts the requests failed and delayed in between. The
//! exact definitions are in docs/faults.md; the constants below are theirs.

use crate::analysis::merge::Aggregate;
use crate::model::{Band, Episode, FaultReport, FiredAction};
use stampede_common::metric::Metric;
use stampede_common::quantile::quantile;
use std::collections::BTreeMap;
use std::time::Duration;

/// The per-window TTFT quantile the band is on: p90 rides out the odd slow
/// request of a window (p99 of a 30-request window is its slowest one) yet
/// moves when a tenth of the requests slow down.
pub const BAND_TTFT_QUANTILE: f64 = 0.9;
/// Band half-width in standard deviations of the pre-fault windows.
pub const BAND_K: f64 = 3.0;
/// Smallest error-rate half-width (a fraction): stray failures are not impact.
pub const MIN_ERROR_RATE_WIDTH: f64 = 0.05;
/// Smallest TTFT p90 half-width, relative to the pre-fault mean.
pub const MIN_TTFT_WIDTH_REL: f64 = 0.5;
/// Smallest TTFT p90 half-width (ms).
pub const MIN_TTFT_WIDTH_MS: f64 = 5.0;
/// Windows that must be back in the band, in a row, for recovery.
pub const STABLE_WINDOWS: u32 = 3;
/// Fewest pre-fault windows a band is made from.
pub const MIN_BAND_WINDOWS: usize = 3;

impl FaultReport {
    /// The report of a phase whose actions ran as `actions`.
    pub fn of(series: &Series<'_>, actions: Vec<FiredAction>) -> FaultReport {
        FaultReport {
            episodes: analyse(series, &actions),
            actions,
        }
    }
}

/// What one window looks like to the analysis.
struct Point {
    ok: u64,
    failed: u64,
    ttft_p90_ms: Option<f64>,
}

impl Point {
    fn of(a: Option<&Aggregate>) -> Point {
        let Some(a) = a else {
            return Point {
                ok: 0,
                failed: 0,
                ttft_p90_ms: None,
            };
        };
        let h = a.hist(Metric::Ttft);
        Point {
            ok: a.counters.ok,
            failed: a.counters.failed,
            ttft_p90_ms: quantile(h, BAND_TTFT_QUANTILE).map(|v| v / 1e3),
        }
    }

    fn error_rate(&self) -> Option<f64> {
        let n = self.ok + self.failed;
        (n > 0).then(|| self.failed as f64 / n as f64)
    }
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

impl Band {
    fn of(points: &[Point]) -> Option<Band> {
        if points.len() < MIN_BAND_WINDOWS {
            return None;
        }
        let rates: Vec<f64> = points.iter().filter_map(Point::error_rate).collect();
        let (er_mean, er_sd) = if rates.is_empty() {
            (0.0, 0.0)
        } else {
            mean_sd(&rates)
        };
        let ttft: Vec<f64> = points.iter().filter_map(|p| p.ttft_p90_ms).collect();
        let ttft = (!ttft.is_empty()).then(|| mean_sd(&ttft));
        Some(Band {
            windows: points.len() as u32,
            error_rate_mean: er_mean,
            error_rate_upper: er_mean + (BAND_K * er_sd).max(MIN_ERROR_RATE_WIDTH),
            ttft_p90_mean_ms: ttft.map(|(m, _)| m),
            ttft_p90_upper_ms: ttft.map(|(m, sd)| {
                m + (BAND_K * sd)
                    .max(MIN_TTFT_WIDTH_REL * m)
                    .max(MIN_TTFT_WIDTH_MS)
            }),
            empty_windows_normal: points.len() > rates.len(),
        })
    }

    /// Whether a window is inside the band.
    fn holds(&self, p: &Point) -> bool {
        let Some(rate) = p.error_rate() else {
            return self.empty_windows_normal;
        };
        let ttft_ok = match (p.ttft_p90_ms, self.ttft_p90_upper_ms) {
            (Some(v), Some(upper)) => v <= upper,
            _ => true,
        };
        rate <= self.error_rate_upper && ttft_ok
    }
}

/// The series of one phase: per-window aggregates, window length, the first
/// measured window (after warm-up) and the number of windows arrivals cover.
pub struct Series<'a> {
    /// Per-window merged results.
    pub windows: &'a BTreeMap<u32, (Aggregate, u32)>,
    /// Window length.
    pub window: Duration,
    /// First window after the phase's warm-up.
    pub first: u32,
    /// Windows the phase's arrivals cover (later ones hold only the drain).
    pub arrival_windows: u32,
}

impl Series<'_> {
    fn point(&self, i: u32) -> Point {
        Point::of(self.windows.get(&i).map(|(a, _)| a))
    }

    /// The window holding instant `t` (s, phase clock).
    fn index(&self, t: f64) -> u32 {
        (t.max(0.0) / self.window.as_secs_f64()).floor() as u32
    }

    fn start_s(&self, i: u32) -> f64 {
        f64::from(i) * self.window.as_secs_f64()
    }

    fn last_received(&self) -> u32 {
        self.windows.keys().next_back().copied().unwrap_or(0)
    }
}

/// The episodes of a phase whose actions ran as `actions` (in firing order).
pub fn analyse(series: &Series<'_>, actions: &[FiredAction]) -> Vec<Episode> {
    // (start, restore) pairs; further injecting actions join the open episode.
    let mut pairs: Vec<(&FiredAction, Option<&FiredAction>)> = Vec::new();
    let mut open: Option<&FiredAction> = None;
    for a in actions.iter().filter(|a| a.instant().is_some()) {
        match (a.restores, open) {
            (false, None) => open = Some(a),
            (true, Some(start)) => {
                pairs.push((start, Some(a)));
                open = None;
            }
            _ => {}
        }
    }
    if let Some(start) = open {
        pairs.push((start, None));
    }
    let mut out: Vec<Episode> = Vec::with_capacity(pairs.len());
    for (n, (start, restore)) in pairs.iter().enumerate() {
        let next_fault = pairs
            .get(n + 1)
            .and_then(|(s, _)| s.instant())
            .map(|t| series.index(t));
        // Band: measured windows since the previous episode ended.
        let from = out.last().map_or(series.first, |e| {
            e.windows.1.saturating_add(1).max(series.first)
        });
        out.push(episode(series, start, *restore, from, next_fault));
    }
    out
}

fn episode(
    series: &Series<'_>,
    start: &FiredAction,
    restore: Option<&FiredAction>,
    band_from: u32,
    next_fault: Option<u32>,
) -> Episode {
    let fault_at = start.instant().unwrap_or(0.0);
    let restore_at = restore.and_then(FiredAction::instant);
    let fw = series.index(fault_at);
    let baseline: Vec<Point> = (band_from..fw).map(|i| series.point(i)).collect();
    let band = Band::of(&baseline);
    // Analysed windows: up to the next episode, within the arrivals.
    let limit = next_fault.unwrap_or(u32::MAX).min(series.arrival_windows);
    let impact = band
        .as_ref()
        .and_then(|b| (fw..limit).find(|&i| !b.holds(&series.point(i))));
    let impact_at = impact.map(|i| series.start_s(i).max(fault_at));
    let reference = restore_at.or(impact_at);
    let recovery = match (&band, impact, reference) {
        (Some(b), Some(iw), Some(r)) => {
            let from = series.index(r).max(iw);
            (from..limit).find(|&j| {
                let end = j.saturating_add(STABLE_WINDOWS).min(limit);
                (j..end).all(|k| b.holds(&series.point(k)))
            })
        }
        _ => None,
    };
    let recovered_at = recovery.map(|j| series.start_s(j).max(reference.unwrap_or(0.0)));
    let restore_w = restore_at.map(|t| series.index(t));
    let last = match (impact, recovery) {
        (Some(_), Some(j)) => j.saturating_sub(1).max(restore_w.unwrap_or(fw)).max(fw),
        (Some(_), None) => next_fault.map_or(series.last_received(), |n| n.saturating_sub(1)),
        (None, _) => restore_w
            .unwrap_or_else(|| next_fault.map_or(series.last_received(), |n| n.saturating_sub(1))),
    }
    .max(fw);
    let mut span = Aggregate::default();
    let mut delayed = 0;
    let threshold_us = band
        .as_ref()
        .and_then(|b| b.ttft_p90_upper_ms)
        .map(|ms| (ms * 1e3) as u64);
    for (_, (a, _)) in series.windows.range(fw..=last) {
        span.merge(a);
        if let Some(t) = threshold_us {
            let h = a.hist(Metric::Ttft);
            if !h.is_empty() && h.max() > t {
                delayed += h.count_between(t.saturating_add(1), h.max());
            }
        }
    }
    // Read before the fault went on and after it went off: every fault the
    // target injected in between.
    let target_injected = start
        .target_injected_before
        .zip(restore.and_then(|r| r.target_injected_after))
        .map(|(before, after)| after.saturating_sub(before));
    Episode {
        fault: start.index,
        restore: restore.map(|r| r.index),
        fault_at_s: fault_at,
        restore_at_s: restore_at,
        band,
        impacted: impact.is_some(),
        impact_at_s: impact_at,
        time_to_impact_s: impact_at.map(|t| t - fault_at),
        recovered: recovery.is_some(),
        recovered_at_s: recovered_at,
        time_to_recovery_s: recovered_at.zip(reference).map(|(t, r)| t - r),
        windows: (fw, last),
        requests: span.counters.ok + span.counters.failed,
        failed: span.counters.failed,
        errors: span.errors,
        delayed,
        target_injected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window of `ok` successes with TTFT `ttft_ms` each and `failed` failures.
    fn window(ok: u64, failed: u64, ttft_ms: u64) -> Aggregate {
        let mut a = Aggregate::default();
        a.counters.ok = ok;
        a.counters.failed = failed;
        if failed > 0 {
            a.errors.insert("http_5xx:500".into(), failed);
        }
        if ok > 0 {
            a.record_n(Metric::Ttft, ttft_ms * 1000, ok);
        }
        a
    }

    fn series(ws: Vec<Aggregate>) -> BTreeMap<u32, (Aggregate, u32)> {
        ws.into_iter()
            .enumerate()
            .map(|(i, a)| (i as u32, (a, 1)))
            .collect()
    }

    fn action(index: u32, at: f64, restores: bool) -> FiredAction {
        FiredAction {
            index,
            kind: "simulator".into(),
            action: String::new(),
            restores,
            at_s: at,
            fired_at_s: Some(at + 0.002),
            took_ms: Some(1.0),
            error: None,
            target_injected_before: None,
            target_injected_after: None,
        }
    }

    fn run(ws: Vec<Aggregate>, actions: &[FiredAction]) -> Vec<Episode> {
        let n = ws.len() as u32;
        let map = series(ws);
        analyse(
            &Series {
                windows: &map,
                window: Duration::from_secs(1),
                first: 0,
                arrival_windows: n,
            },
            actions,
        )
    }

    /// 30 windows at 30 req/s and 20 ms TTFT; `f` changes some.
    fn steady(f: impl Fn(u32) -> Option<Aggregate>) -> Vec<Aggregate> {
        (0..30)
            .map(|i| {
                f(i).unwrap_or_else(|| window(30 - u64::from(i % 2), 0, 20 + u64::from(i % 3)))
            })
            .collect()
    }

    #[test]
    fn an_error_fault_is_timed_in_and_out() {
        let ws = steady(|i| (10..20).contains(&i).then(|| window(15, 15, 20)));
        let e = run(ws, &[action(0, 10.0, false), action(1, 20.0, true)]);
        assert_eq!(e.len(), 1);
        let e = &e[0];
        assert!(e.impacted && e.recovered, "{e:?}");
        assert_eq!(e.impact_at_s, Some(10.002));
        assert_eq!(e.time_to_impact_s, Some(0.0));
        assert_eq!(e.recovered_at_s, Some(20.002));
        assert_eq!(e.time_to_recovery_s, Some(0.0));
        assert_eq!(e.windows, (10, 20));
        assert_eq!(e.failed, 150);
        assert_eq!(e.errors["http_5xx:500"], 150);
        assert_eq!(e.delayed, 0);
        let b = e.band.as_ref().unwrap();
        assert_eq!(b.windows, 10);
        assert!((b.error_rate_upper - MIN_ERROR_RATE_WIDTH).abs() < 1e-12);
    }

    #[test]
    fn a_late_impact_and_a_slow_recovery_are_measured_from_their_actions() {
        // Failures start two windows after the fault and last three windows
        // past the restore.
        let ws = steady(|i| (12..23).contains(&i).then(|| window(10, 20, 20)));
        let e = &run(ws, &[action(0, 10.0, false), action(1, 20.0, true)])[0];
        assert_eq!(e.impact_at_s, Some(12.0));
        assert!((e.time_to_impact_s.unwrap() - 1.998).abs() < 1e-9);
        assert_eq!(e.recovered_at_s, Some(23.0));
        assert!((e.time_to_recovery_s.unwrap() - 2.998).abs() < 1e-9);
        assert_eq!(e.windows, (10, 22));
        assert_eq!(e.failed, 220);
    }

    #[test]
    fn noise_within_the_band_is_no_impact() {
        // One stray failure per window (3%) and TTFT within 1.5×.
        let ws = steady(|i| (10..20).contains(&i).then(|| window(29, 1, 28)));
        let e = &run(ws, &[action(0, 10.0, false), action(1, 20.0, true)])[0];
        assert!(!e.impacted && !e.recovered, "{e:?}");
        assert_eq!(e.impact_at_s, None);
        assert_eq!(e.time_to_recovery_s, None);
        // Failures are still counted, through the restore's window.
        assert_eq!(e.windows, (10, 20));
        assert_eq!(e.failed, 10);
    }

    #[test]
    fn one_slow_request_in_a_window_neither_impacts_nor_delays_recovery() {
        let slow = || {
            let mut a = window(29, 0, 20);
            a.record_n(Metric::Ttft, 400_000, 1);
            a.counters.ok += 1;
            a
        };
        let ws = steady(|i| match i {
            10..20 => Some(window(15, 15, 20)),
            5 | 20 | 21 => Some(slow()),
            _ => None,
        });
        let e = &run(ws, &[action(0, 10.0, false), action(1, 20.0, true)])[0];
        assert_eq!(e.recovered_at_s, Some(20.002), "{e:?}");
        // The slow request of the restore's window is counted as delayed.
        assert_eq!((e.windows, e.delayed), ((10, 20), 1));
    }

    #[test]
    fn a_fault_that_never_clears_is_not_recovered() {
        let ws = steady(|i| (i >= 10).then(|| window(10, 20, 20)));
        let e = &run(ws, &[action(0, 10.0, false), action(1, 20.0, true)])[0];
        assert!(e.impacted && !e.recovered, "{e:?}");
        assert_eq!((e.recovered_at_s, e.time_to_recovery_s), (None, None));
        assert_eq!(e.windows, (10, 29));
        assert_eq!(e.failed, 400);
    }

    #[test]
    fn a_slowdown_is_an_impact_and_slow_requests_are_delayed() {
        let ws = steady(|i| (10..15).contains(&i).then(|| window(30, 0, 80)));
        let e = &run(ws, &[action(0, 10.0, false), action(1, 15.0, true)])[0];
        assert!(e.impacted && e.recovered, "{e:?}");
        assert_eq!(e.impact_at_s, Some(10.002));
        assert_eq!(e.recovered_at_s, Some(15.002));
        assert_eq!((e.failed, e.delayed), (0, 150));
    }

    #[test]
    fn without_a_restore_recovery_is_timed_from_the_impact() {
        let ws = steady(|i| (10..13).contains(&i).then(|| window(0, 30, 0)));
        let e = &run(ws, &[action(0, 10.0, false)])[0];
        assert_eq!((e.restore, e.restore_at_s), (None, None));
        assert_eq!(e.impact_at_s, Some(10.002));
        assert_eq!(e.recovered_at_s, Some(13.0));
        assert!((e.time_to_recovery_s.unwrap() - 2.998).abs() < 1e-9);
        assert_eq!((e.windows, e.failed), ((10, 12), 90));
    }

    #[test]
    fn a_stall_with_no_completions_is_an_impact() {
        let ws = steady(|i| (10..12).contains(&i).then(Aggregate::default));
        let e = &run(ws, &[action(0, 10.0, false), action(1, 11.0, true)])[0];
        assert_eq!(e.impact_at_s, Some(10.002));
        assert_eq!(e.recovered_at_s, Some(12.0));
    }

    #[test]
    fn too_few_windows_before_the_fault_give_no_band_but_the_count() {
        let ws = steady(|i| (1..5).contains(&i).then(|| window(0, 30, 0)));
        let e = &run(ws, &[action(0, 1.0, false), action(1, 5.0, true)])[0];
        assert_eq!(e.band, None);
        assert!(!e.impacted);
        assert_eq!((e.windows, e.failed), ((1, 5), 120));
    }

    #[test]
    fn failed_and_unfired_actions_start_no_episode_and_episodes_follow_each_other() {
        let mut failed = action(0, 5.0, false);
        failed.error = Some("HTTP 500".into());
        let ws =
            steady(|i| ((12..14).contains(&i) || (20..22).contains(&i)).then(|| window(0, 30, 0)));
        let e = run(
            ws,
            &[
                failed,
                action(1, 6.0, true),
                action(2, 12.0, false),
                action(3, 14.0, true),
                action(4, 20.0, false),
                action(5, 22.0, true),
            ],
        );
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!((e[0].fault, e[0].restore), (2, Some(3)));
        assert_eq!((e[1].fault, e[1].restore), (4, Some(5)));
        // The second band starts after the first episode.
        assert_eq!(e[0].windows, (12, 14));
        assert_eq!(e[1].band.as_ref().unwrap().windows, 20 - 15);
        assert_eq!((e[0].failed, e[1].failed), (60, 60));
    }

    #[test]
    fn the_targets_own_count_is_the_difference_across_the_episode() {
        let mut on = action(0, 10.0, false);
        on.target_injected_before = Some(4);
        on.target_injected_after = Some(6);
        let mut off = action(1, 20.0, true);
        off.target_injected_before = Some(153);
        off.target_injected_after = Some(154);
        let ws = steady(|i| (10..20).contains(&i).then(|| window(15, 15, 20)));
        let e = &run(ws, &[on, off])[0];
        assert_eq!(e.target_injected, Some(150));
    }
}

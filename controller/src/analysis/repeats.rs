//! Statistics across repeats (`run.repeat = N`): one run says little about
//! run-to-run variation; N repeats of the same phases give each key metric's
//! mean, standard deviation and a 95% confidence interval for the mean
//! (Student's t with N − 1 degrees of freedom). Two runs' repeats are told
//! apart by Welch's t-test (the regression gate's noise rule).

use crate::model::PhaseSummary;
use crate::model::gate::Welch;
use crate::model::{RepeatStat, RepeatSummary};
use std::fmt::Write as _;

/// Two-sided 95% Student's t critical values for 1..=30 degrees of freedom.
const T95: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The 95% t critical value for `df` degrees of freedom (`df` ≥ 1); beyond
/// the table, the normal value with its first-order correction.
pub fn t95(df: usize) -> f64 {
    match df {
        0 => f64::NAN,
        1..=30 => T95[df - 1],
        _ => {
            let z = 1.959_964;
            z + (z * z * z + z) / (4.0 * df as f64)
        }
    }
}

/// Mean and sample variance of `values` (variance 0 for fewer than 2).
pub fn mean_var(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let var = if n > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
    } else {
        0.0
    };
    (mean, var)
}

/// Welch's two-sample t-test of `b` against `a` (each at least 2 values), at
/// 95% two-sided; the degrees of freedom are rounded down for the critical
/// value (the conservative side). With no spread in either sample, any
/// difference of the means is beyond noise.
pub fn welch(a: &[f64], b: &[f64]) -> Welch {
    let ((ma, va), (mb, vb)) = (mean_var(a), mean_var(b));
    let (sa, sb) = (va / a.len() as f64, vb / b.len() as f64);
    let se = (sa + sb).sqrt();
    let diff = mb - ma;
    let (t, df) = if se > 0.0 {
        let df =
            (sa + sb).powi(2) / (sa * sa / (a.len() - 1) as f64 + sb * sb / (b.len() - 1) as f64);
        (diff / se, df)
    } else {
        let t = if diff == 0.0 {
            0.0
        } else {
            diff.signum() * f64::INFINITY
        };
        (t, (a.len() + b.len() - 2) as f64)
    };
    Welch {
        t,
        df,
        critical: t95((df.floor() as usize).max(1)),
    }
}

/// Mean, stddev and 95% interval of `values` (at least 2).
pub fn stat(metric: &str, unit: &str, values: Vec<f64>) -> RepeatStat {
    let n = values.len();
    let (mean, var) = mean_var(&values);
    let stddev = var.sqrt();
    let half = if n > 1 {
        t95(n - 1) * stddev / (n as f64).sqrt()
    } else {
        0.0
    };
    RepeatStat {
        metric: metric.to_string(),
        unit: unit.to_string(),
        values,
        mean,
        stddev,
        ci95_low: mean - half,
        ci95_high: mean + half,
    }
}

type Getter = fn(&PhaseSummary) -> Option<f64>;

/// The metrics summarized across repeats.
const METRICS: [(&str, &str, Getter); 9] = [
    ("ttft p50", "ms", |p| p.metrics.get("ttft").map(|m| m.p50)),
    ("ttft p99", "ms", |p| p.metrics.get("ttft").map(|m| m.p99)),
    ("itl p50", "ms", |p| p.metrics.get("itl").map(|m| m.p50)),
    ("itl p99", "ms", |p| p.metrics.get("itl").map(|m| m.p99)),
    ("e2e p50", "ms", |p| p.metrics.get("e2e").map(|m| m.p50)),
    ("e2e p99", "ms", |p| p.metrics.get("e2e").map(|m| m.p99)),
    ("achieved rate", "req/s", |p| Some(p.achieved_rate)),
    ("ok throughput", "req/s", |p| Some(p.request_throughput)),
    ("output tokens", "tok/s", |p| {
        Some(p.output_token_throughput)
    }),
];

/// Summaries across repeats of each planned phase (in plan order) that ran
/// at least twice; `phases` holds every phase run, all repeats.
pub fn summarize(planned: &[String], phases: &[PhaseSummary]) -> Vec<RepeatSummary> {
    planned
        .iter()
        .filter_map(|name| {
            // A stress phase's steps differ by design; its knee is compared instead.
            let runs: Vec<&PhaseSummary> = phases
                .iter()
                .filter(|p| &p.name == name && p.step.is_none())
                .collect();
            if runs.len() < 2 {
                return None;
            }
            let metrics = METRICS
                .iter()
                .filter_map(|(metric, unit, get)| {
                    let values: Option<Vec<f64>> = runs.iter().map(|p| get(p)).collect();
                    values.map(|v| stat(metric, unit, v))
                })
                .collect();
            Some(RepeatSummary {
                phase: name.clone(),
                repeats: runs.len(),
                metrics,
            })
        })
        .collect()
}

/// The "across repeats" section of stats.txt.
pub fn text(s: &mut String, repeats: &[RepeatSummary]) {
    for r in repeats {
        let _ = writeln!(s);
        let _ = writeln!(s, "phase {} across {} repeats", r.phase, r.repeats);
        let _ = writeln!(
            s,
            "  {:<16}{:>6} {:>10} {:>10} {:>23}",
            "metric", "unit", "mean", "stddev", "95% CI of the mean"
        );
        for m in &r.metrics {
            let _ = writeln!(
                s,
                "  {:<16}{:>6} {:>10.3} {:>10.3} {:>23}",
                m.metric,
                m.unit,
                m.mean,
                m.stddev,
                format!("[{:.3}, {:.3}]", m.ci95_low, m.ci95_high)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_of_known_values() {
        // Mean 2, sample stddev 1, n = 3: half-width 4.303 / √3.
        let s = stat("x", "ms", vec![1.0, 2.0, 3.0]);
        assert!((s.mean - 2.0).abs() < 1e-12);
        assert!((s.stddev - 1.0).abs() < 1e-12);
        let half = 4.303 / 3f64.sqrt();
        assert!((s.ci95_high - (2.0 + half)).abs() < 1e-9);
        assert!((s.ci95_low - (2.0 - half)).abs() < 1e-9);
    }

    #[test]
    fn welch_of_known_samples() {
        // Means 2 and 5, variances 1 and 1, n = 3 each: se = √(2/3), df = 4.
        let w = welch(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]);
        assert!((w.t - 3.0 / (2.0f64 / 3.0).sqrt()).abs() < 1e-9);
        assert!((w.df - 4.0).abs() < 1e-9);
        assert_eq!(w.critical, t95(4));
        assert!(w.beyond_noise(), "{w:?}");
        // Overlapping spreads: within noise.
        let w = welch(&[10.0, 20.0, 30.0], &[12.0, 22.0, 35.0]);
        assert!(!w.beyond_noise(), "{w:?}");
        // No spread at all: any difference counts, none does not.
        assert!(welch(&[1.0, 1.0], &[1.5, 1.5]).beyond_noise());
        assert!(!welch(&[1.0, 1.0], &[1.0, 1.0]).beyond_noise());
    }

    #[test]
    fn t_beyond_the_table_approaches_normal() {
        assert!(t95(31) < t95(30) && t95(31) > 1.96);
        assert!((t95(10_000) - 1.96).abs() < 1e-3);
    }
}

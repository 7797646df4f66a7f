//! Service-level objectives in plans: `"ttft.p99 < 500ms"`, `"itl.p95 < 50ms"`,
//! `"error_rate < 1%"`. Parsed once at plan validation (a typo is a plan
//! error naming the key), evaluated per phase on merged results, and used for
//! goodput: a request is *good* when it meets the threshold of every latency
//! objective of its phase (vLLM's definition of goodput).

use stampede_common::metric::Metric;
use std::fmt;
use std::time::Duration;

/// Comparison of an objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Op {
    /// Whether `observed op threshold` holds.
    pub fn holds(self, observed: f64, threshold: f64) -> bool {
        match self {
            Op::Lt => observed < threshold,
            Op::Le => observed <= threshold,
            Op::Gt => observed > threshold,
            Op::Ge => observed >= threshold,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// A statistic of a latency distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    /// A quantile in (0, 1], e.g. 0.99 for `p99`.
    Quantile(f64),
    /// The mean.
    Mean,
    /// The maximum.
    Max,
}

/// What an objective measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Subject {
    /// A statistic of a latency metric, compared in milliseconds.
    Latency {
        /// The metric.
        metric: Metric,
        /// Which statistic.
        stat: Stat,
    },
    /// Failed / (ok + failed), compared as a fraction.
    ErrorRate,
}

/// One objective, e.g. `ttft.p99 < 500ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// As written (normalised spacing).
    pub text: String,
    /// What it measures.
    pub subject: Subject,
    /// The comparison.
    pub op: Op,
    /// Threshold: milliseconds for latencies, a fraction for rates.
    pub threshold: f64,
}

/// Why an objective could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SloError(pub String);

const HINT: &str = "write e.g. \"ttft.p99 < 500ms\", \"itl.p95 <= 50ms\", \"e2e.mean < 2s\" or \"error_rate < 1%\"";

impl Slo {
    /// Parse `"<metric>.<stat> <op> <value>"` or `"error_rate <op> <value>"`.
    pub fn parse(text: &str) -> Result<Slo, SloError> {
        let bad = |why: String| SloError(format!("{why}; {HINT}"));
        let t = text.trim();
        let (pos, op, len) = ["<=", ">=", "<", ">"]
            .iter()
            .filter_map(|o| t.find(o).map(|p| (p, *o)))
            .min_by_key(|(p, o)| (*p, std::cmp::Reverse(o.len())))
            .map(|(p, o)| {
                let op = match o {
                    "<=" => Op::Le,
                    ">=" => Op::Ge,
                    "<" => Op::Lt,
                    _ => Op::Gt,
                };
                (p, op, o.len())
            })
            .ok_or_else(|| bad("no comparison (<, <=, >, >=)".into()))?;
        let lhs = t[..pos].trim();
        let rhs = t[pos + len..].trim();
        if rhs.is_empty() {
            return Err(bad("no threshold after the comparison".into()));
        }
        let (subject, threshold) = if lhs == "error_rate" {
            (Subject::ErrorRate, parse_fraction(rhs).map_err(bad)?)
        } else {
            let (m, s) = lhs
                .split_once('.')
                .ok_or_else(|| bad(format!("{lhs:?} is not <metric>.<statistic>")))?;
            let metric = Metric::ALL
                .iter()
                .copied()
                .find(|x| x.name() == m && x.unit() == stampede_common::metric::Unit::Micros)
                .ok_or_else(|| {
                    bad(format!(
                        "unknown metric {m:?} (expected ttft, itl, e2e, tpot, ntpot or schedule_lag)"
                    ))
                })?;
            let stat = parse_stat(s).map_err(bad)?;
            let d = humantime::parse_duration(rhs)
                .map_err(|e| bad(format!("threshold {rhs:?} is not a duration ({e})")))?;
            (Subject::Latency { metric, stat }, millis(d))
        };
        Ok(Slo {
            text: format!("{lhs} {} {rhs}", op.as_str()),
            subject,
            op,
            threshold,
        })
    }

    /// Two objectives on the same statistic: a phase's own replaces the run's.
    pub fn same_subject(&self, other: &Slo) -> bool {
        self.subject == other.subject
    }

    /// The per-request bound this objective puts on TTFT, TPOT or E2E (the
    /// metrics of vLLM's goodput), for goodput: `None` for other objectives.
    pub fn request_bound(&self) -> Option<(Metric, Duration)> {
        match (self.subject, self.op) {
            (Subject::Latency { metric, .. }, Op::Lt | Op::Le)
                if matches!(metric, Metric::Ttft | Metric::Tpot | Metric::E2e) =>
            {
                Some((metric, Duration::from_secs_f64(self.threshold / 1e3)))
            }
            _ => None,
        }
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn parse_stat(s: &str) -> Result<Stat, String> {
    match s {
        "mean" => return Ok(Stat::Mean),
        "max" => return Ok(Stat::Max),
        "p999" => return Ok(Stat::Quantile(0.999)),
        _ => {}
    }
    let q = s
        .strip_prefix('p')
        .and_then(|n| n.parse::<f64>().ok())
        .filter(|q| *q > 0.0 && *q <= 100.0)
        .ok_or_else(|| {
            format!("unknown statistic {s:?} (expected p50, p90, p95, p99, p99.9, mean or max)")
        })?;
    Ok(Stat::Quantile(q / 100.0))
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let (num, scale) = match s.strip_suffix('%') {
        Some(n) => (n.trim(), 100.0),
        None => (s, 1.0),
    };
    let v = num
        .parse::<f64>()
        .map_err(|_| format!("threshold {s:?} is not a number or percentage"))?
        / scale;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("threshold {s:?} is outside 0–100%"));
    }
    Ok(v)
}

/// Merge run-wide objectives with a phase's own (the phase's win on the same statistic).
pub fn combine(run: &[Slo], phase: &[Slo]) -> Vec<Slo> {
    let mut out: Vec<Slo> = run
        .iter()
        .filter(|r| !phase.iter().any(|p| p.same_subject(r)))
        .cloned()
        .collect();
    out.extend(phase.iter().cloned());
    out
}

/// Per-request latency bounds of a set of objectives (the tightest per metric).
pub fn request_bounds(slos: &[Slo]) -> Vec<(Metric, Duration)> {
    let mut out: Vec<(Metric, Duration)> = Vec::new();
    for (m, d) in slos.iter().filter_map(Slo::request_bound) {
        match out.iter_mut().find(|(x, _)| *x == m) {
            Some((_, cur)) => *cur = (*cur).min(d),
            None => out.push((m, d)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_latency_and_rate_objectives() {
        let s = Slo::parse("ttft.p99 < 500ms").unwrap();
        assert_eq!(
            s.subject,
            Subject::Latency {
                metric: Metric::Ttft,
                stat: Stat::Quantile(0.99)
            }
        );
        assert_eq!((s.op, s.threshold), (Op::Lt, 500.0));
        let s = Slo::parse("  itl.p99.9<=2s").unwrap();
        let Subject::Latency {
            metric: Metric::Itl,
            stat: Stat::Quantile(q),
        } = s.subject
        else {
            panic!("{:?}", s.subject)
        };
        assert!((q - 0.999).abs() < 1e-12, "{q}");
        assert_eq!((s.op, s.threshold), (Op::Le, 2000.0));
        assert_eq!(s.text, "itl.p99.9 <= 2s");
        let s = Slo::parse("error_rate < 1%").unwrap();
        assert_eq!((s.subject, s.threshold), (Subject::ErrorRate, 0.01));
        assert_eq!(Slo::parse("e2e.mean >= 0.5s").unwrap().op, Op::Ge);
        assert_eq!(Slo::parse("error_rate <= 0.05").unwrap().threshold, 0.05);
        assert_eq!(
            Slo::parse("ntpot.p99 < 60ms").unwrap().subject,
            Subject::Latency {
                metric: Metric::Ntpot,
                stat: Stat::Quantile(0.99)
            }
        );
    }

    #[test]
    fn bad_objectives_say_what_is_wrong() {
        for (text, needle) in [
            ("ttft.p99 500ms", "no comparison"),
            ("ttft.p99 <", "no threshold"),
            ("latency.p99 < 5ms", "unknown metric \"latency\""),
            ("output_tokens.p50 < 5ms", "unknown metric"),
            ("ttft.p101 < 5ms", "unknown statistic \"p101\""),
            ("ttft < 5ms", "not <metric>.<statistic>"),
            ("ttft.p99 < fast", "not a duration"),
            ("error_rate < 150%", "outside"),
            ("error_rate < lots", "not a number"),
        ] {
            let e = Slo::parse(text).unwrap_err().0;
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn phase_objectives_replace_run_ones_on_the_same_statistic() {
        let run = [
            Slo::parse("ttft.p99 < 1s").unwrap(),
            Slo::parse("error_rate < 1%").unwrap(),
        ];
        let phase = [Slo::parse("ttft.p99 < 200ms").unwrap()];
        let all = combine(&run, &phase);
        assert_eq!(all.len(), 2);
        assert!(all.iter().any(|s| s.text == "ttft.p99 < 200ms"));
        assert!(!all.iter().any(|s| s.text == "ttft.p99 < 1s"));
    }

    #[test]
    fn goodput_bounds_take_the_tightest_upper_bound_per_metric() {
        let slos: Vec<Slo> = [
            "ttft.p99 < 500ms",
            "ttft.p50 < 100ms",
            "e2e.max <= 2s",
            "tpot.p90 > 1ms",
            "error_rate < 1%",
        ]
        .iter()
        .map(|s| Slo::parse(s).unwrap())
        .collect();
        let b = request_bounds(&slos);
        assert_eq!(
            b,
            vec![
                (Metric::Ttft, Duration::from_millis(100)),
                (Metric::E2e, Duration::from_secs(2)),
            ]
        );
    }
}

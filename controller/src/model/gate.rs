//! A regression gate as data: which figure of a phase may move how far in its
//! worse direction (`controller compare --fail-on`, `controller run --baseline`),
//! and what comparing a candidate run with a baseline found for each. The
//! decision is made in `analysis::gate`; `outputs::gate` prints and writes it.

use std::fmt;

/// Latency metrics a threshold can name (their summaries are in ms).
pub const LATENCY_METRICS: [&str; 5] = ["ttft", "itl", "e2e", "tpot", "ntpot"];

/// A statistic of a latency distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    /// Mean.
    Mean,
    /// Median.
    P50,
    /// 90th percentile.
    P90,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
    /// 99.9th percentile.
    P999,
    /// Maximum.
    Max,
}

impl Stat {
    /// Every statistic, as named after the metric's dot.
    pub const ALL: [Stat; 7] = [
        Stat::Mean,
        Stat::P50,
        Stat::P90,
        Stat::P95,
        Stat::P99,
        Stat::P999,
        Stat::Max,
    ];

    /// As written in a threshold (`ttft.p99`).
    pub fn name(self) -> &'static str {
        match self {
            Stat::Mean => "mean",
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P95 => "p95",
            Stat::P99 => "p99",
            Stat::P999 => "p999",
            Stat::Max => "max",
        }
    }
}

/// The figure a threshold is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateMetric {
    /// A statistic of a latency distribution (ms); one of [`LATENCY_METRICS`].
    Latency(&'static str, Stat),
    /// Successful requests per second.
    Throughput,
    /// Output tokens per second.
    OutputThroughput,
    /// Good requests per second (phases with latency objectives).
    Goodput,
    /// Failed / (ok + failed).
    ErrorRate,
}

impl GateMetric {
    /// Whether a higher value is a regression (latencies, errors); else a
    /// lower one is (throughputs).
    pub fn higher_is_worse(self) -> bool {
        matches!(self, GateMetric::Latency(..) | GateMetric::ErrorRate)
    }

    /// The operator and sign a threshold on it is written with: `>` and `+`
    /// when higher is worse, `<` and `-` when lower is.
    pub fn op_sign(self) -> (char, char) {
        if self.higher_is_worse() {
            ('>', '+')
        } else {
            ('<', '-')
        }
    }

    /// Unit of an absolute amount and of the values as printed.
    pub fn unit(self) -> &'static str {
        match self {
            GateMetric::Latency(..) => "ms",
            GateMetric::ErrorRate => "pp",
            GateMetric::Throughput | GateMetric::OutputThroughput | GateMetric::Goodput => "/s",
        }
    }
}

impl fmt::Display for GateMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GateMetric::Latency(m, s) => write!(f, "{m}.{}", s.name()),
            GateMetric::Throughput => f.write_str("throughput"),
            GateMetric::OutputThroughput => f.write_str("output_throughput"),
            GateMetric::Goodput => f.write_str("goodput"),
            GateMetric::ErrorRate => f.write_str("error_rate"),
        }
    }
}

/// How far a figure may move in its worse direction (a magnitude, ≥ 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    /// Percent of the baseline's value.
    Percent(f64),
    /// In the metric's unit: ms, percentage points, or per second.
    Absolute(f64),
}

/// One threshold: `ttft.p99 > +10%`, `throughput < -5%`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// What it is on.
    pub metric: GateMetric,
    /// How far it may move.
    pub amount: Amount,
}

impl Threshold {
    /// The amount with its sign and unit, e.g. `+10%`, `-2.5/s`.
    pub fn amount_text(&self) -> String {
        let sign = self.metric.op_sign().1;
        match self.amount {
            Amount::Percent(v) => format!("{sign}{v}%"),
            Amount::Absolute(v) => format!("{sign}{v}{}", self.metric.unit()),
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = self.metric.op_sign().0;
        write!(f, "{}{op}{}", self.metric, self.amount_text())
    }
}

/// One run's figure for a phase: the mean over its repeats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Mean over the repeats (the value itself without repeats); error
    /// rates as a fraction.
    pub mean: f64,
    /// Repeats it covers.
    pub repeats: usize,
}

/// Welch's two-sample t-test of the repeats' values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Welch {
    /// The t statistic (candidate − baseline).
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Two-sided 95% critical value used.
    pub critical: f64,
}

impl Welch {
    /// Whether the means differ beyond noise (|t| above the critical value).
    pub fn beyond_noise(&self) -> bool {
        self.t.abs() > self.critical
    }
}

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not worse than the threshold allows.
    Passed,
    /// Worse than the threshold, but within the noise between repeats.
    WithinNoise,
    /// Worse than the threshold, and beyond noise (or noise unknown).
    Regressed,
    /// The phase or figure is absent from the baseline: nothing to compare
    /// with, so nothing held against the candidate.
    MissingInBaseline,
    /// The phase or figure is absent from the candidate: it cannot show it
    /// is no worse, so the gate fails.
    MissingInCandidate,
}

impl Outcome {
    /// Whether the check fails the gate.
    pub fn fails(self) -> bool {
        matches!(self, Outcome::Regressed | Outcome::MissingInCandidate)
    }

    /// As printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "ok",
            Outcome::WithinNoise => "within noise",
            Outcome::Regressed => "REGRESSED",
            Outcome::MissingInBaseline => "missing in baseline",
            Outcome::MissingInCandidate => "missing in candidate",
        }
    }
}

/// One threshold checked on one phase.
#[derive(Debug, Clone, PartialEq)]
pub struct GateCheck {
    /// Phase name.
    pub phase: String,
    /// The threshold.
    pub threshold: Threshold,
    /// The baseline's figure, when it has one.
    pub baseline: Option<Sample>,
    /// The candidate's figure, when it has one.
    pub candidate: Option<Sample>,
    /// Candidate against baseline in the threshold's unit (% or absolute),
    /// signed: positive is higher.
    pub change: Option<f64>,
    /// The noise test; `None` when either run has fewer than 2 repeats.
    pub noise: Option<Welch>,
    /// The verdict.
    pub outcome: Outcome,
}

/// A candidate run gated against a baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct GateReport {
    /// The baseline run, as named on the command line.
    pub baseline: String,
    /// The candidate run.
    pub candidate: String,
    /// Every threshold on every phase of either run, in the baseline's phase order.
    pub checks: Vec<GateCheck>,
    /// Phases not gated, with why (stress phases).
    pub not_gated: Vec<String>,
}

impl GateReport {
    /// The checks that fail the gate.
    pub fn failures(&self) -> impl Iterator<Item = &GateCheck> {
        self.checks.iter().filter(|c| c.outcome.fails())
    }

    /// Whether any check was decided without a noise estimate.
    pub fn noise_unknown(&self) -> bool {
        self.checks
            .iter()
            .any(|c| c.noise.is_none() && c.baseline.is_some() && c.candidate.is_some())
    }
}

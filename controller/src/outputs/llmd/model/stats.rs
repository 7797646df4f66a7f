//! The report's building blocks for numbers: a distribution summary with its
//! unit, a sequence-length distribution, and a number that keeps whether it
//! was written as an integer (the format allows either where a length is
//! expected, and a fixed length reads best as `32`, not `32.0`).

use super::Violation;
use super::check::{Check, at_least_one, non_negative};
use serde::{Deserialize, Serialize};

/// The units the format knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Units {
    /// A count.
    #[serde(rename = "count")]
    Count,
    /// Percent.
    #[serde(rename = "percent")]
    Percent,
    /// A fraction of 1.
    #[serde(rename = "fraction")]
    Fraction,
    /// Milliseconds.
    #[serde(rename = "ms")]
    Milliseconds,
    /// Seconds.
    #[serde(rename = "s")]
    Seconds,
    /// Megabytes.
    #[serde(rename = "MB")]
    Megabytes,
    /// Gigabytes.
    #[serde(rename = "GB")]
    Gigabytes,
    /// Terabytes.
    #[serde(rename = "TB")]
    Terabytes,
    /// Mebibytes.
    #[serde(rename = "MiB")]
    Mebibytes,
    /// Gibibytes.
    #[serde(rename = "GiB")]
    Gibibytes,
    /// Tebibytes.
    #[serde(rename = "TiB")]
    Tebibytes,
    /// Megabits per second.
    #[serde(rename = "Mbit/s")]
    MegabitsPerSecond,
    /// Gigabits per second.
    #[serde(rename = "Gbit/s")]
    GigabitsPerSecond,
    /// Terabits per second.
    #[serde(rename = "Tbit/s")]
    TerabitsPerSecond,
    /// Gibibytes per second.
    #[serde(rename = "GiB/s")]
    GibibytesPerSecond,
    /// Megabytes per second.
    #[serde(rename = "MB/s")]
    MegabytesPerSecond,
    /// Gigabytes per second.
    #[serde(rename = "GB/s")]
    GigabytesPerSecond,
    /// Terabytes per second.
    #[serde(rename = "TB/s")]
    TerabytesPerSecond,
    /// Milliseconds per token.
    #[serde(rename = "ms/token")]
    MillisecondsPerToken,
    /// Seconds per token.
    #[serde(rename = "s/token")]
    SecondsPerToken,
    /// Tokens per second.
    #[serde(rename = "tokens/s")]
    TokensPerSecond,
    /// Requests per second.
    #[serde(rename = "queries/s")]
    QueriesPerSecond,
    /// Watts.
    #[serde(rename = "Watts")]
    Watts,
}

/// Declares a struct whose own fields are followed by the summary fields the
/// format repeats in [`Statistics`] and a time series point: mode, stddev,
/// min, the percentiles `p0p1` … `p99p9` (0.1 … 99.9) and max.
macro_rules! with_summary {
    (
        $(#[$attr:meta])*
        pub struct $name:ident { $($(#[$fattr:meta])* pub $field:ident: $ty:ty,)* }
    ) => {
        $(#[$attr])*
        pub struct $name {
            $($(#[$fattr])* pub $field: $ty,)*
            /// Most frequent value.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub mode: Option<f64>,
            /// Standard deviation (at least 0).
            #[serde(skip_serializing_if = "Option::is_none")]
            pub stddev: Option<f64>,
            /// Smallest value.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub min: Option<f64>,
            /// 0.1th percentile.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub p0p1: Option<f64>,
            /// 1st percentile.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub p1: Option<f64>,
            /// 5th percentile.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub p5: Option<f64>,
            /// 10th percentile.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub p10: Option<f64>,
            /// 25th percentile.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub p25: Option<f64>,
            /// 50th (median) percentile.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub p50: Option<f64>,
            /// 75th percentile.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub p75: Option<f64>,
            /// 90th percentile.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub p90: Option<f64>,
            /// 95th percentile.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub p95: Option<f64>,
            /// 99th percentile.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub p99: Option<f64>,
            /// 99.9th percentile.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub p99p9: Option<f64>,
            /// Largest value.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub max: Option<f64>,
        }

        impl $crate::outputs::llmd::model::check::Check for $name {
            fn check(&self, path: &str) -> Result<(), $crate::outputs::llmd::model::Violation> {
                $crate::outputs::llmd::model::check::non_negative(path, "stddev", self.stddev)
            }
        }
    };
}
pub(super) use with_summary;

with_summary! {
    /// A distribution summary of one quantity.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Statistics {
        /// Unit of every value.
        pub units: Units,
        /// Mean.
        pub mean: f64,
    }
}

impl Statistics {
    /// Only a mean (a rate over a whole phase, say).
    pub fn mean_only(units: Units, mean: f64) -> Self {
        Statistics {
            units,
            mean,
            mode: None,
            stddev: None,
            min: None,
            p0p1: None,
            p1: None,
            p5: None,
            p10: None,
            p25: None,
            p50: None,
            p75: None,
            p90: None,
            p95: None,
            p99: None,
            p99p9: None,
            max: None,
        }
    }
}

/// How a sequence length is distributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Every sequence has `value` tokens.
    Fixed,
    /// Normal around `value` with `std_dev`.
    Gaussian,
    /// Uniform between `min` and `max`.
    Uniform,
    /// Anything else; `value` is the mean.
    Other,
}

/// A number the format allows as an integer or not, kept as written.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Number {
    /// Written without a fraction.
    Integer(u64),
    /// Anything else (a negative integer too).
    Real(f64),
}

impl Number {
    /// The value as a float.
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Integer(n) => n as f64,
            Number::Real(x) => x,
        }
    }
}

/// A sequence length (in tokens, or turns) and how it is distributed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequenceLength {
    /// Distribution.
    pub distribution: Distribution,
    /// The length (`fixed`) or the mean (at least 0).
    pub value: Number,
    /// Standard deviation (at least 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std_dev: Option<f64>,
    /// Shortest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<u64>,
    /// Longest (at least 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
}

impl Check for SequenceLength {
    fn check(&self, path: &str) -> Result<(), Violation> {
        non_negative(path, "value", self.value.as_f64())?;
        non_negative(path, "std_dev", self.std_dev)?;
        at_least_one(path, "max", self.max.map(|m| m as f64))
    }
}

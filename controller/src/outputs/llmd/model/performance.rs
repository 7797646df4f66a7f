//! Request-level results: the aggregate over the whole measurement (what
//! stampede writes) and time series (what other tools may write).

use super::check::check_fields;
use super::stats::{Statistics, Units, with_summary};
use serde::{Deserialize, Serialize};

/// Request-level results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestPerformance {
    /// Over the whole measurement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<Aggregate>,
    /// Over time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_series: Option<TimeSeries>,
}

check_fields!(RequestPerformance: aggregate, time_series);

/// Results over the whole measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aggregate {
    /// Request counts and lengths.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<Requests>,
    /// Latencies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency<Statistics>>,
    /// Rates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput: Option<Throughput>,
}

check_fields!(Aggregate: requests, latency, throughput);

/// Request counts and lengths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requests {
    /// Requests sent.
    pub total: u64,
    /// Requests that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failures: Option<u64>,
    /// Requests whose end is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<u64>,
    /// Prompt lengths.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_length: Option<Statistics>,
    /// Output lengths.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_length: Option<Statistics>,
}

check_fields!(Requests: input_length, output_length);

/// Latencies: summaries ([`Statistics`]) in an aggregate, [`TimeSeriesData`]
/// in a time series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency<T> {
    /// Time to first token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_first_token: Option<T>,
    /// Request latency divided by output tokens, per request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalized_time_per_output_token: Option<T>,
    /// Time per output token after the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_per_output_token: Option<T>,
    /// Time between tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inter_token_latency: Option<T>,
    /// Whole request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_latency: Option<T>,
}

check_fields!(
    <T> Latency<T>: time_to_first_token,
    normalized_time_per_output_token,
    time_per_output_token,
    inter_token_latency,
    request_latency,
);

/// Declares a struct of its own fields followed by the four rates of the
/// format (input, output, total tokens and requests per second) of one type.
macro_rules! rates {
    (
        $(#[$attr:meta])*
        $name:ident of $ty:ty { $($(#[$oattr:meta])* pub $own:ident: $oty:ty,)* }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$oattr])* pub $own: $oty,)*
            /// Prompt tokens per second.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub input_token_rate: Option<$ty>,
            /// Output tokens per second.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub output_token_rate: Option<$ty>,
            /// All tokens per second.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub total_token_rate: Option<$ty>,
            /// Requests per second.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub request_rate: Option<$ty>,
        }

        check_fields!($name: input_token_rate, output_token_rate, total_token_rate, request_rate);
    };
}

rates! {
    /// Rates over the whole measurement.
    Throughput of Statistics {}
}

/// Request-level results over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSeries {
    /// Latencies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency<TimeSeriesData>>,
    /// Rates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput: Option<TimeSeriesThroughput>,
}

check_fields!(TimeSeries: latency, throughput);

rates! {
    /// Rates over time.
    TimeSeriesThroughput of TimeSeriesData {
        /// Unit of the rates.
        #[serde(default = "tokens_per_second")]
        pub units: Units,
    }
}

fn tokens_per_second() -> Units {
    Units::TokensPerSecond
}

/// One quantity over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSeriesData {
    /// Unit of the values.
    pub units: Units,
    /// Points, in time order.
    pub series: Vec<TimeSeriesPoint>,
}

check_fields!(TimeSeriesData: series);

with_summary! {
    /// One point of a time series: a single value, or a summary of an interval.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TimeSeriesPoint {
        /// Time (RFC 3339).
        pub ts: String,
        /// A single value.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub value: Option<PointValue>,
        /// Mean over the interval.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub mean: Option<f64>,
    }
}

/// The value of a time series point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PointValue {
    /// A flag.
    Flag(bool),
    /// A number.
    Number(super::stats::Number),
    /// Text.
    Text(String),
}

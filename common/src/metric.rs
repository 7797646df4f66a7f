//! The metric vocabulary (vLLM's definitions) and how each metric is named,
//! measured and printed. One place, so agents, reports and docs agree.

use crate::proto;

/// A metric recorded as a histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Time to first token, from the intended send time (µs).
    Ttft,
    /// Inter-token latency between consecutive token-bearing messages (µs).
    Itl,
    /// End-to-end latency, intended send → last token-bearing message (µs).
    E2e,
    /// Time per output token, (E2E − TTFT) / (output tokens − 1) (µs).
    Tpot,
    /// Intended send → actual send (µs).
    ScheduleLag,
    /// Output tokens per successful request (tokens).
    OutputTokens,
    /// Prompt tokens per successful request, as the server counted them (tokens).
    InputTokens,
    /// Normalized time per output token, E2E / output tokens (µs).
    Ntpot,
}

/// Unit of a metric's recorded values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Microseconds.
    Micros,
    /// A count of tokens.
    Tokens,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 8] = [
        Metric::Ttft,
        Metric::Itl,
        Metric::E2e,
        Metric::Tpot,
        Metric::ScheduleLag,
        Metric::OutputTokens,
        Metric::InputTokens,
        Metric::Ntpot,
    ];

    /// Short name used in files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Ttft => "ttft",
            Metric::Itl => "itl",
            Metric::E2e => "e2e",
            Metric::Tpot => "tpot",
            Metric::ScheduleLag => "schedule_lag",
            Metric::OutputTokens => "output_tokens",
            Metric::InputTokens => "input_tokens",
            Metric::Ntpot => "ntpot",
        }
    }

    /// Unit of the recorded values.
    pub fn unit(self) -> Unit {
        match self {
            Metric::OutputTokens | Metric::InputTokens => Unit::Tokens,
            _ => Unit::Micros,
        }
    }

    /// The wire enum.
    pub fn to_proto(self) -> proto::Metric {
        match self {
            Metric::Ttft => proto::Metric::Ttft,
            Metric::Itl => proto::Metric::Itl,
            Metric::E2e => proto::Metric::E2e,
            Metric::Tpot => proto::Metric::Tpot,
            Metric::ScheduleLag => proto::Metric::ScheduleLag,
            Metric::OutputTokens => proto::Metric::OutputTokens,
            Metric::InputTokens => proto::Metric::InputTokens,
            Metric::Ntpot => proto::Metric::Ntpot,
        }
    }

    /// From the wire enum; `None` for `METRIC_UNSPECIFIED` or unknown values.
    pub fn from_proto(value: i32) -> Option<Metric> {
        match proto::Metric::try_from(value).ok()? {
            proto::Metric::Unspecified => None,
            proto::Metric::Ttft => Some(Metric::Ttft),
            proto::Metric::Itl => Some(Metric::Itl),
            proto::Metric::E2e => Some(Metric::E2e),
            proto::Metric::Tpot => Some(Metric::Tpot),
            proto::Metric::ScheduleLag => Some(Metric::ScheduleLag),
            proto::Metric::OutputTokens => Some(Metric::OutputTokens),
            proto::Metric::InputTokens => Some(Metric::InputTokens),
            proto::Metric::Ntpot => Some(Metric::Ntpot),
        }
    }

    /// Index into [`Metric::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

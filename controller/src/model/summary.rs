//! A run's results as data: the run, its phases and their per-metric
//! summaries, counts, verdicts, stress steps and costs (`summary.json`).

use super::{DatasetInfo, FaultReport, KubernetesInfo, TraceInfo};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// stampede version.
    pub stampede_version: String,
    /// Run identifier (also the default directory name).
    pub run_id: String,
    /// Start (RFC 3339, UTC).
    pub started_at: String,
    /// End (RFC 3339, UTC); `None` when the controller stopped before the end.
    pub finished_at: Option<String>,
    /// Endpoint under test.
    pub target: TargetInfo,
    /// Agents that took part.
    pub agents: Vec<AgentInfo>,
    /// One entry per phase that ran.
    pub phases: Vec<PhaseSummary>,
    /// The run was cut short by a stop signal.
    pub interrupted: bool,
    /// Times the plan's phases were to run.
    pub repeat: u32,
    /// Per planned phase, key metrics across repeats (empty without repeats).
    pub repeats: Vec<crate::model::RepeatSummary>,
    /// Datasets the run read, with the records it skipped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<DatasetInfo>,
    /// Traces the run replayed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub traces: Vec<TraceInfo>,
    /// Cluster details (node labels, gateway address) on Kubernetes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesInfo>,
    /// Each stress phase's search: its steps and its knee.
    pub stress: Vec<StressResult>,
    /// Some phase failed its objectives (a stress phase: no step held them).
    pub slo_failed: bool,
}

/// A stress phase's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct StressResult {
    /// Phase name.
    pub phase: String,
    /// Repeat it ran in (0-based).
    pub repeat: u32,
    /// Highest offered rate whose step held every objective and check.
    pub knee_rate: Option<f64>,
    /// Why the search ended.
    pub stopped: crate::model::StopReason,
    /// The same, as a sentence.
    pub reason: String,
    /// Every step, in the order run.
    pub steps: Vec<StressStep>,
}

/// One row of a stress phase's step table.
#[derive(Debug, Clone, Serialize)]
pub struct StressStep {
    /// Offered rate (requests per second).
    pub rate: f64,
    /// Achieved rate.
    pub achieved_rate: f64,
    /// TTFT p99 (ms).
    pub ttft_p99_ms: Option<f64>,
    /// E2E p99 (ms).
    pub e2e_p99_ms: Option<f64>,
    /// Failed / (ok + failed).
    pub error_rate: f64,
    /// Good requests per second, when the phase has latency objectives.
    pub goodput: Option<f64>,
    /// Every objective and check held.
    pub passed: bool,
    /// The objectives and checks that failed.
    pub failed: Vec<String>,
}

/// A lost agent's share handed to the others.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Redistribution {
    /// The agent declared lost (empty when one took a share back).
    pub lost: String,
    /// The agent that took a share back, if any.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rejoined: String,
    /// The agents that took its share.
    pub to: Vec<String>,
    /// From this many seconds into the phase.
    pub from_s: f64,
}

/// Endpoint under test.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TargetInfo {
    /// Base URL.
    pub url: String,
    /// Model.
    pub model: String,
    /// API.
    pub api: stampede_plan::Api,
    /// Whether it was the built-in simulator.
    pub simulator: bool,
}

/// An agent of the run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentInfo {
    /// Agent id.
    pub id: String,
    /// Node it ran on.
    pub node: String,
    /// Cores.
    pub cores: u32,
    /// Agent version.
    pub version: String,
    /// Estimated clock offset (agent − controller), ms.
    pub clock_offset_ms: f64,
    /// Round trip of the probe behind the estimate, ms.
    pub clock_rtt_ms: f64,
}

/// Request counts of a phase.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RequestCounts {
    /// Sent.
    pub sent: u64,
    /// Succeeded.
    pub ok: u64,
    /// Failed (sum of `errors`).
    pub failed: u64,
    /// Due but not sent (in-flight bound).
    pub skipped: u64,
    /// Due but not sent: their deadline had passed when the agent got to
    /// them (the agent was stalled). Never a server failure.
    pub expired: u64,
    /// Sent by an agent that was lost before reporting how they ended.
    pub lost: u64,
}

/// One phase's merged results.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseSummary {
    /// Phase name.
    pub name: String,
    /// Phase kind.
    pub kind: String,
    /// Offered rate (open loop), requests/s.
    pub offered_rate: Option<f64>,
    /// Users (closed loop).
    pub users: Option<u32>,
    /// Planned arrival duration, s.
    pub planned_duration_s: f64,
    /// Measured span of arrivals, s.
    pub arrivals_s: f64,
    /// Phase start to last completion, s.
    pub finished_s: f64,
    /// Agents assigned.
    pub agents: Vec<String>,
    /// Agents lost during the phase.
    pub lost_agents: Vec<String>,
    /// Request counts.
    pub requests: RequestCounts,
    /// Failures by class.
    pub errors: BTreeMap<String, u64>,
    /// Arrivals the open-loop schedule defines in the measured interval
    /// (sent + skipped + expired when every agent ran the whole phase);
    /// `None` for closed loops.
    pub scheduled: Option<u64>,
    /// Sent requests per second over the arrival window (the planned one,
    /// unless the phase was stopped or its request bound spent first).
    pub achieved_rate: f64,
    /// Successful requests per second (start to last completion).
    pub request_throughput: f64,
    /// Output tokens of successful requests.
    pub output_tokens: u64,
    /// Prompt tokens of successful requests (server-reported).
    pub input_tokens: u64,
    /// Output tokens per second (start to last completion).
    pub output_token_throughput: f64,
    /// Successful requests whose token count came from `usage`.
    pub usage_reported: u64,
    /// Distributions by metric name.
    pub metrics: BTreeMap<String, MetricSummary>,
    /// The same results by workload entry and by model, when the phase's
    /// mix has several entries (or models).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub breakdowns: Vec<crate::model::Breakdown>,
    /// CPU seconds all agents spent in the phase.
    pub agent_cpu_s: f64,
    /// Window reports rejected as malformed.
    pub rejected_reports: u64,
    /// Duplicate window reports ignored.
    pub duplicate_reports: u64,
    /// The phase was stopped before its planned end.
    pub stopped_early: bool,
    /// Windows in which an agent reported itself saturated (its own lag or
    /// CPU beyond a bound), by agent: latencies there may include the load
    /// generator's delay.
    pub saturated_windows: BTreeMap<String, u64>,
    /// Window reports agents dropped from their unacknowledged buffers during
    /// long disconnections (lost data), summed over agents.
    #[serde(default)]
    pub reports_dropped: u64,
    /// Sampled requests whose per-request records agents dropped (their
    /// per-window bound): `requests/` holds that many fewer rows.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub records_dropped: u64,
    /// The phase's end was recorded; `false` when the controller stopped
    /// mid-phase and the results cover only the windows received until then.
    pub complete: bool,
    /// Repeat of the plan's phases this phase ran in (0-based).
    pub repeat: u32,
    /// Cost figures, when the plan has a `[cost]` table.
    pub cost: Option<crate::model::PhaseCost>,
    /// Objectives and checks, evaluated.
    pub slo: Vec<crate::model::Check>,
    /// Whether every objective and check held (`None`: the phase has none).
    pub slo_passed: Option<bool>,
    /// Good requests per second (vLLM's goodput: successful requests within
    /// every TTFT / TPOT / E2E objective's threshold), when the phase has such
    /// objectives.
    pub goodput: Option<f64>,
    /// Requests counted in `goodput`.
    pub good_requests: Option<u64>,
    /// The stress step this summary covers.
    pub step: Option<crate::model::StepRecord>,
    /// A soak's drift between its first and last windows.
    pub drift: Option<crate::model::Drift>,
    /// Lost agents' shares handed to the remaining agents.
    pub redistributed: Vec<Redistribution>,
    /// Spread of the agents' actual phase starts (controller clock), ms.
    pub start_spread_ms: Option<f64>,
    /// The serving stack's own metrics over the phase, when scraped.
    pub server: Option<crate::model::ServerSummary>,
    /// Start of the phase left out of its results (s).
    pub warmup_s: f64,
    /// End of the phase left out of its results, with the drain (s; 0: none).
    pub cooldown_s: f64,
    /// The phase's fault actions and the recovery from each episode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faults: Option<FaultReport>,
}

/// Serde's test for counts left out of the JSON when zero.
pub(crate) fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl PhaseSummary {
    /// Name for charts and tables: the phase name, plus the repeat when the
    /// run repeats its phases.
    pub fn label(&self, repeats: u32) -> String {
        let name = match self.step {
            Some(step) => format!("{}@{}", self.name, rate_text(step.rate)),
            None => self.name.clone(),
        };
        if repeats > 1 {
            format!("{name} #{}", self.repeat + 1)
        } else {
            name
        }
    }
}

/// A rate for labels: whole numbers without decimals.
pub fn rate_text(rate: f64) -> String {
    if rate.fract() == 0.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.2}")
    }
}

/// Distribution summary of one metric, in the metric's display unit.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSummary {
    /// "ms" for latencies, "tokens" for sizes.
    pub unit: &'static str,
    /// Number of samples.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub stddev: f64,
    /// Minimum.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Maximum.
    pub max: f64,
    /// The plan's `run.percentiles` and their values, ascending; empty when
    /// the plan chose none (each output shows its default set).
    pub chosen: Vec<(f64, f64)>,
}

/// The percentiles `summary.json` and `phases.csv` show by default.
pub const DEFAULT_PERCENTILES: [f64; 5] = [50.0, 90.0, 95.0, 99.0, 99.9];

impl MetricSummary {
    /// The percentiles an output shows, with their values: the plan's
    /// choice, else the output's `default` set (each one of
    /// [`DEFAULT_PERCENTILES`]; others are left out).
    pub fn percentiles(&self, default: &[f64]) -> Vec<(f64, f64)> {
        if !self.chosen.is_empty() {
            return self.chosen.clone();
        }
        default
            .iter()
            .filter_map(|p| {
                let v = match *p {
                    50.0 => self.p50,
                    90.0 => self.p90,
                    95.0 => self.p95,
                    99.0 => self.p99,
                    99.9 => self.p999,
                    _ => return None,
                };
                Some((*p, v))
            })
            .collect()
    }
}

impl Serialize for MetricSummary {
    /// unit, count, mean, stddev, min, the percentiles (the plan's, else
    /// [`DEFAULT_PERCENTILES`]) by name (`p50`, `p999`), max.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let pcts = self.percentiles(&DEFAULT_PERCENTILES);
        let mut m = s.serialize_map(Some(6 + pcts.len()))?;
        m.serialize_entry("unit", self.unit)?;
        m.serialize_entry("count", &self.count)?;
        m.serialize_entry("mean", &self.mean)?;
        m.serialize_entry("stddev", &self.stddev)?;
        m.serialize_entry("min", &self.min)?;
        for (p, v) in &pcts {
            m.serialize_entry(&stampede_plan::percentiles::name(*p), v)?;
        }
        m.serialize_entry("max", &self.max)?;
        m.end()
    }
}

/// One metric across repeats.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RepeatStat {
    /// Metric, e.g. "ttft p99".
    pub metric: String,
    /// Unit of the values.
    pub unit: String,
    /// Value of each repeat, in order.
    pub values: Vec<f64>,
    /// Mean across repeats.
    pub mean: f64,
    /// Sample standard deviation.
    pub stddev: f64,
    /// Lower end of the 95% confidence interval of the mean.
    pub ci95_low: f64,
    /// Upper end of the 95% confidence interval of the mean.
    pub ci95_high: f64,
}

/// One planned phase across repeats.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RepeatSummary {
    /// Phase name.
    pub phase: String,
    /// Repeats with results for this phase.
    pub repeats: usize,
    /// Key metrics.
    pub metrics: Vec<RepeatStat>,
}

/// Why a stress search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The first step already failed: the knee is below `from`.
    FirstStepFailed,
    /// A linear search's step failed; the knee is the step before it.
    StepFailed,
    /// An adaptive search narrowed the bracket to its precision.
    Converged,
    /// Every step passed up to the highest rate allowed (`to`).
    ReachedMaxRate,
    /// `max_steps` steps ran.
    MaxSteps,
    /// The run was interrupted.
    Interrupted,
}

/// Cost figures of one phase.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PhaseCost {
    /// Currency label.
    pub currency: String,
    /// GPUs paid for.
    pub gpus: u32,
    /// Price of one GPU-hour.
    pub gpu_hour_price: f64,
    /// Cost of the phase's wall time (start to last completion).
    pub cost: f64,
    /// Cost per million output tokens; `None` without output tokens.
    pub per_million_output_tokens: Option<f64>,
    /// Output tokens per currency unit.
    pub output_tokens_per_unit: f64,
}

/// One evaluated objective or check.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    /// What was checked, e.g. `ttft.p99 < 500ms`.
    pub objective: String,
    /// The measured value (ms for latencies, a fraction for rates); `None`
    /// when there was nothing to measure (no successful request).
    pub observed: Option<f64>,
    /// Unit of `observed`: "ms" or "fraction".
    pub unit: &'static str,
    /// Whether it held.
    pub passed: bool,
}

/// A soak's drift: its first windows against its last.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Drift {
    /// Windows merged at each end.
    pub windows: u32,
    /// Windows skipped at the start (completions not yet at their steady rate).
    pub skipped: u32,
    /// The first windows.
    pub first: DriftEnd,
    /// The last windows.
    pub last: DriftEnd,
    /// Relative change of TTFT p99 (last / first − 1).
    pub ttft_p99_change: Option<f64>,
    /// Relative change of E2E p99.
    pub e2e_p99_change: Option<f64>,
    /// Relative change of successful requests per second.
    pub throughput_change: Option<f64>,
    /// Least-squares slope of the per-window error rate, per minute.
    pub error_rate_slope_per_min: f64,
}

/// Figures of one end of a soak.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DriftEnd {
    /// TTFT p99 (ms), when any request succeeded.
    pub ttft_p99_ms: Option<f64>,
    /// E2E p99 (ms).
    pub e2e_p99_ms: Option<f64>,
    /// Successful requests per second.
    pub throughput: f64,
    /// Failed / (ok + failed).
    pub error_rate: f64,
}

/// Which step of a stress phase an assignment ran.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StepRecord {
    /// Step number (0-based).
    pub index: u32,
    /// Its offered rate (requests per second).
    pub rate: f64,
}

/// One series' figures over a phase.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeriesSummary {
    /// Sample name (for histograms: the family).
    pub name: String,
    /// Its labels.
    pub labels: Labels,
    /// `counter`, `gauge` or `histogram`.
    pub kind: String,
    /// Counter: increase over the phase (resets handled). Histogram: observations.
    pub increase: Option<f64>,
    /// Counter resets seen.
    pub resets: u32,
    /// Gauge: mean over the scrapes.
    pub mean: Option<f64>,
    /// Gauge: maximum over the scrapes.
    pub max: Option<f64>,
    /// Histogram: median of the phase's observations.
    pub p50: Option<f64>,
    /// Histogram: 90th percentile.
    pub p90: Option<f64>,
    /// Histogram: 99th percentile.
    pub p99: Option<f64>,
}

/// The serving figures of one phase.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct ServerSummary {
    /// Scrapes taken (all pages).
    pub scrapes: u32,
    /// Scrapes that failed (unreachable page, bad format), by URL.
    pub failed_scrapes: BTreeMap<String, u32>,
    /// Δ prefix-cache hits / Δ prefix-cache queries (tokens), all series.
    pub prefix_cache_hit_rate: Option<f64>,
    /// KV-cache usage (fraction): mean over scrapes, summed over series.
    pub kv_cache_usage_mean: Option<f64>,
    /// KV-cache usage: max.
    pub kv_cache_usage_max: Option<f64>,
    /// Running requests: mean.
    pub running_mean: Option<f64>,
    /// Running requests: max.
    pub running_max: Option<f64>,
    /// Waiting requests: mean.
    pub waiting_mean: Option<f64>,
    /// Waiting requests: max.
    pub waiting_max: Option<f64>,
    /// Server-side TTFT p50 (ms).
    pub ttft_p50_ms: Option<f64>,
    /// Server-side TTFT p99 (ms).
    pub ttft_p99_ms: Option<f64>,
    /// Server-side E2E p50 (ms).
    pub e2e_p50_ms: Option<f64>,
    /// Server-side E2E p99 (ms).
    pub e2e_p99_ms: Option<f64>,
    /// Requests the server completed (Δ `request_success`).
    pub requests: Option<f64>,
    /// Prompt tokens the server processed.
    pub prompt_tokens: Option<f64>,
    /// Output tokens the server generated.
    pub generation_tokens: Option<f64>,
    /// Every series, by page.
    pub series: BTreeMap<String, Vec<SeriesSummary>>,
}

/// Label set of a series (without `le` for histogram buckets).
pub type Labels = BTreeMap<String, String>;

/// Fixed summaries for the layers' tests.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn metric(unit: &'static str, count: u64, base: f64) -> MetricSummary {
        MetricSummary {
            unit,
            count,
            mean: base * 1.1,
            stddev: base * 0.2,
            min: base * 0.5,
            p50: base,
            p90: base * 1.5,
            p95: base * 1.75,
            p99: base * 2.0,
            p999: base * 3.0,
            max: base * 4.0,
            chosen: Vec::new(),
        }
    }

    /// A fixed run summary with every kind of line stats.txt can hold.
    pub(crate) fn sample_run() -> RunSummary {
        let mut metrics = BTreeMap::new();
        metrics.insert("ttft".to_string(), metric("ms", 1200, 20.0));
        metrics.insert("itl".to_string(), metric("ms", 18_000, 5.0));
        metrics.insert("e2e".to_string(), metric("ms", 1200, 100.0));
        metrics.insert("output_tokens".to_string(), metric("tokens", 1200, 16.0));
        let mut errors = BTreeMap::new();
        errors.insert("http_5xx:503".to_string(), 3);
        errors.insert("timeout_first_token".to_string(), 1);
        RunSummary {
            stampede_version: "9.9.9".into(),
            run_id: "sample-20260101T000000Z".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: None,
            target: TargetInfo {
                url: "http://127.0.0.1:8000".into(),
                model: "m".into(),
                api: stampede_plan::Api::Chat,
                simulator: false,
            },
            agents: vec![AgentInfo {
                id: "a0".into(),
                node: "n0".into(),
                cores: 4,
                version: "9.9.9".into(),
                clock_offset_ms: -0.25,
                clock_rtt_ms: 0.5,
            }],
            phases: vec![PhaseSummary {
                name: "steady, 20/s".into(),
                kind: "constant".into(),
                offered_rate: Some(20.0),
                users: None,
                planned_duration_s: 60.0,
                arrivals_s: 59.95,
                finished_s: 60.2,
                agents: vec!["a0".into()],
                lost_agents: vec!["a1".into()],
                requests: RequestCounts {
                    sent: 1204,
                    ok: 1200,
                    failed: 4,
                    skipped: 0,
                    expired: 0,
                    lost: 0,
                },
                errors,
                scheduled: Some(1204),
                achieved_rate: 20.08,
                request_throughput: 19.93,
                output_tokens: 19_200,
                input_tokens: 153_600,
                output_token_throughput: 318.9,
                usage_reported: 1200,
                metrics,
                breakdowns: Vec::new(),
                agent_cpu_s: 1.5,
                rejected_reports: 2,
                duplicate_reports: 0,
                stopped_early: false,
                complete: false,
                saturated_windows: BTreeMap::new(),
                reports_dropped: 0,
                records_dropped: 0,
                repeat: 0,
                cost: None,
                slo: Vec::new(),
                slo_passed: None,
                goodput: None,
                good_requests: None,
                step: None,
                drift: None,
                faults: None,
                redistributed: Vec::new(),
                start_spread_ms: None,
                server: None,
                warmup_s: 0.0,
                cooldown_s: 0.0,
            }],
            interrupted: false,
            repeat: 1,
            repeats: Vec::new(),
            stress: Vec::new(),
            slo_failed: false,
            datasets: Vec::new(),
            kubernetes: None,
            traces: Vec::new(),
        }
    }
}

//! The benchmark plan: parse → validate → run.
//!
//! A plan file is TOML. [`RawPlan`] mirrors the file exactly (unknown keys are
//! rejected by serde); [`RawPlan::validate`] turns it into a [`Plan`] whose
//! types make invalid plans unrepresentable. Every error names the file, the
//! key and the offending value, and is produced before any socket is bound.

use crate::duration::HumanDuration;
use crate::slo::Slo;
use serde::{Deserialize, Serialize};
use stampede_common::DEFAULT_TRACE_SAMPLE_RATIO;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Errors loading or validating a plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The file could not be read.
    #[error("cannot read plan {path}: {source}")]
    Io {
        /// The plan file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the plan schema.
    #[error("invalid plan {path}: {message}")]
    Parse {
        /// The plan file.
        path: PathBuf,
        /// The parser's message (it names the key, line and column).
        message: String,
    },
    /// A key holds a value the plan cannot run with.
    #[error("invalid plan {path}: `{key}` = {value}: {reason}")]
    Invalid {
        /// The plan file.
        path: PathBuf,
        /// Dotted path of the key, e.g. `phase[1].rate`.
        key: String,
        /// The offending value as written (or `(missing)`).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The plan exactly as written in the file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlan {
    /// Run-wide settings.
    #[serde(default)]
    pub run: RawRun,
    /// Where the agents come from.
    #[serde(default)]
    pub agents: RawAgents,
    /// The inference endpoint under test.
    pub target: Option<RawTarget>,
    /// What each request asks for.
    #[serde(default)]
    pub request: RawRequest,
    /// Load phases, run in order.
    #[serde(default)]
    pub phase: Vec<RawPhase>,
    /// Request mix (replaces `request.prompt_tokens` / `request.max_tokens`).
    #[serde(default)]
    pub workload: Vec<crate::workload::RawWorkloadEntry>,
    /// What the serving hardware costs (optional): adds cost per token to reports.
    pub cost: Option<RawCost>,
    /// Scrape the target's Prometheus metrics during each phase (optional).
    pub server_metrics: Option<RawServerMetrics>,
    /// Deploy agents and record node and gateway details through the
    /// Kubernetes API (optional).
    pub kubernetes: Option<crate::kubernetes::RawKubernetes>,
    /// Stand up the serving stack before the phases and tear it down after
    /// (optional): see docs/serving.md.
    pub serving: Option<crate::serving::RawServing>,
}

/// `[server_metrics]`: the serving stack's own metrics, scraped per phase.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawServerMetrics {
    /// `/metrics` URLs to scrape. Default with the built-in simulator: its own.
    pub urls: Option<Vec<String>>,
    /// Time between scrapes. Default "1s".
    pub interval: Option<HumanDuration>,
    /// Keep the metric families whose names start with one of these. Default `["vllm:"]`.
    pub families: Option<Vec<String>>,
    /// Timeout of one scrape. Default "2s".
    pub timeout: Option<HumanDuration>,
}

/// `[cost]`: the price of the hardware serving the target.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCost {
    /// Price of one GPU for one hour, in `currency`. Required.
    pub gpu_hour_price: Option<f64>,
    /// Number of GPUs serving the target. Required.
    pub gpus: Option<u32>,
    /// Currency label shown in reports. Default "USD".
    pub currency: Option<String>,
}

/// `[run]`: run-wide settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRun {
    /// Name of the run; used in the results directory name. Default "run".
    pub name: Option<String>,
    /// Length of one reporting window. Default "1s".
    pub window: Option<HumanDuration>,
    /// Directory under which run directories are created. Default "results".
    pub output_dir: Option<PathBuf>,
    /// Seed of every random choice (arrival spacing); same seed, same run. Default 0.
    pub seed: Option<u64>,
    /// Run all phases this many times in a row; reports give each metric's
    /// mean, standard deviation and 95% confidence interval across repeats.
    /// Default 1.
    pub repeat: Option<u32>,
    /// Service-level objectives of every phase, e.g. `["ttft.p99 < 500ms",
    /// "error_rate < 1%"]`; a phase's own `slo` replaces one on the same statistic.
    pub slo: Option<Vec<String>>,
    /// OpenTelemetry traces of the run (off unless `enabled = true`).
    pub tracing: Option<RawTracing>,
}

/// `[run.tracing]`: OpenTelemetry traces of the run, exported over OTLP/gRPC
/// to the collector the standard `OTEL_EXPORTER_OTLP_ENDPOINT` names.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTracing {
    /// Export spans of the run, its phases and sampled requests. Default false.
    pub enabled: Option<bool>,
    /// Fraction of requests traced, in [0, 1]. Default 0.01.
    pub sample_ratio: Option<f64>,
}

/// `[agents]`: local agents started by the controller, or remote ones that dial in.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgents {
    /// Number of agents the controller starts itself (embedded default). Default 1
    /// when `remote` is not given.
    pub local: Option<u32>,
    /// Number of remote agents to wait for (they run `agent --controller URL`).
    pub remote: Option<u32>,
    /// gRPC listen address of the controller. Default "127.0.0.1:7600" for
    /// remote agents, an ephemeral loopback port for local ones.
    pub listen: Option<String>,
    /// How long to wait for the agents to join. Default "60s".
    pub join_timeout: Option<HumanDuration>,
    /// Upper bound on requests in flight per agent. Default 10000.
    pub max_in_flight: Option<u32>,
    /// How long an agent whose connection dropped mid-phase keeps its share
    /// while it reconnects, before it is declared lost. Default "30s".
    pub reconnect_grace: Option<HumanDuration>,
    /// mTLS for the agents' gRPC endpoint: `{ ca, cert, key }` PEM files
    /// (relative to the plan file). Remote agents only.
    pub tls: Option<crate::security::RawTls>,
    /// Environment variable holding the join token agents must present.
    pub join_token_env: Option<String>,
    /// File holding the join token agents must present (relative to the plan file).
    pub join_token_file: Option<PathBuf>,
    /// Serve plaintext gRPC on a non-loopback address. Default false.
    pub allow_plaintext: Option<bool>,
    /// How a phase is split between agents: "cores" (in proportion to the
    /// cores each agent reports, the default) or "equal".
    pub shard_weights: Option<String>,
}

/// `[target]`: the endpoint under test — a URL, or the built-in simulator.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    /// Base URL of an OpenAI-compatible server, e.g. "http://127.0.0.1:8000".
    pub url: Option<String>,
    /// Model name sent in requests. Required with `url`; the simulator's
    /// default model otherwise.
    pub model: Option<String>,
    /// API to call: "chat" (default) or "completions".
    pub api: Option<String>,
    /// Start the built-in simulator and benchmark it.
    pub simulator: Option<RawSimulator>,
    /// Extra HTTP headers for every request (not for secrets: use `api_key_env`).
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    /// Name of the environment variable (on each agent) holding the API key,
    /// sent as `Authorization: Bearer <key>`.
    pub api_key_env: Option<String>,
    /// Use HTTP/2 (prior knowledge for http://, ALPN for https://). Default false.
    pub http2: Option<bool>,
    /// PEM file with extra trusted root certificates for an https target
    /// (relative to the plan file).
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. Default false.
    pub insecure_tls: Option<bool>,
    /// The model's HF `tokenizer.json` (relative to the plan file): prompts
    /// are built from words that are one token each for it.
    pub tokenizer: Option<PathBuf>,
}

/// `[target.simulator]`: the built-in simulator's behaviour.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSimulator {
    /// Time to first token. Default "20ms".
    pub ttft: Option<HumanDuration>,
    /// Inter-token latency. Default "5ms".
    pub itl: Option<HumanDuration>,
    /// Output tokens per response (capped by the request's `max_tokens`). Default 64.
    pub output_tokens: Option<u32>,
    /// Listen address. Default an ephemeral loopback port.
    pub listen: Option<String>,
    /// `[target.simulator.engine]`: model a continuous-batching server with a
    /// finite capacity (see docs/simulator.md) instead of a fixed timeline.
    pub engine: Option<SimEngine>,
}

/// `[target.simulator.engine]`: the simulator's batching engine; unset keys
/// keep the simulator's defaults (docs/simulator.md).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SimEngine {
    /// Most requests in the running batch.
    pub max_num_seqs: Option<u32>,
    /// Most requests waiting for a slot (then refused).
    pub max_waiting: Option<u32>,
    /// Fixed cost of one engine step.
    pub step_base: Option<HumanDuration>,
    /// Added to a step per running request.
    pub step_per_seq: Option<HumanDuration>,
    /// Added to a step per prefilled prompt token.
    pub prefill_per_token: Option<HumanDuration>,
    /// Tokens per KV-cache block.
    pub block_size: Option<u32>,
    /// KV-cache capacity in blocks.
    pub num_blocks: Option<u32>,
    /// Prefix caching on/off.
    pub prefix_caching: Option<bool>,
}

/// `[request]`: what each request asks for.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRequest {
    /// Prompt length in tokens (synthetic prompt of common one-token words). Default 128.
    pub prompt_tokens: Option<u32>,
    /// `max_tokens` sent with every request. Default 64.
    pub max_tokens: Option<u32>,
    /// Stream the response (SSE). Default true.
    pub stream: Option<bool>,
    /// Whole-request timeout from the intended send time. Default "60s".
    pub timeout: Option<HumanDuration>,
    /// Time allowed to the first token from the intended send time. Default: `timeout`.
    pub first_token_timeout: Option<HumanDuration>,
    /// TCP/TLS connect timeout. Default "10s".
    pub connect_timeout: Option<HumanDuration>,
}

/// `[[phase]]`: one load phase.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPhase {
    /// Name shown in reports. Default: the kind and the phase's position.
    pub name: Option<String>,
    /// "baseline" (one user, closed loop), "constant" (open loop at `rate`),
    /// "ramp" (open loop from `from` to `to`) or "concurrency" (closed loop
    /// with `users`).
    pub kind: Option<String>,
    /// How long arrivals continue.
    pub duration: Option<HumanDuration>,
    /// Arrivals per second across all agents (kind "constant").
    pub rate: Option<f64>,
    /// Concurrent users across all agents (kind "concurrency").
    pub users: Option<u32>,
    /// Rate at the start of a ramp, requests per second (kind "ramp").
    pub from: Option<f64>,
    /// Rate at the end of a ramp, requests per second (kind "ramp").
    pub to: Option<f64>,
    /// Ramp in this many equal steps instead of linearly (kind "ramp").
    pub steps: Option<u32>,
    /// Spacing of open-loop arrivals: "uniform" (default), "poisson" or "gamma".
    pub arrival: Option<String>,
    /// Gamma shape for `arrival = "gamma"`: 1 is Poisson, below 1 burstier,
    /// above 1 more regular.
    pub burstiness: Option<f64>,
    /// Stop after this many requests in total (optional bound).
    pub requests: Option<u64>,
    /// Grace period for in-flight requests after the phase ends. Default: the
    /// request timeout.
    pub drain: Option<HumanDuration>,
    /// Service-level objectives of this phase (added to `run.slo`).
    pub slo: Option<Vec<String>>,
    /// Leave this much of the start out of the phase's results (whole
    /// windows; they stay in the time series).
    pub warmup: Option<HumanDuration>,
    /// Leave this much of the end out of the phase's results, and the drain.
    pub cooldown: Option<HumanDuration>,
    /// Length of each step (kind "stress").
    pub step_duration: Option<HumanDuration>,
    /// Stress search: "adaptive" (multiply by `factor` until a step fails,
    /// then bisect) or "linear" (add `step` each time). Default "adaptive".
    pub search: Option<String>,
    /// Growth factor of an adaptive stress search. Default 2.
    pub factor: Option<f64>,
    /// Rate added per step of a linear stress search (requests per second).
    pub step: Option<f64>,
    /// An adaptive search stops bisecting when the bracket is this narrow,
    /// relative to the passing rate. Default 0.05.
    pub precision: Option<f64>,
    /// Most steps a stress phase runs. Default 12.
    pub max_steps: Option<u32>,
    /// A stress step fails above this error rate. Default 0.01.
    pub max_error_rate: Option<f64>,
    /// A stress step fails when achieved/offered falls below this. Default 0.95.
    pub min_achieved: Option<f64>,
    /// A stress step fails when more than this share of agent windows were
    /// saturated (the load generator could not keep up). Default 0.25.
    pub max_saturated: Option<f64>,
    /// Windows compared at each end of a soak for its drift report. Default:
    /// a tenth of the phase's windows (at least 1).
    pub drift_windows: Option<u32>,
    /// A soak fails its objectives when TTFT or E2E p99 grows by more than
    /// this fraction from its first to its last windows (e.g. 0.2).
    pub max_drift: Option<f64>,
    /// The request trace to replay (kind "replay").
    pub trace: Option<crate::trace::RawTrace>,
    /// Fault actions fired at offsets into the phase (`[[phase.faults]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<crate::fault::RawFault>,
}

/// A validated plan, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Run name.
    pub name: String,
    /// Window length.
    pub window: Duration,
    /// Results parent directory.
    pub output_dir: PathBuf,
    /// Seed of random choices.
    pub seed: u64,
    /// Times the phases run (≥ 1).
    pub repeat: u32,
    /// Agent placement.
    pub agents: Agents,
    /// Endpoint under test.
    pub target: Target,
    /// Request template.
    pub request: RequestSpec,
    /// Phases in order.
    pub phases: Vec<Phase>,
    /// Request mix; empty: every request uses `request.prompt_tokens` / `max_tokens`.
    pub workload: Vec<crate::workload::WorkloadEntry>,
    /// Hardware cost, when given.
    pub cost: Option<Cost>,
    /// Server-metrics scraping, when enabled.
    pub server_metrics: Option<ServerMetrics>,
    /// Kubernetes settings, when the plan has a `[kubernetes]` table.
    pub kubernetes: Option<crate::kubernetes::Kubernetes>,
    /// OpenTelemetry tracing, when enabled.
    pub tracing: Option<Tracing>,
    /// The serving stack to deploy (or inspect), when the plan has `[serving]`.
    pub serving: Option<crate::serving::ServingSpec>,
}

/// Validated `[run.tracing]` of a traced run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tracing {
    /// Fraction of requests traced, in [0, 1].
    pub sample_ratio: f64,
}

/// Validated `[server_metrics]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerMetrics {
    /// Pages to scrape; empty: the built-in simulator's (resolved at run time).
    pub urls: Vec<String>,
    /// Time between scrapes.
    pub interval: Duration,
    /// Family-name prefixes kept (empty: all).
    pub families: Vec<String>,
    /// Timeout of one scrape.
    pub timeout: Duration,
}

/// Validated hardware cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Cost {
    /// Price of one GPU-hour.
    pub gpu_hour_price: f64,
    /// GPUs serving the target.
    pub gpus: u32,
    /// Currency label.
    pub currency: String,
}

/// Where the agents come from.
#[derive(Debug, Clone, PartialEq)]
pub struct Agents {
    /// Local or remote.
    pub mode: AgentMode,
    /// Number of agents.
    pub count: u32,
    /// Listen address; port 0 means ephemeral.
    pub listen: SocketAddr,
    /// How long to wait for agents to join.
    pub join_timeout: Duration,
    /// Per-agent in-flight bound.
    pub max_in_flight: u32,
    /// Reconnect grace period.
    pub reconnect_grace: Duration,
    /// mTLS, join token and plaintext policy of the agents' endpoint.
    pub security: crate::security::Security,
    /// How a phase is split between agents.
    pub shard_weights: ShardWeights,
}

/// How a phase is split between agents (see [`stampede_common::shard`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardWeights {
    /// In proportion to the cores each agent reports when it joins.
    Cores,
    /// The same share for every agent.
    Equal,
}

/// Local agents (started by the controller) or remote ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentMode {
    /// Started in-process by the controller, talking gRPC over loopback.
    Local,
    /// Separate `agent` processes that dial the controller.
    Remote,
}

/// The endpoint under test.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Where requests go.
    pub endpoint: Endpoint,
    /// Model name.
    pub model: String,
    /// API called.
    pub api: Api,
    /// Extra headers.
    pub headers: std::collections::BTreeMap<String, String>,
    /// Environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// HTTP/2.
    pub http2: bool,
    /// Extra trusted roots (PEM bytes).
    pub ca_pem: Option<Vec<u8>>,
    /// Accept any certificate.
    pub insecure_tls: bool,
    /// The model's `tokenizer.json`, resolved against the plan's directory.
    pub tokenizer: Option<PathBuf>,
}

/// A URL, or the built-in simulator.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    /// An existing server.
    Url(String),
    /// The built-in simulator, started by the controller.
    Simulator(SimulatorSpec),
}

/// Built-in simulator settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatorSpec {
    /// Time to first token.
    pub ttft: Duration,
    /// Inter-token latency.
    pub itl: Duration,
    /// Output tokens per response.
    pub output_tokens: u32,
    /// Listen address.
    pub listen: SocketAddr,
    /// Batching engine, when the plan enables it.
    pub engine: Option<SimEngine>,
}

/// OpenAI-compatible API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Completions,
}

/// The request template.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSpec {
    /// Prompt length in tokens.
    pub prompt_tokens: u32,
    /// `max_tokens`.
    pub max_tokens: u32,
    /// Streamed response.
    pub stream: bool,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// First-token timeout (≤ `timeout`).
    pub first_token_timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
}

impl Plan {
    /// The request mix agents send in `phase`: `[[workload]]`, or without it
    /// one entry of `[request]`'s lengths ([`crate::workload::from_request`]);
    /// a replayed trace's records give the lengths, and ask for `ignore_eos`
    /// so the outputs are as long as recorded.
    pub fn mix_for(&self, phase: &Phase) -> std::borrow::Cow<'_, [crate::workload::WorkloadEntry]> {
        if self.workload.is_empty() {
            let replay = matches!(phase.kind, PhaseKind::Replay { .. });
            vec![crate::workload::from_request(&self.request, replay)].into()
        } else {
            self.workload.as_slice().into()
        }
    }
}

/// A validated phase.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// Name.
    pub name: String,
    /// Kind and its load.
    pub kind: PhaseKind,
    /// Arrival duration.
    pub duration: Duration,
    /// Total request bound (across agents).
    pub max_requests: Option<u64>,
    /// Grace period for in-flight requests.
    pub drain: Duration,
    /// Service-level objectives (run-wide ones merged with the phase's own).
    pub slo: Vec<Slo>,
    /// Start left out of the results.
    pub warmup: Duration,
    /// End left out of the results (with the drain), when non-zero.
    pub cooldown: Duration,
    /// The trace of a "replay" phase (`None` when the plan was checked
    /// without reading files).
    pub trace: Option<std::sync::Arc<crate::trace::Trace>>,
    /// Fault actions fired at offsets into the phase, in time order.
    pub faults: Vec<crate::fault::FaultAction>,
}

impl Phase {
    /// Windows `first..end` whose results count (after warm-up, before cool-down).
    pub fn measured_windows(&self, window: Duration) -> (u32, u32) {
        let w = window.as_nanos().max(1);
        let first = u32::try_from(self.warmup.as_nanos().div_ceil(w)).unwrap_or(u32::MAX);
        let end = if self.cooldown.is_zero() {
            u32::MAX
        } else {
            u32::try_from(self.duration.saturating_sub(self.cooldown).as_nanos() / w)
                .unwrap_or(u32::MAX)
        };
        (first, end)
    }
}

/// Kind of phase with its parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PhaseKind {
    /// One user, closed loop: the unloaded latency reference.
    Baseline,
    /// Open loop at a constant cluster-wide rate (requests/s).
    Constant {
        /// Arrivals per second.
        rate: f64,
        /// Spacing of arrivals.
        arrival: Arrival,
    },
    /// Open loop with the rate rising (or falling) from `from` to `to`.
    Ramp {
        /// Rate at the start.
        from: f64,
        /// Rate at the end.
        to: f64,
        /// Equal steps instead of a linear change.
        steps: Option<u32>,
        /// Spacing of arrivals.
        arrival: Arrival,
    },
    /// Closed loop with a fixed number of users.
    Concurrency {
        /// Users across all agents.
        users: u32,
    },
    /// Open-loop steps of rising rate until one fails its objectives; the
    /// phase's duration is each step's. Reports the knee.
    Stress(Stress),
    /// A long constant-rate phase with a drift report.
    Soak {
        /// Arrivals per second.
        rate: f64,
        /// Spacing of arrivals.
        arrival: Arrival,
        /// Windows compared at each end (`None`: a tenth of them).
        drift_windows: Option<u32>,
        /// Largest allowed relative growth of TTFT/E2E p99.
        max_drift: Option<f64>,
    },
    /// Open loop at the recorded times of a trace (`Phase::trace`).
    Replay {
        /// Replay this many times faster than recorded.
        time_scale: f64,
    },
}

/// Parameters of a stress search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stress {
    /// First step's rate.
    pub from: f64,
    /// Highest rate tried.
    pub to: f64,
    /// How the next rate is chosen.
    pub search: Search,
    /// Most steps.
    pub max_steps: u32,
    /// Spacing of arrivals.
    pub arrival: Arrival,
    /// A step fails above this error rate.
    pub max_error_rate: f64,
    /// A step fails when achieved/offered falls below this.
    pub min_achieved: f64,
    /// A step fails when more than this share of agent windows were saturated.
    pub max_saturated: f64,
}

/// How a stress phase picks its next rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Search {
    /// Multiply by `factor` until a step fails, then bisect until the bracket
    /// is within `precision` of the passing rate.
    Adaptive {
        /// Growth factor (> 1).
        factor: f64,
        /// Relative width at which bisection stops.
        precision: f64,
    },
    /// Add `step` each time until a step fails.
    Linear {
        /// Rate increment.
        step: f64,
    },
}

/// Spacing of open-loop arrivals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrival {
    /// Evenly spaced.
    Uniform,
    /// Poisson process (exponential gaps).
    Poisson,
    /// Gamma-distributed gaps with this shape.
    Gamma {
        /// Shape: 1 is Poisson, < 1 burstier, > 1 more regular.
        burstiness: f64,
    },
}

impl PhaseKind {
    /// The kind's name as written in plans.
    pub fn name(&self) -> &'static str {
        match self {
            PhaseKind::Baseline => "baseline",
            PhaseKind::Constant { .. } => "constant",
            PhaseKind::Ramp { .. } => "ramp",
            PhaseKind::Concurrency { .. } => "concurrency",
            PhaseKind::Stress(_) => "stress",
            PhaseKind::Soak { .. } => "soak",
            PhaseKind::Replay { .. } => "replay",
        }
    }

    /// Offered rate `t` into a phase of length `duration` (open-loop kinds).
    pub fn offered_rate_at(&self, t: Duration, duration: Duration) -> Option<f64> {
        let frac = (t.as_secs_f64() / duration.as_secs_f64().max(1e-9)).clamp(0.0, 1.0);
        match *self {
            PhaseKind::Constant { rate, .. } | PhaseKind::Soak { rate, .. } => Some(rate),
            PhaseKind::Ramp {
                from,
                to,
                steps: None,
                ..
            } => Some(from + (to - from) * frac),
            PhaseKind::Ramp {
                from,
                to,
                steps: Some(n),
                ..
            } => {
                let j = ((frac * f64::from(n)).floor() as u32).min(n - 1);
                Some(if n == 1 {
                    to
                } else {
                    from + (to - from) * f64::from(j) / f64::from(n - 1)
                })
            }
            _ => None,
        }
    }

    /// Mean offered rate for open-loop kinds (a ramp's average).
    pub fn offered_rate(&self) -> Option<f64> {
        match self {
            PhaseKind::Constant { rate, .. } | PhaseKind::Soak { rate, .. } => Some(*rate),
            PhaseKind::Ramp { from, to, .. } => Some((from + to) / 2.0),
            _ => None,
        }
    }
}

impl Phase {
    /// One step of a stress phase: the same phase at a constant `rate`.
    pub fn stress_step(&self, rate: f64) -> Phase {
        let arrival = match self.kind {
            PhaseKind::Stress(s) => s.arrival,
            _ => Arrival::Uniform,
        };
        Phase {
            kind: PhaseKind::Constant { rate, arrival },
            ..self.clone()
        }
    }
}

/// Default model name of the built-in simulator.
pub const SIMULATOR_MODEL: &str = "stampede-sim";

/// Largest `run.repeat`.
const MAX_REPEAT: u32 = 1000;

/// Largest number of agents a plan may ask for.
const MAX_AGENTS: u32 = 10_000;

/// Read, parse and validate a plan file.
pub fn load(path: &Path) -> Result<Plan, PlanError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlanError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)?.validate(path)
}

/// Read, parse and validate a plan file without reading the dataset and
/// trace files it names: for the plan copy in a past run's directory, which
/// sits away from them.
pub fn load_without_files(path: &Path) -> Result<Plan, PlanError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlanError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)?.validate_without_files(path)
}

/// Parse plan text read from `path`: `path` is used in messages and to find the fragments
/// the plan includes (see [`crate::include`]).
pub fn parse(text: &str, path: &Path) -> Result<RawPlan, PlanError> {
    let parse_error = |e: &dyn std::fmt::Display| PlanError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    };
    if let Ok(table) = text.parse::<toml::Table>()
        && let Some(merged) = crate::include::resolve_table(table, path)?
    {
        return merged.try_into().map_err(|e| parse_error(&e));
    }
    toml::from_str(text).map_err(|e| parse_error(&e))
}

struct Ctx<'a> {
    path: &'a Path,
    /// Read the dataset and trace files the plan names.
    files: bool,
}

impl Ctx<'_> {
    fn invalid(
        &self,
        key: impl Into<String>,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> PlanError {
        PlanError::Invalid {
            path: self.path.to_path_buf(),
            key: key.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    fn addr(&self, key: &str, text: &str) -> Result<SocketAddr, PlanError> {
        text.parse().map_err(|e| {
            self.invalid(
                key,
                format!("{text:?}"),
                format!("not an IP:port address ({e})"),
            )
        })
    }

    fn positive(&self, key: &str, d: Duration) -> Result<Duration, PlanError> {
        if d.is_zero() {
            return Err(self.invalid(key, "\"0s\"", "must be longer than zero"));
        }
        Ok(d)
    }
}

const MISSING: &str = "(missing)";

impl RawPlan {
    /// Check every key, read the dataset and trace files, and build the typed plan.
    pub fn validate(&self, path: &Path) -> Result<Plan, PlanError> {
        self.validate_with(Ctx { path, files: true })
    }

    /// Check every key without reading dataset and trace files (their
    /// records stay unloaded): see [`load_without_files`].
    pub fn validate_without_files(&self, path: &Path) -> Result<Plan, PlanError> {
        self.validate_with(Ctx { path, files: false })
    }

    fn validate_with(&self, cx: Ctx<'_>) -> Result<Plan, PlanError> {
        let name = self.run.name.clone().unwrap_or_else(|| "run".to_string());
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(cx.invalid(
                "run.name",
                format!("{name:?}"),
                "use letters, digits, '-', '_' and '.' only (it names the results directory)",
            ));
        }
        let window = cx.positive(
            "run.window",
            self.run
                .window
                .map_or(Duration::from_secs(1), HumanDuration::get),
        )?;
        if window < Duration::from_millis(10) {
            return Err(cx.invalid("run.window", format!("{window:?}"), "must be at least 10ms"));
        }
        let output_dir = self
            .run
            .output_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("results"));

        let repeat = self.run.repeat.unwrap_or(1);
        if !(1..=MAX_REPEAT).contains(&repeat) {
            return Err(cx.invalid(
                "run.repeat",
                repeat,
                format!("must be between 1 and {MAX_REPEAT}"),
            ));
        }

        let kubernetes = self
            .kubernetes
            .as_ref()
            .map(|k| crate::kubernetes::validate(cx.path, k))
            .transpose()?;
        let agents = self.validate_agents(&cx, kubernetes.as_ref().is_some_and(|k| k.deploy))?;
        let serving = self
            .serving
            .as_ref()
            .map(|s| {
                let ns = kubernetes
                    .as_ref()
                    .map_or(crate::kubernetes::DEFAULT_NAMESPACE, |k| {
                        k.namespace.as_str()
                    });
                crate::serving::validate(cx.path, s, ns)
            })
            .transpose()?;
        let target = self.validate_target(&cx, serving.as_ref())?;
        let request = self.validate_request(&cx)?;

        if self.phase.is_empty() {
            return Err(cx.invalid("phase", MISSING, "a plan needs at least one [[phase]]"));
        }
        let run_slo = parse_slos(&cx, "run.slo", self.run.slo.as_deref())?;
        let mut phases = self
            .phase
            .iter()
            .enumerate()
            .map(|(i, p)| p.validate(&cx, i, &request, &run_slo))
            .collect::<Result<Vec<_>, _>>()?;
        let simulator = matches!(target.endpoint, Endpoint::Simulator(_));
        let standalone = serving.as_ref().and_then(|s| match &s.method {
            crate::serving::Method::Standalone(st) => Some(st.name.clone()),
            _ => None,
        });
        let cluster = crate::fault::ClusterDefaults {
            cluster: serving.is_some() || kubernetes.is_some(),
            namespace: serving
                .as_ref()
                .map(|s| s.namespace.clone())
                .or_else(|| kubernetes.as_ref().map(|k| k.namespace.clone())),
            deployment: standalone,
        };
        for (i, (raw, p)) in self.phase.iter().zip(&mut phases).enumerate() {
            p.faults = crate::fault::validate(
                &raw.faults,
                i,
                p.kind.name(),
                p.duration,
                simulator,
                &cluster,
            )
            .map_err(|(key, value, reason)| cx.invalid(key, value, reason))?;
        }

        let workload = self
            .workload
            .iter()
            .enumerate()
            .map(|(i, w)| {
                w.validate(i)
                    .map_err(|(key, value, reason)| cx.invalid(key, value, reason))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let workload = self.load_inputs(&cx, workload, &phases)?;
        if !workload.is_empty() {
            for (key, set) in [
                (
                    "request.prompt_tokens",
                    self.request.prompt_tokens.is_some(),
                ),
                ("request.max_tokens", self.request.max_tokens.is_some()),
            ] {
                if set {
                    return Err(cx.invalid(
                        key,
                        "(set)",
                        "a [[workload]] mix sets request lengths; remove this key or the mix",
                    ));
                }
            }
        }
        let cost = self
            .cost
            .as_ref()
            .map(|c| validate_cost(&cx, c))
            .transpose()?;
        let server_metrics = self
            .server_metrics
            .as_ref()
            .map(|m| validate_server_metrics(&cx, m, &target))
            .transpose()?;

        Ok(Plan {
            workload,
            name,
            window,
            output_dir,
            seed: self.run.seed.unwrap_or(0),
            repeat,
            agents,
            target,
            request,
            phases,
            cost,
            server_metrics,
            kubernetes,
            tracing: self.validate_tracing(&cx)?,
            serving,
        })
    }

    fn validate_tracing(&self, cx: &Ctx<'_>) -> Result<Option<Tracing>, PlanError> {
        let Some(t) = &self.run.tracing else {
            return Ok(None);
        };
        let sample_ratio = t.sample_ratio.unwrap_or(DEFAULT_TRACE_SAMPLE_RATIO);
        if !(0.0..=1.0).contains(&sample_ratio) {
            return Err(cx.invalid(
                "run.tracing.sample_ratio",
                sample_ratio,
                "must be a fraction between 0 and 1 (e.g. 0.01 traces one request in a hundred)",
            ));
        }
        Ok(t.enabled
            .unwrap_or(false)
            .then_some(Tracing { sample_ratio }))
    }

    /// `k8s_deploy`: `kubernetes.deploy = true`, so the agents are remote,
    /// `agents.remote` is the fewest eligible nodes accepted (default 1), and
    /// the controller listens on every interface by default.
    fn validate_agents(&self, cx: &Ctx<'_>, k8s_deploy: bool) -> Result<Agents, PlanError> {
        let a = &self.agents;
        if let (true, Some(n)) = (k8s_deploy, a.local) {
            return Err(cx.invalid(
                "agents.local",
                n,
                "`kubernetes.deploy = true` deploys remote agents; remove `agents.local`",
            ));
        }
        if k8s_deploy && a.tls.is_none() {
            return Err(cx.invalid(
                "agents.tls",
                MISSING,
                "`kubernetes.deploy = true` needs mTLS: deployed agents dial the controller over https with the files of `kubernetes.tls_secret`",
            ));
        }
        let (mode, count, key) = match (a.local, a.remote) {
            (None, None) if k8s_deploy => (AgentMode::Remote, 1, "agents.remote"),
            (Some(_), Some(_)) => {
                return Err(cx.invalid(
                    "agents.remote",
                    a.remote.unwrap_or_default(),
                    "give either `agents.local` or `agents.remote`, not both",
                ));
            }
            (None, Some(n)) => (AgentMode::Remote, n, "agents.remote"),
            (Some(n), None) => (AgentMode::Local, n, "agents.local"),
            (None, None) => (AgentMode::Local, 1, "agents.local"),
        };
        if count == 0 || count > MAX_AGENTS {
            return Err(cx.invalid(key, count, format!("must be between 1 and {MAX_AGENTS}")));
        }
        let default_listen = match mode {
            AgentMode::Local => "127.0.0.1:0",
            AgentMode::Remote if k8s_deploy => "0.0.0.0:7600",
            AgentMode::Remote => "127.0.0.1:7600",
        };
        let listen = cx.addr(
            "agents.listen",
            a.listen.as_deref().unwrap_or(default_listen),
        )?;
        let join_timeout = cx.positive(
            "agents.join_timeout",
            a.join_timeout
                .map_or(Duration::from_secs(60), HumanDuration::get),
        )?;
        let max_in_flight = a.max_in_flight.unwrap_or(10_000);
        if max_in_flight == 0 {
            return Err(cx.invalid("agents.max_in_flight", 0, "must be at least 1"));
        }
        let shard_weights = match a.shard_weights.as_deref() {
            None | Some("cores") => ShardWeights::Cores,
            Some("equal") => ShardWeights::Equal,
            Some(other) => {
                return Err(cx.invalid(
                    "agents.shard_weights",
                    format!("{other:?}"),
                    "must be \"cores\" or \"equal\"",
                ));
            }
        };
        Ok(Agents {
            mode,
            count,
            listen,
            join_timeout,
            max_in_flight,
            reconnect_grace: a
                .reconnect_grace
                .map_or(Duration::from_secs(30), HumanDuration::get),
            security: crate::security::validate(
                cx.path,
                crate::security::RawSecurity {
                    tls: a.tls.as_ref(),
                    join_token_env: a.join_token_env.as_deref(),
                    join_token_file: a.join_token_file.as_deref(),
                    allow_plaintext: a.allow_plaintext,
                    remote: mode == AgentMode::Remote,
                },
            )?,
            shard_weights,
        })
    }

    /// `serving`: with `[serving]`, the target defaults to the stack's URL
    /// and (standalone) model, and `[target]` may be left out.
    fn validate_target(
        &self,
        cx: &Ctx<'_>,
        serving: Option<&crate::serving::ServingSpec>,
    ) -> Result<Target, PlanError> {
        let served;
        let t = match (&self.target, serving) {
            (Some(t), _) => t,
            (None, Some(_)) => {
                served = RawTarget::default();
                &served
            }
            (None, None) => {
                return Err(cx.invalid(
                    "target",
                    MISSING,
                    "a plan needs a [target] with `url` or a [target.simulator] table",
                ));
            }
        };
        let defaulted;
        let t = match serving {
            Some(s) if t.simulator.is_none() => {
                defaulted = RawTarget {
                    url: t.url.clone().or_else(|| Some(s.base_url())),
                    model: t.model.clone().or_else(|| s.model().map(str::to_string)),
                    ..t.clone()
                };
                &defaulted
            }
            _ => t,
        };
        let api = match t.api.as_deref().unwrap_or("chat") {
            "chat" => Api::Chat,
            "completions" => Api::Completions,
            other => {
                return Err(cx.invalid(
                    "target.api",
                    format!("{other:?}"),
                    "expected \"chat\" or \"completions\"",
                ));
            }
        };
        let (endpoint, model) = match (&t.url, &t.simulator) {
            (Some(_), Some(_)) => {
                return Err(cx.invalid(
                    "target.simulator",
                    "(table)",
                    "give either `target.url` or `[target.simulator]`, not both",
                ));
            }
            (None, None) => {
                return Err(cx.invalid(
                    "target.url",
                    MISSING,
                    "give the server's base URL, or a [target.simulator] table for the built-in simulator",
                ));
            }
            (Some(url), None) => {
                let ok = (url.starts_with("http://") || url.starts_with("https://"))
                    && url.len() > "https://".len();
                if !ok {
                    return Err(cx.invalid(
                        "target.url",
                        format!("{url:?}"),
                        "expected an http:// or https:// URL",
                    ));
                }
                let Some(model) = t.model.clone() else {
                    return Err(cx.invalid("target.model", MISSING, "required with `target.url`"));
                };
                (Endpoint::Url(url.trim_end_matches('/').to_string()), model)
            }
            (None, Some(s)) => {
                let spec = SimulatorSpec {
                    ttft: s.ttft.map_or(Duration::from_millis(20), HumanDuration::get),
                    itl: s.itl.map_or(Duration::from_millis(5), HumanDuration::get),
                    output_tokens: s.output_tokens.unwrap_or(64),
                    listen: cx.addr(
                        "target.simulator.listen",
                        s.listen.as_deref().unwrap_or("127.0.0.1:0"),
                    )?,
                    engine: s.engine.clone(),
                };
                if let Some(e) = &spec.engine {
                    for (key, v) in [
                        ("max_num_seqs", e.max_num_seqs),
                        ("block_size", e.block_size),
                        ("num_blocks", e.num_blocks),
                    ] {
                        if v == Some(0) {
                            return Err(cx.invalid(
                                format!("target.simulator.engine.{key}"),
                                0,
                                "must be at least 1",
                            ));
                        }
                    }
                }
                if spec.output_tokens == 0 {
                    return Err(cx.invalid(
                        "target.simulator.output_tokens",
                        0,
                        "must be at least 1",
                    ));
                }
                let model = t
                    .model
                    .clone()
                    .unwrap_or_else(|| SIMULATOR_MODEL.to_string());
                (Endpoint::Simulator(spec), model)
            }
        };
        if model.is_empty() {
            return Err(cx.invalid("target.model", "\"\"", "must not be empty"));
        }
        let headers = t.headers.clone().unwrap_or_default();
        for (name, value) in &headers {
            let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if name.is_empty() || !name.chars().all(token) {
                return Err(cx.invalid(
                    format!("target.headers.{name}"),
                    format!("{name:?}"),
                    "not a valid HTTP header name",
                ));
            }
            if value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(cx.invalid(
                    format!("target.headers.{name}"),
                    "(value)",
                    "header values must not contain control characters",
                ));
            }
            if name.eq_ignore_ascii_case("authorization") {
                return Err(cx.invalid(format!("target.headers.{name}"), "(value)", "put credentials in the environment and name the variable in `target.api_key_env`, so they stay out of plans and results"));
            }
        }
        if let Some(var) = &t.api_key_env {
            let ok = !var.is_empty()
                && !var.starts_with(|c: char| c.is_ascii_digit())
                && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(cx.invalid(
                    "target.api_key_env",
                    format!("{var:?}"),
                    "not an environment variable name",
                ));
            }
        }
        let ca_pem = match &t.ca_file {
            None => None,
            Some(file) => {
                let shown = format!("{:?}", file.display().to_string());
                let full = cx
                    .path
                    .parent()
                    .map_or_else(|| file.clone(), |dir| dir.join(file));
                let bytes = std::fs::read(&full).map_err(|e| {
                    cx.invalid(
                        "target.ca_file",
                        &shown,
                        format!("cannot read {}: {e}", full.display()),
                    )
                })?;
                if !bytes
                    .windows(27)
                    .any(|w| w == b"-----BEGIN CERTIFICATE-----")
                {
                    return Err(cx.invalid(
                        "target.ca_file",
                        &shown,
                        "no PEM certificate in the file",
                    ));
                }
                Some(bytes)
            }
        };
        Ok(Target {
            endpoint,
            model,
            api,
            headers,
            api_key_env: t.api_key_env.clone(),
            http2: t.http2.unwrap_or(false),
            ca_pem,
            insecure_tls: t.insecure_tls.unwrap_or(false),
            tokenizer: t.tokenizer.as_ref().map(|f| {
                cx.path
                    .parent()
                    .map_or_else(|| f.clone(), |dir| dir.join(f))
            }),
        })
    }

    fn validate_request(&self, cx: &Ctx<'_>) -> Result<RequestSpec, PlanError> {
        let r = &self.request;
        let prompt_tokens = r.prompt_tokens.unwrap_or(128);
        if prompt_tokens == 0 || prompt_tokens > 1_000_000 {
            return Err(cx.invalid(
                "request.prompt_tokens",
                prompt_tokens,
                "must be between 1 and 1000000",
            ));
        }
        let max_tokens = r.max_tokens.unwrap_or(64);
        if max_tokens == 0 {
            return Err(cx.invalid("request.max_tokens", 0, "must be at least 1"));
        }
        let timeout = cx.positive(
            "request.timeout",
            r.timeout
                .map_or(Duration::from_secs(60), HumanDuration::get),
        )?;
        let first_token_timeout = cx.positive(
            "request.first_token_timeout",
            r.first_token_timeout.map_or(timeout, HumanDuration::get),
        )?;
        if first_token_timeout > timeout {
            return Err(cx.invalid(
                "request.first_token_timeout",
                format!("{first_token_timeout:?}"),
                "must not exceed request.timeout",
            ));
        }
        let connect_timeout = cx.positive(
            "request.connect_timeout",
            r.connect_timeout
                .map_or(Duration::from_secs(10), HumanDuration::get),
        )?;
        Ok(RequestSpec {
            prompt_tokens,
            max_tokens,
            stream: r.stream.unwrap_or(true),
            timeout,
            first_token_timeout,
            connect_timeout,
        })
    }
}

fn validate_server_metrics(
    cx: &Ctx<'_>,
    m: &RawServerMetrics,
    target: &Target,
) -> Result<ServerMetrics, PlanError> {
    let urls = m.urls.clone().unwrap_or_default();
    for (i, url) in urls.iter().enumerate() {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(cx.invalid(
                format!("server_metrics.urls[{i}]"),
                format!("{url:?}"),
                "expected an http:// or https:// URL of a /metrics page",
            ));
        }
    }
    if urls.is_empty() && !matches!(target.endpoint, Endpoint::Simulator(_)) {
        return Err(cx.invalid(
            "server_metrics.urls",
            MISSING,
            "list the serving pods' /metrics URLs (only the built-in simulator's is known)",
        ));
    }
    let interval = cx.positive(
        "server_metrics.interval",
        m.interval
            .map_or(Duration::from_secs(1), HumanDuration::get),
    )?;
    if interval < Duration::from_millis(100) {
        return Err(cx.invalid(
            "server_metrics.interval",
            format!("{interval:?}"),
            "must be at least 100ms",
        ));
    }
    let timeout = cx.positive(
        "server_metrics.timeout",
        m.timeout.map_or(Duration::from_secs(2), HumanDuration::get),
    )?;
    Ok(ServerMetrics {
        urls,
        interval,
        families: m
            .families
            .clone()
            .unwrap_or_else(|| vec!["vllm:".to_string()]),
        timeout,
    })
}

impl RawPhase {
    /// Check a "replay" phase's `trace` and read the file (when the context
    /// reads files).
    fn validate_replay(
        &self,
        cx: &Ctx<'_>,
        i: usize,
    ) -> Result<(PhaseKind, Option<std::sync::Arc<crate::trace::Trace>>), PlanError> {
        use crate::trace::Format;
        let key = |f: &str| format!("phase[{i}].trace{f}");
        let Some(t) = &self.trace else {
            return Err(cx.invalid(
                key(""),
                MISSING,
                "kind \"replay\" needs a trace, e.g. trace = { path = \"trace.csv\" }",
            ));
        };
        let Some(path) = &t.path else {
            return Err(cx.invalid(
                key(".path"),
                MISSING,
                "the trace file, relative to the plan file",
            ));
        };
        let format = match t.format.as_deref() {
            Some("csv") => Format::Csv,
            Some("jsonl") => Format::Jsonl,
            None if path.extension().is_some_and(|e| e == "jsonl") => Format::Jsonl,
            None => Format::Csv,
            Some(other) => {
                return Err(cx.invalid(
                    key(".format"),
                    format!("{other:?}"),
                    "expected \"csv\" or \"jsonl\"",
                ));
            }
        };
        let time_scale = t.time_scale.unwrap_or(1.0);
        if !(time_scale.is_finite() && time_scale > 0.0 && time_scale <= 1e6) {
            return Err(cx.invalid(
                key(".time_scale"),
                time_scale,
                "must be positive (2.0 replays twice as fast; at most 1000000)",
            ));
        }
        if t.max_records == Some(0) {
            return Err(cx.invalid(key(".max_records"), 0, "must be at least 1 (or left out)"));
        }
        let kind = PhaseKind::Replay { time_scale };
        if !cx.files {
            return Ok((kind, None));
        }
        let full = cx.path.parent().unwrap_or(Path::new(".")).join(path);
        let max = t
            .max_records
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let trace = crate::trace::load(&full, format, max).map_err(|e| {
            cx.invalid(
                key(".path"),
                format!("{:?}", path.display().to_string()),
                e.to_string(),
            )
        })?;
        Ok((kind, Some(std::sync::Arc::new(trace))))
    }
}

impl RawPlan {
    /// Read the workload's datasets (when the context reads files) and check
    /// that they and each replayed trace fit in an assignment.
    fn load_inputs(
        &self,
        cx: &Ctx<'_>,
        mut workload: Vec<crate::workload::WorkloadEntry>,
        phases: &[Phase],
    ) -> Result<Vec<crate::workload::WorkloadEntry>, PlanError> {
        if !cx.files {
            return Ok(workload);
        }
        let dir = cx.path.parent().unwrap_or(Path::new("."));
        let seed = self.run.seed.unwrap_or(0);
        for (i, entry) in workload.iter_mut().enumerate() {
            crate::workload::load_dataset(entry, i, dir, seed)
                .map_err(|(key, value, reason)| cx.invalid(key, value, reason))?;
        }
        crate::workload::check_wire_size(&workload, 0)
            .map_err(|(key, value, reason)| cx.invalid(key, value, reason))?;
        for (i, p) in phases.iter().enumerate() {
            if let (PhaseKind::Replay { time_scale }, Some(trace)) = (p.kind, &p.trace) {
                use prost::Message;
                let len = trace.to_proto(time_scale).encoded_len();
                let budget = stampede_common::MAX_MESSAGE_BYTES
                    .saturating_sub(crate::workload::ASSIGNMENT_RESERVE);
                if len > budget {
                    return Err(cx.invalid(
                        format!("phase[{i}].trace.max_records"),
                        trace.records.len(),
                        format!(
                            "the {} records of {} take {:.1} MiB on the wire, over the {} MiB message limit (less {} MiB for the rest of the assignment); set max_records to at most about {}",
                            trace.records.len(),
                            trace.path.display(),
                            len as f64 / 1048576.0,
                            stampede_common::MAX_MESSAGE_BYTES / 1048576,
                            crate::workload::ASSIGNMENT_RESERVE / 1048576,
                            budget / (len / trace.records.len().max(1)).max(1),
                        ),
                    ));
                }
                crate::workload::check_wire_size(&workload, len)
                    .map_err(|(key, value, reason)| cx.invalid(key, value, reason))?;
            }
        }
        Ok(workload)
    }
}

fn validate_cost(cx: &Ctx<'_>, c: &RawCost) -> Result<Cost, PlanError> {
    let Some(gpu_hour_price) = c.gpu_hour_price else {
        return Err(cx.invalid(
            "cost.gpu_hour_price",
            MISSING,
            "the price of one GPU-hour, e.g. 2.5",
        ));
    };
    if !gpu_hour_price.is_finite() || gpu_hour_price <= 0.0 {
        return Err(cx.invalid(
            "cost.gpu_hour_price",
            gpu_hour_price,
            "must be a positive number",
        ));
    }
    let Some(gpus) = c.gpus else {
        return Err(cx.invalid(
            "cost.gpus",
            MISSING,
            "the number of GPUs serving the target",
        ));
    };
    if gpus == 0 {
        return Err(cx.invalid("cost.gpus", 0, "must be at least 1"));
    }
    let currency = c.currency.clone().unwrap_or_else(|| "USD".to_string());
    if currency.is_empty()
        || currency.len() > 8
        || !currency.chars().all(|ch| ch.is_ascii_alphanumeric())
    {
        return Err(cx.invalid(
            "cost.currency",
            format!("{currency:?}"),
            "1 to 8 letters or digits, e.g. \"USD\"",
        ));
    }
    Ok(Cost {
        gpu_hour_price,
        gpus,
        currency,
    })
}

/// Parse a list of objectives at `key`.
fn parse_slos(cx: &Ctx<'_>, key: &str, list: Option<&[String]>) -> Result<Vec<Slo>, PlanError> {
    list.unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(j, text)| {
            Slo::parse(text)
                .map_err(|e| cx.invalid(format!("{key}[{j}]"), format!("{text:?}"), e.0))
        })
        .collect()
}

const KINDS: &str = "expected \"baseline\", \"constant\", \"ramp\", \"concurrency\", \"stress\", \"soak\" or \"replay\"";

impl RawPhase {
    fn validate(
        &self,
        cx: &Ctx<'_>,
        i: usize,
        request: &RequestSpec,
        run_slo: &[Slo],
    ) -> Result<Phase, PlanError> {
        let key = |field: &str| format!("phase[{i}].{field}");
        let Some(kind_name) = self.kind.as_deref() else {
            return Err(cx.invalid(key("kind"), MISSING, KINDS));
        };
        let unused = |field: &str, present: bool| -> Result<(), PlanError> {
            if present {
                Err(cx.invalid(
                    key(field),
                    "(set)",
                    format!("does not apply to kind {kind_name:?}"),
                ))
            } else {
                Ok(())
            }
        };
        // Keys that belong to one kind only, checked once for all.
        let only = |field: &str, present: bool, kinds: &[&str]| -> Result<(), PlanError> {
            unused(field, present && !kinds.contains(&kind_name))
        };
        let mut trace = None;
        only("trace", self.trace.is_some(), &["replay"])?;
        let open_loop = ["constant", "ramp", "stress", "soak"];
        only("arrival", self.arrival.is_some(), &open_loop)?;
        only("burstiness", self.burstiness.is_some(), &open_loop)?;
        only("rate", self.rate.is_some(), &["constant", "soak"])?;
        only("users", self.users.is_some(), &["concurrency"])?;
        only("from", self.from.is_some(), &["ramp", "stress"])?;
        only("to", self.to.is_some(), &["ramp", "stress"])?;
        only("steps", self.steps.is_some(), &["ramp"])?;
        for (field, present) in [
            ("step_duration", self.step_duration.is_some()),
            ("search", self.search.is_some()),
            ("factor", self.factor.is_some()),
            ("step", self.step.is_some()),
            ("precision", self.precision.is_some()),
            ("max_steps", self.max_steps.is_some()),
            ("max_error_rate", self.max_error_rate.is_some()),
            ("min_achieved", self.min_achieved.is_some()),
            ("max_saturated", self.max_saturated.is_some()),
        ] {
            only(field, present, &["stress"])?;
        }
        only("drift_windows", self.drift_windows.is_some(), &["soak"])?;
        only("max_drift", self.max_drift.is_some(), &["soak"])?;
        only(
            "duration",
            self.duration.is_some(),
            &[
                "baseline",
                "constant",
                "ramp",
                "concurrency",
                "soak",
                "replay",
            ],
        )?;
        let need_rate = |what: &str| -> Result<f64, PlanError> {
            let Some(rate) = self.rate else {
                return Err(cx.invalid(
                    key("rate"),
                    MISSING,
                    format!("kind {what:?} needs a rate in requests per second"),
                ));
            };
            check_rate(cx, &key("rate"), rate, false)?;
            Ok(rate)
        };
        let kind = match kind_name {
            "baseline" => PhaseKind::Baseline,
            "constant" => PhaseKind::Constant {
                rate: need_rate("constant")?,
                arrival: self.arrival(cx, i)?,
            },
            "soak" => {
                if self.drift_windows == Some(0) {
                    return Err(cx.invalid(key("drift_windows"), 0, "must be at least 1"));
                }
                if let Some(d) = self.max_drift
                    && !(d.is_finite() && d > 0.0)
                {
                    return Err(cx.invalid(
                        key("max_drift"),
                        d,
                        "must be a positive fraction, e.g. 0.2",
                    ));
                }
                PhaseKind::Soak {
                    rate: need_rate("soak")?,
                    arrival: self.arrival(cx, i)?,
                    drift_windows: self.drift_windows,
                    max_drift: self.max_drift,
                }
            }
            "ramp" => {
                let (Some(from), Some(to)) = (self.from, self.to) else {
                    let missing = if self.from.is_none() { "from" } else { "to" };
                    return Err(cx.invalid(
                        key(missing),
                        MISSING,
                        "kind \"ramp\" needs `from` and `to` rates in requests per second",
                    ));
                };
                check_rate(cx, &key("from"), from, true)?;
                check_rate(cx, &key("to"), to, true)?;
                if from == 0.0 && to == 0.0 {
                    return Err(cx.invalid(key("to"), 0, "a ramp from 0 to 0 sends nothing"));
                }
                if let Some(n) = self.steps
                    && !(1..=10_000).contains(&n)
                {
                    return Err(cx.invalid(key("steps"), n, "must be between 1 and 10000"));
                }
                PhaseKind::Ramp {
                    from,
                    to,
                    steps: self.steps,
                    arrival: self.arrival(cx, i)?,
                }
            }
            "stress" => PhaseKind::Stress(self.stress(cx, i)?),
            "concurrency" => {
                let Some(users) = self.users else {
                    return Err(cx.invalid(
                        key("users"),
                        MISSING,
                        "kind \"concurrency\" needs a number of users",
                    ));
                };
                if users == 0 || users > 1_000_000 {
                    return Err(cx.invalid(key("users"), users, "must be between 1 and 1000000"));
                }
                PhaseKind::Concurrency { users }
            }
            "replay" => {
                for (field, set) in [
                    ("rate", self.rate.is_some()),
                    ("users", self.users.is_some()),
                    ("from", self.from.is_some()),
                    ("to", self.to.is_some()),
                    ("steps", self.steps.is_some()),
                ] {
                    unused(field, set)?;
                }
                let (kind, loaded) = self.validate_replay(cx, i)?;
                trace = loaded;
                kind
            }
            other => {
                return Err(cx.invalid(key("kind"), format!("{other:?}"), KINDS));
            }
        };
        let (duration_key, duration) = if kind_name == "stress" {
            ("step_duration", self.step_duration)
        } else {
            ("duration", self.duration)
        };
        let Some(duration) = duration else {
            return Err(cx.invalid(
                key(duration_key),
                MISSING,
                if kind_name == "stress" {
                    "a stress phase needs the length of each step, e.g. \"20s\""
                } else {
                    "every phase needs a duration, e.g. \"30s\""
                },
            ));
        };
        let duration = cx.positive(&key(duration_key), duration.get())?;
        if self.requests == Some(0) {
            return Err(cx.invalid(key("requests"), 0, "must be at least 1 (or left out)"));
        }
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("{kind_name}-{i}"));
        if name.is_empty() || name.contains(['/', '\\', '\n', '@']) {
            return Err(cx.invalid(
                key("name"),
                format!("{name:?}"),
                "must be non-empty, without slashes, '@' or newlines",
            ));
        }
        let own_slo = parse_slos(cx, &key("slo"), self.slo.as_deref())?;
        let warmup = self.warmup.map_or(Duration::ZERO, HumanDuration::get);
        let cooldown = self.cooldown.map_or(Duration::ZERO, HumanDuration::get);
        if warmup + cooldown >= duration {
            return Err(cx.invalid(
                key(if self.cooldown.is_some() {
                    "cooldown"
                } else {
                    "warmup"
                }),
                format!("{:?}", warmup + cooldown),
                format!(
                    "warm-up plus cool-down must leave part of the {:?} {} measured",
                    duration,
                    if kind_name == "stress" {
                        "step"
                    } else {
                        "phase"
                    }
                ),
            ));
        }
        Ok(Phase {
            warmup,
            cooldown,
            name,
            kind,
            duration,
            max_requests: self.requests,
            drain: self.drain.map_or(request.timeout, HumanDuration::get),
            slo: crate::slo::combine(run_slo, &own_slo),
            trace,
            faults: Vec::new(),
        })
    }

    fn stress(&self, cx: &Ctx<'_>, i: usize) -> Result<Stress, PlanError> {
        let key = |field: &str| format!("phase[{i}].{field}");
        let (Some(from), Some(to)) = (self.from, self.to) else {
            let missing = if self.from.is_none() { "from" } else { "to" };
            return Err(cx.invalid(
                key(missing),
                MISSING,
                "kind \"stress\" needs `from` (first rate) and `to` (highest rate tried)",
            ));
        };
        check_rate(cx, &key("from"), from, false)?;
        check_rate(cx, &key("to"), to, false)?;
        if to < from {
            return Err(cx.invalid(key("to"), to, format!("must be at least `from` ({from})")));
        }
        let search = match self.search.as_deref().unwrap_or("adaptive") {
            "adaptive" => {
                if self.step.is_some() {
                    return Err(cx.invalid(key("step"), "(set)", "applies to search = \"linear\""));
                }
                let factor = self.factor.unwrap_or(2.0);
                if !(factor.is_finite() && factor > 1.0 && factor <= 100.0) {
                    return Err(cx.invalid(
                        key("factor"),
                        factor,
                        "must be above 1 (and at most 100)",
                    ));
                }
                let precision = self.precision.unwrap_or(0.05);
                if !(0.001..1.0).contains(&precision) {
                    return Err(cx.invalid(
                        key("precision"),
                        precision,
                        "must be between 0.001 and 1",
                    ));
                }
                Search::Adaptive { factor, precision }
            }
            "linear" => {
                for (field, set) in [
                    ("factor", self.factor.is_some()),
                    ("precision", self.precision.is_some()),
                ] {
                    if set {
                        return Err(cx.invalid(
                            key(field),
                            "(set)",
                            "applies to search = \"adaptive\"",
                        ));
                    }
                }
                let Some(step) = self.step else {
                    return Err(cx.invalid(
                        key("step"),
                        MISSING,
                        "a linear search needs the rate added per step",
                    ));
                };
                check_rate(cx, &key("step"), step, false)?;
                Search::Linear { step }
            }
            other => {
                return Err(cx.invalid(
                    key("search"),
                    format!("{other:?}"),
                    "expected \"adaptive\" or \"linear\"",
                ));
            }
        };
        let max_steps = self.max_steps.unwrap_or(12);
        if !(1..=100).contains(&max_steps) {
            return Err(cx.invalid(key("max_steps"), max_steps, "must be between 1 and 100"));
        }
        let fraction = |field: &str, v: Option<f64>, default: f64| -> Result<f64, PlanError> {
            let v = v.unwrap_or(default);
            if (0.0..=1.0).contains(&v) {
                Ok(v)
            } else {
                Err(cx.invalid(key(field), v, "must be a fraction between 0 and 1"))
            }
        };
        Ok(Stress {
            from,
            to,
            search,
            max_steps,
            arrival: self.arrival(cx, i)?,
            max_error_rate: fraction("max_error_rate", self.max_error_rate, 0.01)?,
            min_achieved: fraction("min_achieved", self.min_achieved, 0.95)?,
            max_saturated: fraction("max_saturated", self.max_saturated, 0.25)?,
        })
    }
}

fn check_rate(cx: &Ctx<'_>, key: &str, rate: f64, zero_ok: bool) -> Result<(), PlanError> {
    let low_ok = if zero_ok { rate >= 0.0 } else { rate > 0.0 };
    if !rate.is_finite() || !low_ok || rate > 1_000_000.0 {
        let what = if zero_ok {
            "a rate ≥ 0"
        } else {
            "a positive rate"
        };
        return Err(cx.invalid(
            key,
            rate,
            format!("must be {what} in requests per second (at most 1000000)"),
        ));
    }
    Ok(())
}

impl RawPhase {
    fn arrival(&self, cx: &Ctx<'_>, i: usize) -> Result<Arrival, PlanError> {
        let key = |f: &str| format!("phase[{i}].{f}");
        let arrival = match self.arrival.as_deref().unwrap_or("uniform") {
            "uniform" => Arrival::Uniform,
            "poisson" => Arrival::Poisson,
            "gamma" => {
                let Some(b) = self.burstiness else {
                    return Err(cx.invalid(
                        key("burstiness"),
                        MISSING,
                        "arrival \"gamma\" needs a burstiness (gamma shape; 1 = Poisson)",
                    ));
                };
                if !b.is_finite() || b <= 0.0 || b > 1000.0 {
                    return Err(cx.invalid(
                        key("burstiness"),
                        b,
                        "must be positive (at most 1000)",
                    ));
                }
                Arrival::Gamma { burstiness: b }
            }
            other => {
                return Err(cx.invalid(
                    key("arrival"),
                    format!("{other:?}"),
                    "expected \"uniform\", \"poisson\" or \"gamma\"",
                ));
            }
        };
        if self.burstiness.is_some() && !matches!(arrival, Arrival::Gamma { .. }) {
            return Err(cx.invalid(
                key("burstiness"),
                "(set)",
                "applies to arrival \"gamma\" only",
            ));
        }
        Ok(arrival)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[run]
name = "t"
[agents]
local = 2
[target.simulator]
ttft = "20ms"
[[phase]]
kind = "baseline"
duration = "2s"
[[phase]]
name = "steady"
kind = "constant"
rate = 20.0
duration = "3s"
"#;

    fn check(text: &str) -> Result<Plan, PlanError> {
        parse(text, Path::new("p.toml"))?.validate(Path::new("p.toml"))
    }

    #[test]
    fn without_a_workload_the_mix_is_the_request_and_replays_ignore_eos() {
        let plan = check(GOOD).unwrap();
        let steady = &plan.phases[1];
        let mix = plan.mix_for(steady);
        assert_eq!(mix.len(), 1);
        let e = &mix[0];
        assert_eq!(
            (&e.input, &e.output, e.ignore_eos),
            (
                &crate::workload::Length::Fixed(plan.request.prompt_tokens),
                &crate::workload::Length::Fixed(plan.request.max_tokens),
                false
            )
        );
        let mut replay = steady.clone();
        replay.kind = PhaseKind::Replay { time_scale: 1.0 };
        assert!(plan.mix_for(&replay)[0].ignore_eos);
    }

    const PHASES: &str = r#"
[run]
slo = ["ttft.p99 < 1s", "error_rate < 2%"]
[target.simulator]
[[phase]]
name = "knee"
kind = "stress"
from = 10.0
to = 500.0
step_duration = "5s"
slo = ["ttft.p99 < 200ms"]
[[phase]]
kind = "soak"
rate = 30.0
duration = "10m"
drift_windows = 30
max_drift = 0.25
"#;

    #[test]
    fn stress_and_soak_phases_validate_with_their_objectives() {
        let plan = check(PHASES).unwrap();
        let PhaseKind::Stress(s) = plan.phases[0].kind else {
            panic!("{:?}", plan.phases[0].kind)
        };
        assert_eq!((s.from, s.to, s.max_steps), (10.0, 500.0, 12));
        assert_eq!(
            s.search,
            Search::Adaptive {
                factor: 2.0,
                precision: 0.05
            }
        );
        assert_eq!(plan.phases[0].duration, Duration::from_secs(5));
        let slo: Vec<&str> = plan.phases[0].slo.iter().map(|o| o.text.as_str()).collect();
        assert_eq!(slo, ["error_rate < 2%", "ttft.p99 < 200ms"]);
        assert_eq!(
            plan.phases[1].kind,
            PhaseKind::Soak {
                rate: 30.0,
                arrival: Arrival::Uniform,
                drift_windows: Some(30),
                max_drift: Some(0.25)
            }
        );
        assert_eq!(plan.phases[1].slo.len(), 2);
        assert_eq!(
            plan.phases[1].measured_windows(Duration::from_secs(1)),
            (0, u32::MAX)
        );
        let mut soak = plan.phases[1].clone();
        (soak.warmup, soak.cooldown) = (Duration::from_millis(2500), Duration::from_secs(30));
        assert_eq!(soak.measured_windows(Duration::from_secs(1)), (3, 570));
        assert_eq!(plan.phases[1].name, "soak-1");
        let step = plan.phases[0].stress_step(42.0);
        assert_eq!(
            step.kind,
            PhaseKind::Constant {
                rate: 42.0,
                arrival: Arrival::Uniform
            }
        );
    }

    #[test]
    fn stress_and_soak_mistakes_name_the_key() {
        for (from, to, key, needle) in [
            (
                "step_duration = \"5s\"",
                "duration = \"5s\"",
                "phase[0].duration",
                "does not apply to kind \"stress\"",
            ),
            (
                "step_duration = \"5s\"\n",
                "",
                "phase[0].step_duration",
                "length of each step",
            ),
            ("to = 500.0", "to = 5.0", "phase[0].to", "at least `from`"),
            (
                "to = 500.0",
                "to = 500.0\nsearch = \"linear\"",
                "phase[0].step",
                "rate added per step",
            ),
            (
                "to = 500.0",
                "to = 500.0\nfactor = 1.0",
                "phase[0].factor",
                "above 1",
            ),
            (
                "to = 500.0",
                "to = 500.0\nsearch = \"bisect\"",
                "phase[0].search",
                "\"adaptive\" or \"linear\"",
            ),
            (
                "to = 500.0",
                "to = 500.0\nmin_achieved = 1.5",
                "phase[0].min_achieved",
                "fraction",
            ),
            (
                "drift_windows = 30",
                "drift_windows = 0",
                "phase[1].drift_windows",
                "at least 1",
            ),
            (
                "max_drift = 0.25",
                "max_drift = -1.0",
                "phase[1].max_drift",
                "positive",
            ),
            (
                "rate = 30.0",
                "rate = 30.0\nfrom = 1.0",
                "phase[1].from",
                "does not apply to kind \"soak\"",
            ),
            (
                "slo = [\"ttft.p99 < 200ms\"]",
                "slo = [\"ttft.p99 < soon\"]",
                "phase[0].slo[0]",
                "not a duration",
            ),
            (
                "\"error_rate < 2%\"",
                "\"errors < 2%\"",
                "run.slo[1]",
                "not <metric>.<statistic>",
            ),
        ] {
            let text = PHASES.replacen(from, to, 1);
            let e = check(&text).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(needle), "{from} -> {to}: {e}");
        }
    }

    #[test]
    fn good_plan_validates() {
        let plan = check(GOOD).unwrap();
        assert_eq!(plan.agents.count, 2);
        assert_eq!(plan.phases.len(), 2);
        assert_eq!(
            plan.phases[1].kind,
            PhaseKind::Constant {
                rate: 20.0,
                arrival: Arrival::Uniform
            }
        );
        assert_eq!(plan.phases[0].name, "baseline-0");
        assert_eq!(plan.target.model, SIMULATOR_MODEL);
    }

    fn err(text: &str) -> String {
        check(text).unwrap_err().to_string()
    }

    #[test]
    fn unknown_key_is_named() {
        let e = err(&GOOD.replace("rate = 20.0", "rate = 20.0\nratee = 3"));
        assert!(e.contains("ratee"), "{e}");
        assert!(e.contains("p.toml"), "{e}");
    }

    #[test]
    fn shard_weights_are_cores_unless_equal() {
        let weights =
            |extra: &str| check(&GOOD.replace("local = 2", &format!("local = 2\n{extra}")));
        assert_eq!(
            weights("").unwrap().agents.shard_weights,
            ShardWeights::Cores
        );
        let equal = weights("shard_weights = \"equal\"").unwrap();
        assert_eq!(equal.agents.shard_weights, ShardWeights::Equal);
        let e = weights("shard_weights = \"gpus\"").unwrap_err().to_string();
        assert!(
            e.contains("agents.shard_weights") && e.contains("gpus"),
            "{e}"
        );
    }

    #[test]
    fn negative_rate_is_named() {
        let e = err(&GOOD.replace("rate = 20.0", "rate = -5.0"));
        assert!(e.contains("phase[1].rate") && e.contains("-5"), "{e}");
    }

    #[test]
    fn wrong_type_is_named() {
        let e = err(&GOOD.replace("rate = 20.0", "rate = \"fast\""));
        assert!(e.contains("rate") && e.contains("fast"), "{e}");
    }

    #[test]
    fn missing_target_is_named() {
        let e = err(&GOOD.replace("[target.simulator]\nttft = \"20ms\"", ""));
        assert!(e.contains("`target`"), "{e}");
    }

    #[test]
    fn bad_duration_is_named() {
        let e = err(&GOOD.replace("duration = \"3s\"", "duration = \"3 parsecs\""));
        assert!(e.contains("duration") && e.contains("3 parsecs"), "{e}");
    }

    #[test]
    fn ramp_and_arrivals_validate() {
        let ramp = GOOD.replace(
            "kind = \"baseline\"",
            "kind = \"ramp\"\nfrom = 0.0\nto = 50.0\narrival = \"gamma\"\nburstiness = 0.5",
        );
        let plan = check(&ramp).unwrap();
        assert_eq!(
            plan.phases[0].kind,
            PhaseKind::Ramp {
                from: 0.0,
                to: 50.0,
                steps: None,
                arrival: Arrival::Gamma { burstiness: 0.5 }
            }
        );
        let e = err(&GOOD.replace("rate = 20.0", "rate = 20.0\narrival = \"gamma\""));
        assert!(e.contains("phase[1].burstiness"), "{e}");
        let e = err(&GOOD.replace("rate = 20.0", "rate = 20.0\narrival = \"bursty\""));
        assert!(
            e.contains("phase[1].arrival") && e.contains("bursty"),
            "{e}"
        );
        let e = err(&GOOD.replace("kind = \"baseline\"", "kind = \"ramp\"\nfrom = 5.0"));
        assert!(e.contains("phase[0].to"), "{e}");
    }

    #[test]
    fn request_options_validate() {
        let with = |extra: &str| {
            GOOD.replace(
                "[target.simulator]",
                &format!("[target]\n{extra}\n[target.simulator]"),
            )
        };
        let plan = check(&with(
            "api_key_env = \"MY_KEY\"\nhttp2 = true\nheaders = { x-team = \"infra\" }",
        ))
        .unwrap();
        assert_eq!(plan.target.api_key_env.as_deref(), Some("MY_KEY"));
        assert!(plan.target.http2);
        assert_eq!(plan.target.headers["x-team"], "infra");
        let e = err(&with("headers = { Authorization = \"Bearer sk-123\" }"));
        assert!(
            e.contains("target.headers.Authorization") && !e.contains("sk-123"),
            "{e}"
        );
        let e = err(&with("api_key_env = \"1BAD\""));
        assert!(e.contains("target.api_key_env"), "{e}");
        let e = err(&with("ca_file = \"/nonexistent/ca.pem\""));
        assert!(
            e.contains("target.ca_file") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
        let e = err(&GOOD.replacen(
            "[[phase]]",
            "[request]\ntimeout = \"1s\"\nfirst_token_timeout = \"2s\"\n[[phase]]",
            1,
        ));
        assert!(e.contains("request.first_token_timeout"), "{e}");
    }

    #[test]
    fn cost_is_validated() {
        let plan = check(&format!("{GOOD}\n[cost]\ngpu_hour_price = 2.5\ngpus = 4\n")).unwrap();
        let cost = plan.cost.unwrap();
        assert_eq!(
            (cost.gpu_hour_price, cost.gpus, cost.currency.as_str()),
            (2.5, 4, "USD")
        );
        let e = err(&format!(
            "{GOOD}\n[cost]\ngpu_hour_price = -1.0\ngpus = 4\n"
        ));
        assert!(e.contains("cost.gpu_hour_price") && e.contains("-1"), "{e}");
        let e = err(&format!("{GOOD}\n[cost]\ngpu_hour_price = 1.0\n"));
        assert!(e.contains("cost.gpus"), "{e}");
    }

    #[test]
    fn field_of_other_kind_is_refused() {
        let e = err(&GOOD.replace("kind = \"baseline\"", "kind = \"baseline\"\nusers = 4"));
        assert!(e.contains("phase[0].users"), "{e}");
    }

    #[test]
    fn tracing_is_off_unless_enabled_and_its_ratio_is_checked() {
        assert_eq!(check(GOOD).unwrap().tracing, None);
        let traced = |body: &str| {
            GOOD.replace(
                "name = \"t\"",
                &format!("name = \"t\"\n[run.tracing]\n{body}"),
            )
        };
        let plan = check(&traced("enabled = true")).unwrap();
        assert_eq!(
            plan.tracing,
            Some(Tracing {
                sample_ratio: DEFAULT_TRACE_SAMPLE_RATIO
            })
        );
        let plan = check(&traced("enabled = true\nsample_ratio = 1.0")).unwrap();
        assert_eq!(plan.tracing, Some(Tracing { sample_ratio: 1.0 }));
        assert_eq!(check(&traced("sample_ratio = 0.5")).unwrap().tracing, None);
        for bad in ["1.5", "-0.1", "nan"] {
            let e = err(&traced(&format!("enabled = true\nsample_ratio = {bad}")));
            assert!(e.contains("run.tracing.sample_ratio"), "{e}");
        }
        let e = err(&traced("enable = true"));
        assert!(e.contains("enable"), "{e}");
    }
}

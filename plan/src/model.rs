//! The validated plan, ready to run: plain types whose fields hold only
//! checked values with their defaults applied. Phases have their own module
//! ([`crate::Phase`]); everything else a run needs is here.

use crate::{Phase, PhaseKind, SimEngine};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default model name of the built-in simulator.
pub const SIMULATOR_MODEL: &str = "stampede-sim";

/// A validated plan, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The plan file it was read from: errors found when the run starts
    /// (an unset API key variable, an unusable tokenizer) name it.
    pub source: PathBuf,
    /// Run name.
    pub name: String,
    /// Window length.
    pub window: Duration,
    /// Windows each agent sends per message, when the plan sets
    /// `run.report_every`; `None`: chosen from the fleet's size
    /// ([`Plan::windows_per_report`]).
    pub windows_per_report: Option<u32>,
    /// Results parent directory.
    pub output_dir: PathBuf,
    /// Seed of random choices.
    pub seed: u64,
    /// Times the phases run (≥ 1).
    pub repeat: u32,
    /// Percentiles every output shows, ascending; `None`: each output's own
    /// default set ([`crate::percentiles`]).
    pub percentiles: Option<Vec<f64>>,
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
    /// Per-request records, when `[records]` samples any.
    pub records: Option<Records>,
}

/// Validated `[records]` of a run that records requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Records {
    /// Fraction of requests recorded, in (0, 1].
    pub sample: f64,
    /// Records one agent keeps per window (≥ 1).
    pub max_per_window: u32,
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
    /// How long an agent that lost the controller keeps sending.
    pub halt_after: Duration,
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
    /// The built-in simulator, started by the controller (boxed: its
    /// engine settings keep their durations as written).
    Simulator(Box<SimulatorSpec>),
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
    /// Models served beside `target.model`, each with its own timing and engine.
    pub models: Vec<SimModelSpec>,
}

/// One more model of the built-in simulator.
#[derive(Debug, Clone, PartialEq)]
pub struct SimModelSpec {
    /// Its name (non-empty, unique among the simulator's models).
    pub name: String,
    /// Time to first token.
    pub ttft: Duration,
    /// Inter-token latency.
    pub itl: Duration,
    /// Output tokens per response.
    pub output_tokens: u32,
    /// Its own batching engine, when set.
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
    /// `ignore_eos` sent, when given (a replay asks for it by default).
    pub ignore_eos: Option<bool>,
    /// Temperature sent, when given.
    pub temperature: Option<f64>,
    /// Extra body fields (a JSON object), serialized; empty: none.
    pub extra_body_json: String,
}

/// Most windows an agent gathers into one message (`run.report_every`).
pub const MAX_WINDOWS_PER_REPORT: u32 = 60;

/// Reports a second the controller is sent at most, when the plan does not
/// set `run.report_every`: a larger fleet gathers several windows per message.
pub const AUTO_REPORTS_PER_SECOND: u64 = 1_000;

impl Plan {
    /// Windows each of `agents` agents gathers per message: the plan's
    /// `run.report_every`, or just enough that the fleet sends the controller
    /// at most [`AUTO_REPORTS_PER_SECOND`] messages a second (1 for fleets
    /// up to 1,000 agents at 1 s windows), and at most
    /// [`MAX_WINDOWS_PER_REPORT`].
    pub fn windows_per_report(&self, agents: usize) -> u32 {
        if let Some(n) = self.windows_per_report {
            return n;
        }
        let window_us = self.window.as_micros().max(1);
        // Reports a second: agents × (1 s / window), rounded up.
        let per_second = (agents as u128 * 1_000_000).div_ceil(window_us);
        let n = per_second.div_ceil(u128::from(AUTO_REPORTS_PER_SECOND));
        u32::try_from(n)
            .unwrap_or(u32::MAX)
            .clamp(1, MAX_WINDOWS_PER_REPORT)
    }

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

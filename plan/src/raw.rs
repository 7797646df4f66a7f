//! The plan exactly as written: serde mirrors of the TOML tables, every key
//! optional so that validation (not the parser) decides defaults and names
//! what is missing. Unknown keys are refused here, by serde.

use crate::duration::HumanDuration;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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
    /// Per-request records written as Parquet, when the plan has `[records]`.
    pub records: Option<RawRecords>,
}

/// `[records]`: per-request records of a seeded sample of the requests.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecords {
    /// Fraction of requests recorded, in [0, 1] (0: off). Seeded by the run
    /// seed: a re-run records the same request numbers.
    pub sample: Option<f64>,
    /// Records one agent keeps per window; those beyond are counted as
    /// dropped. Default 10000.
    pub max_per_window: Option<u32>,
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
    /// How often each agent sends its closed windows, a whole number of
    /// windows (e.g. "10s" with 1 s windows: ten windows per message).
    /// Default: every window, unless the fleet is large enough that the
    /// controller would take more than 1,000 reports a second.
    pub report_every: Option<HumanDuration>,
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
    /// Percentiles every output shows, e.g. `[50, 75, 99, 99.99]`; unset:
    /// each output's own default set (see docs/plan.md).
    pub percentiles: Option<Vec<f64>>,
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
    /// while it reconnects, before it is declared lost. Default "10s".
    pub reconnect_grace: Option<HumanDuration>,
    /// The dead-man's switch: an agent stops sending new requests when it has
    /// lost the controller this long. Default "5s" (at most `reconnect_grace`).
    pub halt_after: Option<HumanDuration>,
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
    /// `[[target.simulator.models]]`: more models served beside `target.model`,
    /// each with its own timing and engine (route to them with `[[workload]]`
    /// entries' `model`).
    pub models: Option<Vec<RawSimModel>>,
}

/// `[[target.simulator.models]]`: one more model of the built-in simulator;
/// unset keys take the same defaults as `[target.simulator]`'s.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSimModel {
    /// The model name requests use (required, unique).
    pub name: Option<String>,
    /// Time to first token. Default "20ms".
    pub ttft: Option<HumanDuration>,
    /// Inter-token latency. Default "5ms".
    pub itl: Option<HumanDuration>,
    /// Output tokens per response. Default 64.
    pub output_tokens: Option<u32>,
    /// This model's own batching engine (its own batch and KV cache).
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
    /// Ask the server to ignore end-of-sequence, as in `[[workload]]`.
    /// Default: not sent (true when replaying a trace).
    pub ignore_eos: Option<bool>,
    /// Sampling temperature, as in `[[workload]]`. Default: the server's.
    pub temperature: Option<f64>,
    /// Extra fields merged into the request body, as in `[[workload]]`,
    /// e.g. `{ top_p = 0.9 }`.
    pub extra_body: Option<toml::Table>,
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
    /// Most requests in flight at once across all agents (open-loop kinds):
    /// an arrival that finds no free slot waits for one, and the wait counts
    /// as schedule lag. At least the number of agents.
    pub max_concurrency: Option<u32>,
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

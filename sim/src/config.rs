//! Simulator settings and their validation.
//!
//! Kept in its own module so the binary's flags and config file, the controller's embedded
//! simulator and the tests all build the same value. `SimConfig::default()` is today's
//! cheap fixed timeline (no batching, no faults); the batching engine is opt-in through
//! [`SimConfig::engine`] so callers that compare measured TTFT against `ttft` keep working.
//! One server may serve several models ([`SimConfig::extra_models`]), each with its own
//! timing and engine; seed, jitter and faults stay server-wide.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::faults::FaultConfig;

/// Settings of one simulated model server.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Fixed-timeline mode only: time to first content token, measured from the request's
    /// arrival at the server's socket. Ignored when [`engine`](Self::engine) is set.
    pub ttft: Duration,
    /// Fixed-timeline mode only: the gap between two consecutive content tokens.
    /// Ignored when [`engine`](Self::engine) is set.
    pub itl: Duration,
    /// Tokens generated per request, unless the request's `max_tokens` is lower.
    /// At least one token is always generated: `0` is treated as `1`.
    pub output_tokens: u32,
    /// The single model name served. Requests naming another model get a 404.
    pub model: String,
    /// Longest context (prompt + requested output tokens) accepted; longer requests get a 400
    /// `context_length_exceeded`. `None`: unlimited.
    pub max_model_len: Option<u32>,
    /// Seed of every random draw (jitter, fault selection). Same seed and same arrival order:
    /// same timings and same faults.
    pub seed: u64,
    /// Relative timing jitter `J` in `[0, 1)`: every timed interval (fixed mode: the TTFT and
    /// each inter-token gap; engine mode: each engine step) is scaled by a factor drawn
    /// uniformly from `[1 - J, 1 + J]`. `0` disables jitter.
    pub jitter: f64,
    /// The continuous-batching engine model. `None` (the default): every request runs alone
    /// on the fixed `ttft` / `itl` timeline.
    pub engine: Option<EngineConfig>,
    /// Faults injected from the start (changeable at run time through `POST /sim/faults`).
    /// Server-wide: one fault draw per request, whichever model it names.
    pub faults: FaultConfig,
    /// Models served beside [`model`](Self::model), each with its own timing, length limit
    /// and engine (its own batch and KV cache). Requests are routed by their `model` field;
    /// one without it goes to [`model`](Self::model).
    pub extra_models: Vec<ModelConfig>,
}

/// One served model: its name, timing and engine.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// The model name requests use.
    pub name: String,
    /// Fixed-timeline mode: time to first content token (see [`SimConfig::ttft`]).
    pub ttft: Duration,
    /// Fixed-timeline mode: gap between consecutive content tokens.
    pub itl: Duration,
    /// Tokens generated per request, unless the request's `max_tokens` is lower (≥ 1).
    pub output_tokens: u32,
    /// Longest context (prompt + requested output tokens) accepted. `None`: unlimited.
    pub max_model_len: Option<u32>,
    /// This model's own batching engine; `None`: the fixed timeline.
    pub engine: Option<EngineConfig>,
}

impl Default for ModelConfig {
    /// Model `stampede-sim`: 20 ms TTFT, 5 ms ITL, 64 output tokens, no length limit, no
    /// batching engine.
    fn default() -> Self {
        Self {
            name: "stampede-sim".to_owned(),
            ttft: Duration::from_millis(20),
            itl: Duration::from_millis(5),
            output_tokens: 64,
            max_model_len: None,
            engine: None,
        }
    }
}

impl Default for SimConfig {
    /// 20 ms TTFT, 5 ms ITL, 64 output tokens, model `stampede-sim`, no length limit, seed 0,
    /// no jitter, no batching engine, no faults.
    fn default() -> Self {
        let m = ModelConfig::default();
        Self {
            ttft: m.ttft,
            itl: m.itl,
            output_tokens: m.output_tokens,
            model: m.name,
            max_model_len: m.max_model_len,
            seed: 0,
            jitter: 0.0,
            engine: m.engine,
            faults: FaultConfig::default(),
            extra_models: Vec::new(),
        }
    }
}

/// The HTTP status answered when the waiting queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub enum OverloadStatus {
    /// `429 Too Many Requests` (the default).
    #[default]
    TooManyRequests,
    /// `503 Service Unavailable`.
    ServiceUnavailable,
}

impl OverloadStatus {
    /// The status code.
    pub fn code(self) -> u16 {
        match self {
            Self::TooManyRequests => 429,
            Self::ServiceUnavailable => 503,
        }
    }
}

impl TryFrom<u16> for OverloadStatus {
    type Error = String;

    fn try_from(code: u16) -> Result<Self, Self::Error> {
        match code {
            429 => Ok(Self::TooManyRequests),
            503 => Ok(Self::ServiceUnavailable),
            other => Err(format!("queue-full status must be 429 or 503, got {other}")),
        }
    }
}

impl From<OverloadStatus> for u16 {
    fn from(s: OverloadStatus) -> u16 {
        s.code()
    }
}

/// The continuous-batching engine model (see `docs/simulator.md` for the equations).
///
/// One engine task runs iterations ("steps") back to back while there is work. At the start
/// of a step it admits waiting requests (FIFO) while fewer than `max_num_seqs` run and the KV
/// cache has room; the step lasts
/// `step_base + step_per_seq × running + prefill_per_token × uncached prompt tokens admitted`,
/// and at its end every running request emits one token (a newly admitted one its first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Most requests in the running batch (vLLM `--max-num-seqs`).
    pub max_num_seqs: u32,
    /// Most requests waiting for a batch slot; beyond it requests are refused with
    /// `queue_full_status`.
    pub max_waiting: u32,
    /// Status of the refusal when the waiting queue is full: 429 or 503.
    pub queue_full_status: OverloadStatus,
    /// Fixed cost of one engine step.
    #[serde(with = "crate::dur")]
    pub step_base: Duration,
    /// Added to a step per request in the running batch.
    #[serde(with = "crate::dur")]
    pub step_per_seq: Duration,
    /// Added to a step per prompt token prefilled in it (prefix-cache hits are free).
    #[serde(with = "crate::dur")]
    pub prefill_per_token: Duration,
    /// Tokens per KV-cache block.
    pub block_size: u32,
    /// KV-cache capacity in blocks.
    pub num_blocks: u32,
    /// Reuse cached blocks of identical block-aligned prompt prefixes.
    pub prefix_caching: bool,
}

impl Default for EngineConfig {
    /// 256 sequences, 4096 waiting (then 429), steps of 5 ms + 40 µs per sequence, 25 µs per
    /// prefilled token, 16-token blocks, 16384 blocks (262,144 tokens), prefix caching on.
    fn default() -> Self {
        Self {
            max_num_seqs: 256,
            max_waiting: 4096,
            queue_full_status: OverloadStatus::TooManyRequests,
            step_base: Duration::from_millis(5),
            step_per_seq: Duration::from_micros(40),
            prefill_per_token: Duration::from_micros(25),
            block_size: 16,
            num_blocks: 16_384,
            prefix_caching: true,
        }
    }
}

/// A setting that cannot work, named with its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid simulator setting `{key}`{}: {reason}", in_model(.model))]
pub struct ConfigError {
    /// The offending key, as spelled in the config file.
    pub key: &'static str,
    /// Which extra model the key belongs to, e.g. `models[1] ("slow")`; `None`: a top-level
    /// key (the first model's or a server-wide one).
    pub model: Option<String>,
    /// What is wrong with it.
    pub reason: String,
}

fn in_model(model: &Option<String>) -> String {
    model
        .as_ref()
        .map_or_else(String::new, |m| format!(" of {m}"))
}

impl ConfigError {
    pub(crate) fn new(key: &'static str, reason: impl Into<String>) -> Self {
        Self {
            key,
            model: None,
            reason: reason.into(),
        }
    }

    /// The same error, located in extra model `index` named `name`.
    fn in_extra(self, index: usize, name: &str) -> Self {
        Self {
            model: Some(format!("models[{index}] ({name:?})")),
            ..self
        }
    }
}

/// Longest single interval accepted (a day): bigger values are surely typos and would make
/// deadline arithmetic saturate.
const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

impl SimConfig {
    /// The first (default) model, from the top-level settings.
    pub fn primary(&self) -> ModelConfig {
        ModelConfig {
            name: self.model.clone(),
            ttft: self.ttft,
            itl: self.itl,
            output_tokens: self.output_tokens,
            max_model_len: self.max_model_len,
            engine: self.engine.clone(),
        }
    }

    /// Every model served, the default one first.
    pub fn models(&self) -> Vec<ModelConfig> {
        let mut all = vec![self.primary()];
        all.extend(self.extra_models.iter().cloned());
        all
    }

    /// Checks every setting; [`crate::start`] refuses a configuration that fails this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.primary().validate("model")?;
        if !(self.jitter.is_finite() && (0.0..1.0).contains(&self.jitter)) {
            return Err(ConfigError::new(
                "jitter",
                format!("must be in [0, 1), got {}", self.jitter),
            ));
        }
        self.faults.validate()?;
        for (i, m) in self.extra_models.iter().enumerate() {
            m.validate("name").map_err(|e| e.in_extra(i, &m.name))?;
            let taken = std::iter::once(&self.model)
                .chain(self.extra_models[..i].iter().map(|o| &o.name))
                .any(|n| *n == m.name);
            if taken {
                let e = ConfigError::new("name", format!("model {:?} is served twice", m.name));
                return Err(e.in_extra(i, &m.name));
            }
        }
        Ok(())
    }
}

impl ModelConfig {
    /// Checks this model's settings; `name_key` is how its name is spelled in the file.
    fn validate(&self, name_key: &'static str) -> Result<(), ConfigError> {
        for (key, d) in [("ttft", self.ttft), ("itl", self.itl)] {
            if d > MAX_INTERVAL {
                return Err(ConfigError::new(key, "must be at most 24h"));
            }
        }
        if self.name.is_empty() {
            return Err(ConfigError::new(name_key, "must not be empty"));
        }
        if self.max_model_len == Some(0) {
            return Err(ConfigError::new("max_model_len", "must be at least 1"));
        }
        if let Some(engine) = &self.engine {
            engine.validate(self.max_model_len)?;
        }
        Ok(())
    }
}

impl EngineConfig {
    fn validate(&self, max_model_len: Option<u32>) -> Result<(), ConfigError> {
        if self.max_num_seqs == 0 {
            return Err(ConfigError::new("max_num_seqs", "must be at least 1"));
        }
        if self.block_size == 0 {
            return Err(ConfigError::new("block_size", "must be at least 1"));
        }
        if self.num_blocks == 0 {
            return Err(ConfigError::new("num_blocks", "must be at least 1"));
        }
        for (key, d) in [
            ("step_base", self.step_base),
            ("step_per_seq", self.step_per_seq),
            ("prefill_per_token", self.prefill_per_token),
        ] {
            if d > MAX_INTERVAL {
                return Err(ConfigError::new(key, "must be at most 24h"));
            }
        }
        if self.step_base.is_zero() && self.step_per_seq.is_zero() {
            return Err(ConfigError::new(
                "step_base",
                "step_base and step_per_seq cannot both be zero (steps would take no time)",
            ));
        }
        let capacity = u64::from(self.block_size) * u64::from(self.num_blocks);
        if let Some(len) = max_model_len
            && u64::from(len) > capacity
        {
            return Err(ConfigError::new(
                "num_blocks",
                format!(
                    "KV cache holds {capacity} tokens, less than max_model_len {len}: \
                     a maximal request could never run"
                ),
            ));
        }
        Ok(())
    }
}

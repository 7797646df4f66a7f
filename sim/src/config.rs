//! Simulator settings and their validation.
//!
//! Kept in its own module so the binary's flags and config file, the controller's embedded
//! simulator and the tests all build the same value. `SimConfig::default()` is today's
//! cheap fixed timeline (no batching, no faults); the batching engine is opt-in through
//! [`SimConfig::engine`] so callers that compare measured TTFT against `ttft` keep working.

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
    pub faults: FaultConfig,
}

impl Default for SimConfig {
    /// 20 ms TTFT, 5 ms ITL, 64 output tokens, model `stampede-sim`, no length limit, seed 0,
    /// no jitter, no batching engine, no faults.
    fn default() -> Self {
        Self {
            ttft: Duration::from_millis(20),
            itl: Duration::from_millis(5),
            output_tokens: 64,
            model: "stampede-sim".to_owned(),
            max_model_len: None,
            seed: 0,
            jitter: 0.0,
            engine: None,
            faults: FaultConfig::default(),
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
#[error("invalid simulator setting `{key}`: {reason}")]
pub struct ConfigError {
    /// The offending key, as spelled in the config file.
    pub key: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(key: &'static str, reason: impl Into<String>) -> Self {
        Self {
            key,
            reason: reason.into(),
        }
    }
}

/// Longest single interval accepted (a day): bigger values are surely typos and would make
/// deadline arithmetic saturate.
const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

impl SimConfig {
    /// Checks every setting; [`crate::start`] refuses a configuration that fails this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, d) in [("ttft", self.ttft), ("itl", self.itl)] {
            if d > MAX_INTERVAL {
                return Err(ConfigError::new(key, "must be at most 24h"));
            }
        }
        if self.model.is_empty() {
            return Err(ConfigError::new("model", "must not be empty"));
        }
        if self.max_model_len == Some(0) {
            return Err(ConfigError::new("max_model_len", "must be at least 1"));
        }
        if !(self.jitter.is_finite() && (0.0..1.0).contains(&self.jitter)) {
            return Err(ConfigError::new(
                "jitter",
                format!("must be in [0, 1), got {}", self.jitter),
            ));
        }
        self.faults.validate()?;
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

//! Simulator settings.
//!
//! Kept in its own module so the binary's flags, the controller's embedded simulator and the
//! tests all build the same value. The later batching / KV-cache model adds its knobs here.

use std::time::Duration;

/// Settings of one simulated model server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// Time to first content token, measured from the moment the request handler starts.
    pub ttft: Duration,
    /// Inter-token latency: the gap between two consecutive content tokens.
    pub itl: Duration,
    /// Tokens generated per request, unless the request's `max_tokens` is lower.
    /// At least one token is always generated: `0` is treated as `1`.
    pub output_tokens: u32,
    /// The single model name served. Requests naming another model get a 404.
    pub model: String,
}

impl Default for SimConfig {
    /// 20 ms TTFT, 5 ms ITL, 64 output tokens, model `stampede-sim`.
    fn default() -> Self {
        Self {
            ttft: Duration::from_millis(20),
            itl: Duration::from_millis(5),
            output_tokens: 64,
            model: "stampede-sim".to_owned(),
        }
    }
}

//! stampede's load agent as a library: the arrival engine, the HTTP/SSE
//! client with vLLM's metric definitions, per-window recording, and the gRPC
//! session with the controller. The `agent` binary is a thin CLI over
//! [`run`]; the controller embeds the same code for local agents.

pub mod arrivals;
pub mod backoff;
pub mod client;
pub mod engine;
pub mod failure;
pub mod h1;
pub mod http;
pub mod live;
pub mod openai;
pub mod pacer;
pub mod recorder;
pub mod replay;
pub mod security;
pub mod session;
pub mod signals;
pub mod spans;
pub mod sse;
pub mod telemetry;
pub mod workload;

pub use engine::AgentClock;
pub use session::{AgentConfig, AgentError, run};

/// This machine's host name (for agent ids and node names).
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

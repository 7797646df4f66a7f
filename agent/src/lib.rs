//! stampede's load agent as a library: the arrival engine, the HTTP/SSE
//! client with vLLM's metric definitions, per-window recording, and the gRPC
//! session with the controller. The `agent` binary is a thin CLI over
//! [`run`]; the controller embeds the same code for local agents.

pub mod arrivals;
pub mod backoff;
mod cap;
pub mod client;
pub mod engine;
pub mod failure;
pub mod gate;
pub mod gather;
pub mod h1;
pub mod http;
pub mod link;
pub mod live;
pub mod openai;
pub mod pacer;
pub mod recorder;
pub mod records;
pub mod replay;
pub mod security;
pub mod session;
mod slices;
pub mod spans;
pub mod sse;
pub mod tally;
pub mod workload;

pub use engine::AgentClock;
pub use session::{AgentConfig, AgentError, run};

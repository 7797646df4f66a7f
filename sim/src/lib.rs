//! `stampede-sim`: an OpenAI-compatible inference *simulator*.
//!
//! It answers `POST /v1/chat/completions` and `POST /v1/completions` (streaming and not).
//! By default each request runs on its own deterministic timeline: the first content token
//! `ttft` after the request reached the server, then one token every `itl`. With
//! [`SimConfig::engine`] set, requests instead share a continuous-batching engine with a
//! bounded batch, a bounded waiting queue and a prefix-caching KV cache, so the server
//! saturates like vLLM. Tests and the embedded default benchmark use it as a stand-in for a
//! real model server, so its wire format follows vLLM, including the role-only first chat
//! chunk that clients must not count as the first token. `docs/simulator.md` has the model.
//!
//! One server may serve several models ([`SimConfig::extra_models`]), each with its own
//! timing and engine; requests are routed by their `model` field.
//!
//! Also served: `GET /v1/models`, `GET /health`, `GET /metrics` (Prometheus, vLLM names),
//! `GET /sim/stats` (a [`StatsSnapshot`], the server's or with `?model=` one model's), `GET`/`POST /sim/faults` ([`FaultConfig`]) and
//! `GET`/`DELETE /sim/latency` (measured first-token latency, a [`LatencySnapshot`]).
//!
//! Modules, each with one job: `accept` connections whose reads carry their arrival time,
//! [`config`](SimConfig) settings, `file` the TOML config file,
//! `request` parsing, `timeline` token timing, `hrtimer` the sub-millisecond timer every
//! token deadline and engine step waits on, `engine` the batching engine and KV cache,
//! `faults` fault injection, `wire` the JSON and SSE format, `stream` the per-request SSE
//! body, `server` the routes, `stats` counters, `latency` measured first-token latency, `metrics` the Prometheus page.

#![warn(missing_docs)]

mod accept;
mod config;
mod dur;
mod engine;
mod error;
mod faults;
mod file;
mod hrtimer;
mod latency;
mod metrics;
mod models;
mod request;
mod rng;
mod server;
mod stats;
mod stream;
mod timeline;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpSocket;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{ConfigError, EngineConfig, ModelConfig, OverloadStatus, SimConfig};
pub use error::SimError;
pub use faults::FaultConfig;
pub use file::{FileConfig, FileModel};
pub use latency::{LatencySnapshot, LatencySummary};
pub use server::router;
pub use stats::{FaultCounts, SimStats, StatsSnapshot, TRACEPARENTS_KEPT, Traceparents};

/// Listen backlog: load tests open thousands of connections at once.
const LISTEN_BACKLOG: u32 = 4096;

/// A simulator serving in the background, returned by [`start`].
///
/// Dropping it does not stop the server; cancel the shutdown token for that.
#[derive(Debug)]
pub struct RunningSim {
    /// The address actually bound (useful with port 0).
    pub addr: SocketAddr,
    /// The live counters of this simulator.
    pub stats: Arc<SimStats>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningSim {
    /// The base URL of the simulator, e.g. `http://127.0.0.1:8000` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the server has stopped: after the shutdown token is cancelled, in-flight
    /// responses finish first (graceful shutdown).
    pub async fn wait(self) -> Result<(), SimError> {
        self.task.await??;
        Ok(())
    }
}

/// Binds `listen`, spawns the HTTP server (HTTP/1.1 and h2c) and returns at once.
/// The server stops when `shutdown` is cancelled. An invalid `cfg` (see
/// [`SimConfig::validate`]) is refused with [`std::io::ErrorKind::InvalidInput`].
pub async fn start(
    cfg: SimConfig,
    listen: SocketAddr,
    shutdown: CancellationToken,
) -> std::io::Result<RunningSim> {
    cfg.validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // Receive stamping on before the first request arrives ([`accept`]).
    stampede_rxtime::hold_enabled();
    let socket = if listen.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(listen)?;
    let listener = socket.listen(LISTEN_BACKLOG)?;
    let addr = listener.local_addr()?;

    let stats = Arc::new(SimStats::new());
    let app = server::build(cfg, Arc::clone(&stats), shutdown.clone());
    let listener = accept::StampedListener(listener);
    let app = app.into_make_service_with_connect_info::<accept::RequestArrival>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    });
    tracing::info!(%addr, "stampede-sim started");
    Ok(RunningSim { addr, stats, task })
}

//! `stampede-sim`: run the OpenAI-compatible inference simulator as a standalone server.
//!
//! Prints exactly one line to stdout, `stampede-sim listening on http://ADDR`, once the
//! socket is bound (so `--listen 127.0.0.1:0` works for tests that read the port back).
//! Logs go to stderr. SIGINT/SIGTERM shut down gracefully; a second signal exits at once.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use stampede_sim::{EngineConfig, FileConfig, OverloadStatus, SimConfig};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Default listen address when neither the file nor the flags set one.
const DEFAULT_LISTEN: &str = "127.0.0.1:8000";

/// OpenAI-compatible inference simulator: a fixed TTFT / inter-token latency timeline, or a
/// vLLM-like continuous-batching engine with a prefix-caching KV cache (`--max-num-seqs`),
/// with Prometheus `/metrics` and fault injection. Settings: built-in defaults, then
/// `--config FILE` (TOML), then flags. See docs/simulator.md.
#[derive(Debug, Parser)]
#[command(name = "stampede-sim", version, about)]
struct Cli {
    /// TOML config file (keys as in docs/simulator.md); flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port) [default: 127.0.0.1:8000].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Fixed mode: time to first content token, e.g. `20ms` [default: 20ms].
    #[arg(long, value_parser = humantime::parse_duration)]
    ttft: Option<Duration>,
    /// Fixed mode: inter-token latency, e.g. `5ms` [default: 5ms].
    #[arg(long, value_parser = humantime::parse_duration)]
    itl: Option<Duration>,
    /// Tokens per response (a request's max_tokens can lower it) [default: 64].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    output_tokens: Option<u32>,
    /// Model name served; other names get 404 [default: stampede-sim].
    #[arg(long)]
    model: Option<String>,
    /// Longest prompt + max_tokens accepted; longer requests get 400 [default: unlimited].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_model_len: Option<u32>,
    /// Seed of all random draws (jitter, faults) [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Relative timing jitter in [0, 1): intervals scaled by U[1-J, 1+J] [default: 0].
    #[arg(long)]
    jitter: Option<f64>,

    /// Enable the batching engine with this many batch slots (vLLM --max-num-seqs).
    #[arg(long, help_heading = "Engine", value_parser = clap::value_parser!(u32).range(1..))]
    max_num_seqs: Option<u32>,
    /// Most requests waiting for a slot; beyond it they are refused [default: 4096].
    #[arg(long, help_heading = "Engine")]
    max_waiting: Option<u32>,
    /// Status when the waiting queue is full: 429 or 503 [default: 429].
    #[arg(long, help_heading = "Engine", value_parser = parse_status)]
    queue_full_status: Option<OverloadStatus>,
    /// Fixed cost of one engine step [default: 5ms].
    #[arg(long, help_heading = "Engine", value_parser = humantime::parse_duration)]
    step_base: Option<Duration>,
    /// Step cost per running request [default: 40us].
    #[arg(long, help_heading = "Engine", value_parser = humantime::parse_duration)]
    step_per_seq: Option<Duration>,
    /// Step cost per uncached prompt token prefilled [default: 25us].
    #[arg(long, help_heading = "Engine", value_parser = humantime::parse_duration)]
    prefill_per_token: Option<Duration>,
    /// Tokens per KV-cache block [default: 16].
    #[arg(long, help_heading = "Engine")]
    block_size: Option<u32>,
    /// KV-cache capacity in blocks [default: 16384].
    #[arg(long, help_heading = "Engine")]
    num_blocks: Option<u32>,
    /// Disable prefix caching.
    #[arg(long, help_heading = "Engine")]
    no_prefix_caching: bool,

    /// Fraction of requests answered 429 [default: 0].
    #[arg(long, help_heading = "Faults")]
    fault_429: Option<f64>,
    /// Fraction of requests answered 500 [default: 0].
    #[arg(long, help_heading = "Faults")]
    fault_500: Option<f64>,
    /// Fraction of requests answered 503 [default: 0].
    #[arg(long, help_heading = "Faults")]
    fault_503: Option<f64>,
    /// Fraction of responses aborted after half their tokens [default: 0].
    #[arg(long, help_heading = "Faults")]
    fault_stream_cut: Option<f64>,
    /// Fraction of requests that hang before their first token [default: 0].
    #[arg(long, help_heading = "Faults")]
    fault_hang: Option<f64>,
    /// Fraction of responses with one malformed chunk [default: 0].
    #[arg(long, help_heading = "Faults")]
    fault_malformed: Option<f64>,
    /// Slow-start period after start [default: 0s].
    #[arg(long, help_heading = "Faults", value_parser = humantime::parse_duration)]
    warmup: Option<Duration>,
    /// Latency multiplier at the start of the warm-up, falling linearly to 1 [default: 1].
    #[arg(long, help_heading = "Faults")]
    warmup_factor: Option<f64>,
}

fn parse_status(s: &str) -> Result<OverloadStatus, String> {
    let code: u16 = s.parse().map_err(|_| format!("not a status code: {s}"))?;
    OverloadStatus::try_from(code)
}

impl Cli {
    /// Whether any engine flag other than `--max-num-seqs` was given.
    fn engine_flags(&self) -> bool {
        self.max_waiting.is_some()
            || self.queue_full_status.is_some()
            || self.step_base.is_some()
            || self.step_per_seq.is_some()
            || self.prefill_per_token.is_some()
            || self.block_size.is_some()
            || self.num_blocks.is_some()
            || self.no_prefix_caching
    }

    /// Defaults, then the file, then the flags; returns the settings and the listen address.
    fn resolve(self) -> anyhow::Result<(SimConfig, SocketAddr)> {
        let mut cfg = SimConfig::default();
        let mut listen = None;
        if let Some(path) = &self.config {
            let file = FileConfig::load(path)?;
            listen = file.listen;
            file.apply_to(&mut cfg);
        }
        set(&mut cfg.ttft, self.ttft);
        set(&mut cfg.itl, self.itl);
        set(&mut cfg.output_tokens, self.output_tokens);
        set(&mut cfg.model, self.model.clone());
        set(&mut cfg.seed, self.seed);
        set(&mut cfg.jitter, self.jitter);
        if self.max_model_len.is_some() {
            cfg.max_model_len = self.max_model_len;
        }
        if let Some(n) = self.max_num_seqs {
            cfg.engine
                .get_or_insert_with(EngineConfig::default)
                .max_num_seqs = n;
        }
        if self.engine_flags() {
            let Some(engine) = cfg.engine.as_mut() else {
                anyhow::bail!(
                    "engine flags need the batching engine: set --max-num-seqs \
                     (or max_num_seqs in the [engine] table of the config file)"
                );
            };
            set(&mut engine.max_waiting, self.max_waiting);
            set(&mut engine.queue_full_status, self.queue_full_status);
            set(&mut engine.step_base, self.step_base);
            set(&mut engine.step_per_seq, self.step_per_seq);
            set(&mut engine.prefill_per_token, self.prefill_per_token);
            set(&mut engine.block_size, self.block_size);
            set(&mut engine.num_blocks, self.num_blocks);
            if self.no_prefix_caching {
                engine.prefix_caching = false;
            }
        }
        let f = &mut cfg.faults;
        set(&mut f.error_429, self.fault_429);
        set(&mut f.error_500, self.fault_500);
        set(&mut f.error_503, self.fault_503);
        set(&mut f.stream_cut, self.fault_stream_cut);
        set(&mut f.hang, self.fault_hang);
        set(&mut f.malformed, self.fault_malformed);
        set(&mut f.warmup, self.warmup);
        set(&mut f.warmup_factor, self.warmup_factor);
        cfg.validate()?;
        let listen = match self.listen.or(listen) {
            Some(addr) => addr,
            None => DEFAULT_LISTEN.parse()?,
        };
        Ok((cfg, listen))
    }
}

/// Overwrites `dst` with `v` when the flag was given.
fn set<T>(dst: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *dst = v;
    }
}

/// Exit code for an invalid configuration (clap uses the same for bad flags).
const EXIT_BAD_CONFIG: i32 = 2;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let (cfg, listen) = match cli.resolve() {
        Ok(v) => v,
        Err(err) => {
            eprintln!("stampede-sim: {err:#}");
            std::process::exit(EXIT_BAD_CONFIG);
        }
    };
    tracing::info!(?cfg, "configuration");
    let shutdown = CancellationToken::new();
    let sim = stampede_sim::start(cfg, listen, shutdown.clone())
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "stampede-sim listening on http://{}", sim.addr)?;
    stdout.flush()?;
    drop(stdout);

    tokio::spawn(handle_signals(shutdown));
    sim.wait().await.context("simulator failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// First signal: graceful shutdown. Second signal: exit immediately.
async fn handle_signals(shutdown: CancellationToken) {
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(err) => {
            tracing::warn!(%err, "cannot install signal handlers; stop the process by other means");
            return;
        }
    };
    signals.recv().await;
    tracing::info!("shutdown signal received, finishing in-flight requests");
    shutdown.cancel();
    signals.recv().await;
    tracing::warn!("second signal received, exiting now");
    std::process::exit(130);
}

/// SIGINT and (on Unix) SIGTERM.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?,
        })
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

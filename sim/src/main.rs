//! `stampede-sim`: run the OpenAI-compatible inference simulator as a standalone server.
//!
//! Prints exactly one line to stdout, `stampede-sim listening on http://ADDR`, once the
//! socket is bound (so `--listen 127.0.0.1:0` works for tests that read the port back).
//! Logs go to stderr. SIGINT/SIGTERM shut down gracefully; a second signal exits at once.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use stampede_sim::SimConfig;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// OpenAI-compatible inference simulator with a fixed TTFT / inter-token latency timeline.
#[derive(Debug, Parser)]
#[command(name = "stampede-sim", version, about)]
struct Cli {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Time to first content token, e.g. `20ms`.
    #[arg(long, default_value = "20ms", value_parser = humantime::parse_duration)]
    ttft: Duration,
    /// Inter-token latency, e.g. `5ms`.
    #[arg(long, default_value = "5ms", value_parser = humantime::parse_duration)]
    itl: Duration,
    /// Tokens per response (a request's max_tokens can lower it).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    output_tokens: u32,
    /// Model name served; other names get 404.
    #[arg(long, default_value = "stampede-sim")]
    model: String,
}

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

    let cfg = SimConfig {
        ttft: cli.ttft,
        itl: cli.itl,
        output_tokens: cli.output_tokens,
        model: cli.model,
    };
    tracing::info!(?cfg, "configuration");
    let shutdown = CancellationToken::new();
    let sim = stampede_sim::start(cfg, cli.listen, shutdown.clone())
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen))?;

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

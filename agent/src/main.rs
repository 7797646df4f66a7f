//! `agent`: join a stampede controller and generate the load it assigns.

use clap::Parser;
use stampede_agent::telemetry::{self, LogFormat};
use stampede_agent::{AgentClock, AgentConfig};
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Join a stampede controller and generate the load it assigns.
#[derive(Debug, Parser)]
#[command(name = "agent", version, about)]
struct Args {
    /// Controller gRPC URL, e.g. http://controller:7600.
    #[arg(long, env = "STAMPEDE_CONTROLLER")]
    controller: String,
    /// Agent id, unique within a run [default: HOST-PID].
    #[arg(long, env = "STAMPEDE_AGENT_ID")]
    id: Option<String>,
    /// Node name reported to the controller [default: host name].
    #[arg(long, env = "NODE_NAME")]
    node_name: Option<String>,
    /// Cores this agent may use [default: available parallelism].
    #[arg(long)]
    cores: Option<u32>,
    /// Give up when the controller has been unreachable this long.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    give_up_after: Duration,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Plain)]
    log_format: LogFormat,
    /// Skew this agent's clock by N milliseconds (for testing clock-offset estimation).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, hide = true)]
    clock_skew_ms: i64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    telemetry::init(args.log_format);
    let host = stampede_agent::host_name();
    let cfg = AgentConfig {
        controller: args.controller,
        agent_id: args
            .id
            .unwrap_or_else(|| format!("{host}-{}", std::process::id())),
        node_name: args.node_name.unwrap_or(host),
        cores: args.cores.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
        }),
        give_up_after: args.give_up_after,
        clock: AgentClock {
            skew_nanos: args.clock_skew_ms.saturating_mul(1_000_000),
        },
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                let _ = tokio::signal::ctrl_c().await;
                shutdown.cancel();
            }
        });
        match stampede_agent::run(cfg, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

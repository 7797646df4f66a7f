//! `agent`: join a stampede controller and generate the load it assigns.

use clap::Parser;
use stampede_agent::security::{ClientSecurity, ClientTls};
use stampede_agent::{AgentClock, AgentConfig};
use stampede_common::security::{MAX_PEM_BYTES, Secret, check_token};
use stampede_runtime::telemetry::{self, LogFormat};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Exit code: the security flags or files cannot be used.
const EXIT_BAD_INPUT: u8 = 2;

/// Join a stampede controller and generate the load it assigns.
#[derive(Debug, Parser)]
#[command(name = "agent", version, about)]
struct Args {
    /// Controller gRPC URL: https://controller:7600 (with --ca, --cert, --key),
    /// or http:// on loopback.
    #[arg(long, env = "STAMPEDE_CONTROLLER")]
    controller: String,
    /// Agent id, unique within a run [default: HOST-PID].
    #[arg(long, env = "STAMPEDE_AGENT_ID")]
    id: Option<String>,
    /// Node name reported to the controller [default: host name].
    #[arg(long, env = "NODE_NAME")]
    node_name: Option<String>,
    /// Cores this agent may use; its share of each phase is in proportion to
    /// them (unless the plan sets agents.shard_weights = "equal")
    /// [default: available parallelism].
    #[arg(long)]
    cores: Option<u32>,
    /// Give up when the controller has been unreachable this long.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    give_up_after: Duration,
    /// PEM file of the CA that signed the controller's certificate (for https://).
    #[arg(long, env = "STAMPEDE_CA")]
    ca: Option<PathBuf>,
    /// PEM file of this agent's client certificate (signed by the controller's CA).
    #[arg(long, env = "STAMPEDE_CERT")]
    cert: Option<PathBuf>,
    /// PEM file of this agent's private key.
    #[arg(long, env = "STAMPEDE_KEY")]
    key: Option<PathBuf>,
    /// File holding the join token. The token itself may also come from the
    /// STAMPEDE_JOIN_TOKEN environment variable; it is never a flag value.
    #[arg(long, env = "STAMPEDE_JOIN_TOKEN_FILE")]
    join_token_file: Option<PathBuf>,
    /// Dial a non-loopback controller over plaintext http:// (unencrypted,
    /// and the join token travels in clear).
    #[arg(long)]
    allow_plaintext: bool,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Plain)]
    log_format: LogFormat,
    /// Serve live Prometheus metrics at http://ADDR/metrics (e.g. 0.0.0.0:9464).
    #[arg(long, env = "STAMPEDE_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Skew this agent's clock by N milliseconds (for testing clock-offset estimation).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, hide = true)]
    clock_skew_ms: i64,
}

fn read_file(flag: &str, path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PEM_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("{flag} {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(format!(
            "{flag} {}: larger than {MAX_PEM_BYTES} bytes",
            path.display()
        ));
    }
    Ok(bytes)
}

/// The security settings from the flags; files are read here, once.
fn security(args: &Args) -> Result<ClientSecurity, String> {
    let tls = match (&args.ca, &args.cert, &args.key) {
        (None, None, None) => None,
        (None, _, _) => return Err("--cert/--key need --ca to verify the controller".into()),
        (Some(ca), cert, key) => {
            if cert.is_some() != key.is_some() {
                return Err("--cert and --key must be given together".into());
            }
            Some(ClientTls {
                ca: read_file("--ca", ca)?,
                cert: cert
                    .as_deref()
                    .map(|p| read_file("--cert", p))
                    .transpose()?,
                key: key
                    .as_deref()
                    .map(|p| read_file("--key", p).map(Secret::new))
                    .transpose()?,
            })
        }
    };
    let from_env = std::env::var_os("STAMPEDE_JOIN_TOKEN");
    let join_token = match (&args.join_token_file, from_env) {
        (Some(_), Some(_)) => {
            return Err(
                "give the join token either in --join-token-file or in STAMPEDE_JOIN_TOKEN, not both"
                    .into(),
            );
        }
        (Some(path), None) => {
            let bytes = read_file("--join-token-file", path)?;
            Some(check_token(&bytes, &path.display().to_string())?)
        }
        (None, Some(v)) => Some(check_token(v.as_encoded_bytes(), "$STAMPEDE_JOIN_TOKEN")?),
        (None, None) => None,
    };
    Ok(ClientSecurity {
        tls,
        join_token,
        allow_plaintext: args.allow_plaintext,
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    // tonic's TLS and the HTTP client both use the ring provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let log_format = args.log_format;
    let security = match security(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let host = stampede_runtime::host_name();
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
        security,
    };
    // Every request in flight holds a connection to the target: a usual soft
    // limit of 1,024 open files would cap the agent's concurrency.
    stampede_runtime::limits::raise_open_files();
    let runtime = match stampede_runtime::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let metrics_listen = args.metrics_listen;
    runtime.block_on(async move {
        // Spans are exported when the environment names a collector; the
        // controller's plan decides which phases are traced.
        let service = telemetry::otlp_configured().then_some("stampede-agent");
        let telemetry = match telemetry::init_traced(log_format, service) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_BAD_INPUT);
            }
        };
        let shutdown = CancellationToken::new();
        if let Some(addr) = metrics_listen {
            let page = || stampede_agent::live::LIVE.render();
            match stampede_runtime::metrics::serve(addr, page, shutdown.clone()).await {
                Ok(bound) => eprintln!("metrics on http://{bound}/metrics"),
                Err(e) => {
                    eprintln!("error: --metrics-listen {addr}: {e}");
                    return ExitCode::from(EXIT_BAD_INPUT);
                }
            }
        }
        // SIGINT or SIGTERM (a pod being deleted): finish gracefully.
        let mut signals = stampede_runtime::signals::Shutdown::new();
        tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                signals.recv().await;
                shutdown.cancel();
            }
        });
        let code = match stampede_agent::run(cfg, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(e.exit_code())
            }
        };
        telemetry.shutdown().await;
        code
    })
}

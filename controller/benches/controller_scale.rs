//! What the controller costs for 100, 1,000 and 10,000 agents.
//!
//! For each N, the controller runs in a child process (this executable again,
//! `controller_scale/controller.rs`): `run::run`, the code behind
//! `controller run`, on a plan of N remote agents and one constant phase of
//! 1 s windows, listening on 127.0.0.1. This process plays the N agents
//! over real gRPC (`controller_scale/fleet.rs`): Hello, clock probes
//! answered, then one window report per agent per second with realistic HDR
//! histograms (`controller_scale/windows.rs`), then PhaseDone. The
//! controller's CPU and memory are read from `/proc/<pid>` of the child, so
//! the fleet's own work is not counted.
//!
//! Printed per N, all measured in this run:
//! - join time (all N welcomed), clock-probe time (first probe received to
//!   the last reply of the 8 rounds), assignment time (last reply to the
//!   last assignment received: the start instant and N assignments) and the
//!   smallest lead an assignment arrived with before the start;
//! - controller CPU per agent-window (µs, from the start to the last
//!   window's acknowledgements), as % of one core at 1 s windows, the
//!   windows each message carried (the controller's choice for N, or
//!   `STAMPEDE_BENCH_REPORT_EVERY`) and the acknowledgement lag (from
//!   sending a message to its acknowledgement, the longest per window)
//!   beside the lag after which a real agent would ask the controller
//!   whether it is there (`stampede_agent::link::ack_deadline`: each agent
//!   would send a Ping call then; this fleet does not);
//! - controller RSS before agents, peak, and per agent (KB);
//! - the results path: window records appended to `windows.jsonl` per
//!   second, rebuilding the run from its record (and the peak RSS of a
//!   process that only rebuilds it) and writing every output, the time from
//!   the run's Stop to `run::run` returning, the size of `stats.txt` and the
//!   lines the controller printed;
//! - ratios against the smallest N (the reference), which show linearity.
//!
//! `cargo bench -p stampede-controller --bench controller_scale`. Knobs:
//! `STAMPEDE_BENCH_AGENTS` (default `100,1000,10000`), `STAMPEDE_BENCH_SECS`
//! (phase length, default 10), `STAMPEDE_BENCH_PER_CONNECTION` (sessions
//! per gRPC connection, 1–8, default 1 as real agents do),
//! `STAMPEDE_BENCH_REQUESTS` (requests per window report, default 300),
//! `STAMPEDE_BENCH_REPORT_EVERY` (windows per message, the plan's
//! `run.report_every` in 1 s windows; default 0: the controller's choice),
//! `STAMPEDE_BENCH_PING_MS` (each connection's HTTP/2 keepalive interval,
//! default the agent's, `stampede_agent::link::HTTP2_PING_INTERVAL`; 1000
//! shows what a ping per agent per second costs) and
//! `STAMPEDE_BENCH_TCP_KEEPALIVE` (1, the default: each connection's socket
//! is set as the agent's, with TCP keepalive probes; 0: no probes).

#[path = "controller_scale/controller.rs"]
mod controller;
#[path = "controller_scale/fleet.rs"]
mod fleet;
#[path = "controller_scale/pieces.rs"]
mod pieces;
#[path = "controller_scale/windows.rs"]
mod windows;

use fleet::{FleetConfig, Timeline};
use stampede_agent::engine::cpu_micros_of;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::Instant;

/// Set in the child that runs the controller.
const ROLE: &str = "STAMPEDE_BENCH_ROLE";
/// The window length of the plan.
const WINDOW: Duration = Duration::from_secs(1);
/// The goal at the largest N: a fraction of one core.
const GOAL_CORE: f64 = 0.20;

struct Config {
    agents: Vec<usize>,
    secs: u64,
    per_connection: usize,
    /// Requests per synthetic window report (mean).
    requests: u64,
    /// Windows per message (`run.report_every`); 0: the controller's choice.
    report_every: u32,
    /// The fleet's HTTP/2 keepalive interval.
    ping: Duration,
    /// Whether the fleet's sockets probe with TCP keepalive, as the agent's.
    tcp_keepalive: bool,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v:?}: not a valid value")),
        Err(_) => Ok(default),
    }
}

impl Config {
    fn from_env() -> Result<Config, String> {
        let list = env_or("STAMPEDE_BENCH_AGENTS", "100,1000,10000".to_string())?;
        let agents = list
            .split(',')
            .map(|s| match s.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!(
                    "STAMPEDE_BENCH_AGENTS={list:?}: {s:?} is not a count"
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let secs = env_or("STAMPEDE_BENCH_SECS", 10u64)?;
        let per_connection = env_or("STAMPEDE_BENCH_PER_CONNECTION", 1usize)?;
        let requests = env_or("STAMPEDE_BENCH_REQUESTS", 300u64)?;
        let report_every = env_or("STAMPEDE_BENCH_REPORT_EVERY", 0u32)?;
        let agent_ping = stampede_agent::link::HTTP2_PING_INTERVAL.as_millis() as u64;
        let ping_ms = env_or("STAMPEDE_BENCH_PING_MS", agent_ping)?;
        let tcp_keepalive = match env_or("STAMPEDE_BENCH_TCP_KEEPALIVE", 1u8)? {
            0 => false,
            1 => true,
            v => {
                return Err(format!(
                    "STAMPEDE_BENCH_TCP_KEEPALIVE={v}: 1 (as the agent) or 0 (no probes)"
                ));
            }
        };
        if !(100..=3_600_000).contains(&ping_ms) {
            return Err(format!(
                "STAMPEDE_BENCH_PING_MS={ping_ms}: 100 to 3600000 ms between keepalive pings"
            ));
        }
        if report_every > stampede_plan::MAX_WINDOWS_PER_REPORT {
            return Err(format!(
                "STAMPEDE_BENCH_REPORT_EVERY={report_every}: 0 (the controller's choice) to {}",
                stampede_plan::MAX_WINDOWS_PER_REPORT
            ));
        }
        if !(1..=100_000).contains(&requests) {
            return Err(format!(
                "STAMPEDE_BENCH_REQUESTS={requests}: 1 to 100000 requests per window"
            ));
        }
        if secs < 2 {
            return Err(format!("STAMPEDE_BENCH_SECS={secs}: at least 2"));
        }
        if !(1..=8).contains(&per_connection) {
            return Err(format!(
                "STAMPEDE_BENCH_PER_CONNECTION={per_connection}: 1 to 8 (the controller's limit)"
            ));
        }
        Ok(Config {
            agents,
            secs,
            per_connection,
            requests,
            report_every,
            ping: Duration::from_millis(ping_ms),
            tcp_keepalive,
        })
    }
}

fn main() -> ExitCode {
    if std::env::var(ROLE).as_deref() == Ok("controller") {
        let mut args = std::env::args_os().skip(1).map(std::path::PathBuf::from);
        let (Some(plan), Some(out)) = (args.next(), args.next()) else {
            eprintln!("controller role: give the plan and the output directory");
            return ExitCode::FAILURE;
        };
        return controller::main(plan, out);
    }
    if std::env::var(ROLE).as_deref() == Ok(controller::REBUILD_ROLE) {
        let Some(dir) = std::env::args_os().nth(1) else {
            eprintln!("rebuild role: give the run directory");
            return ExitCode::FAILURE;
        };
        return controller::rebuild_alone(dir.as_ref());
    }
    let cfg = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("controller_scale: {e}");
            return ExitCode::FAILURE;
        }
    };
    let files = stampede_runtime::limits::raise_open_files();
    let runtime = stampede_runtime::runtime().expect("async runtime");
    let reports = Arc::new(windows::templates(7, cfg.requests));
    let bytes: usize = reports.iter().map(windows::histogram_bytes).sum();
    println!(
        "controller_scale: {} s phase of 1 s windows; {} session(s) per connection; \
         reports carry 8 HDR histograms of ~{} requests ({:.1} KB encoded); \
         keepalive pings every {} ms; TCP keepalive {}; open-files limit {}",
        cfg.secs,
        cfg.per_connection,
        cfg.requests,
        bytes as f64 / reports.len() as f64 / 1024.0,
        cfg.ping.as_millis(),
        if cfg.tcp_keepalive {
            "as the agent's"
        } else {
            "off"
        },
        files.map_or("unlimited".into(), |n| n.to_string()),
    );
    let pieces = match pieces::measure(&reports) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("controller_scale: timing the run loop's pieces: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut rows = Vec::new();
    for &n in &cfg.agents {
        match runtime.block_on(measure(n, &cfg, reports.clone())) {
            Ok(row) => {
                row.print_raw();
                rows.push(row);
            }
            Err(e) => {
                eprintln!("controller_scale: N={n}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    print_tables(&rows);
    pieces.print();
    ExitCode::SUCCESS
}

/// Everything measured for one N.
struct Row {
    n: usize,
    windows: u32,
    /// Windows per message, as assigned.
    windows_per_report: u32,
    /// Reports acknowledged (N × windows when the controller kept up).
    acked: usize,
    failed_sessions: usize,
    /// Sessions dialed again after failing before their phase.
    retries: usize,
    join: Duration,
    probes: Duration,
    assign: Duration,
    min_lead_ms: f64,
    /// Controller CPU and wall time from the start to the last acknowledgement.
    cpu_s: f64,
    wall_s: f64,
    fleet_cpu_s: f64,
    ack_lag_ms: Vec<f64>,
    rss_base_kb: u64,
    rss_joined_kb: u64,
    rss_peak_kb: u64,
    /// From every session's end (the run's Stop) to `run::run` returning.
    stop_to_done_s: f64,
    stdout_lines: u64,
    stdout_bytes: u64,
    bench: serde_json::Value,
}

impl Row {
    /// Controller CPU per acknowledged report.
    fn us_per_agent_window(&self) -> f64 {
        self.cpu_s * 1e6 / self.acked.max(1) as f64
    }

    fn kept_up(&self) -> bool {
        self.acked >= self.n * self.windows as usize
    }

    fn core_at_1s(&self) -> f64 {
        self.us_per_agent_window() * self.n as f64 / WINDOW.as_micros() as f64
    }

    fn kb_per_agent(&self) -> f64 {
        self.rss_peak_kb.saturating_sub(self.rss_base_kb) as f64 / self.n as f64
    }

    fn figure(&self, key: &str) -> f64 {
        self.bench[key].as_f64().unwrap_or(f64::NAN)
    }

    fn print_raw(&self) {
        println!(
            "  N={}: joined in {:.2} s ({} redials), run {:.1} s, controller CPU {:.2} s over \
             {:.1} s, fleet CPU {:.2} s, {} of {} reports acknowledged, {} sessions failed",
            self.n,
            self.join.as_secs_f64(),
            self.retries,
            self.figure("run_s"),
            self.cpu_s,
            self.wall_s,
            self.fleet_cpu_s,
            self.acked,
            self.n * self.windows as usize,
            self.failed_sessions
        );
    }
}

/// The plan the controller runs: N remote agents, one constant phase. The
/// target is never contacted (the agents are simulated).
fn plan_text(n: usize, secs: u64, report_every: u32) -> String {
    let every = match report_every {
        0 => String::new(),
        k => format!("report_every = \"{k}s\"\n"),
    };
    format!(
        r#"[run]
name = "controller-scale"
window = "1s"
{every}[agents]
remote = {n}
join_timeout = "300s"
[target]
url = "http://127.0.0.1:9"
model = "bench"
[[phase]]
name = "steady"
kind = "constant"
rate = {n}.0
duration = "{secs}s"
"#
    )
}

/// Resident and peak resident memory of `pid` (KB).
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn wait_for(
    what: &str,
    limit: Duration,
    tl: &Timeline,
    done: impl Fn() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            let errors = tl.errors.lock().expect("not poisoned");
            let first: Vec<&String> = errors.iter().take(3).collect();
            return Err(format!(
                "{what}: not within {limit:?} ({} session errors, first: {first:?})",
                errors.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// What the controller printed: lines, bytes, when its run was over, and
/// its `BENCH` figures.
struct Printed {
    lines: u64,
    bytes: u64,
    run_done: Option<Instant>,
    bench: Option<serde_json::Value>,
}

/// Run the controller for `n` agents and measure it.
async fn measure(
    n: usize,
    cfg: &Config,
    reports: Arc<Vec<stampede_common::proto::WindowReport>>,
) -> Result<Row, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let plan = dir.path().join("plan.toml");
    std::fs::write(&plan, plan_text(n, cfg.secs, cfg.report_every)).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = tokio::process::Command::new(exe)
        .env(ROLE, "controller")
        .arg(&plan)
        .arg(dir.path().join("run"))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = child.id().ok_or("the controller exited at once")?;
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let printed = tokio::spawn(read_stdout(stdout, addr_tx));
    let url = tokio::time::timeout(Duration::from_secs(60), addr_rx)
        .await
        .map_err(|_| "the controller did not start listening in 60 s")?
        .map_err(|_| "the controller exited before listening")?;
    let (rss_base_kb, _) = memory(pid);
    let windows = u32::try_from(cfg.secs).unwrap_or(u32::MAX);
    let (tl, mut fleet) = fleet::start(FleetConfig {
        url,
        agents: n,
        per_connection: cfg.per_connection,
        windows: windows as usize,
        reports,
        ping: cfg.ping,
        tcp_keepalive: cfg.tcp_keepalive,
    });
    let limit = Duration::from_secs(300);
    wait_for("all agents welcomed", limit, &tl, || {
        tl.welcomed.load(Ordering::Relaxed) >= n
    })
    .await?;
    let (rss_joined_kb, _) = memory(pid);
    wait_for("all agents assigned", limit, &tl, || {
        tl.assigned.load(Ordering::Relaxed) >= n
    })
    .await?;
    let start = start_instant(&tl);
    tokio::time::sleep_until(start).await;
    let (cpu0, fleet0) = (cpu_micros_of(&pid.to_string()), cpu_micros_of("self"));
    let expected = n * windows as usize;
    let phase = Duration::from_secs(cfg.secs + 60);
    // Not an error when it falls behind or loses sessions: what it managed
    // is measured and printed as such.
    let _ = wait_for("every window acknowledged", phase, &tl, || {
        tl.acked() >= expected || tl.ended.load(Ordering::Relaxed) >= n
    })
    .await;
    let acked = tl.acked();
    let wall_s = start.elapsed().as_secs_f64();
    let (cpu1, fleet1) = (cpu_micros_of(&pid.to_string()), cpu_micros_of("self"));
    let (_, rss_peak_kb) = memory(pid);
    let ack_lag_ms = (0..windows as usize)
        .map(|w| {
            if tl.acks[w].0.load(Ordering::Relaxed) < n {
                return f64::NAN;
            }
            Timeline::at(&tl.acks[w].1).as_secs_f64() * 1e3
        })
        .collect();
    wait_for("every session ended", limit, &tl, || {
        tl.ended.load(Ordering::Relaxed) >= n
    })
    .await?;
    let stopped = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(600), child.wait())
        .await
        .map_err(|_| "the controller did not exit within 600 s of the stop")?
        .map_err(|e| e.to_string())?;
    while fleet.join_next().await.is_some() {}
    let printed = printed.await.map_err(|e| e.to_string())?;
    let stop_to_done_s = printed
        .run_done
        .map_or(f64::NAN, |t| t.duration_since(stopped).as_secs_f64());
    if !status.success() {
        return Err(format!("the controller failed: {status}"));
    }
    let bench = printed
        .bench
        .ok_or("the controller printed no BENCH line")?;
    let errors = tl.errors.lock().expect("not poisoned");
    if let Some(first) = errors.first() {
        println!(
            "  N={n}: {} sessions failed, the first: {first}",
            errors.len()
        );
    }
    Ok(Row {
        n,
        windows,
        windows_per_report: tl.windows_per_report.load(Ordering::Relaxed),
        acked,
        failed_sessions: errors.len(),
        retries: tl.retries.load(Ordering::Relaxed),
        join: Timeline::at(&tl.last_welcome),
        probes: Timeline::at(&tl.last_reply)
            .saturating_sub(Duration::from_nanos(tl.first_probe.load(Ordering::Relaxed))),
        assign: Timeline::at(&tl.last_assignment).saturating_sub(Timeline::at(&tl.last_reply)),
        min_lead_ms: tl.min_lead_nanos.load(Ordering::Relaxed) as f64 / 1e6,
        cpu_s: cpu1.saturating_sub(cpu0) as f64 / 1e6,
        wall_s,
        fleet_cpu_s: fleet1.saturating_sub(fleet0) as f64 / 1e6,
        ack_lag_ms,
        rss_base_kb,
        rss_joined_kb,
        rss_peak_kb,
        stop_to_done_s,
        stdout_lines: printed.lines,
        stdout_bytes: printed.bytes,
        bench,
    })
}

/// The phase's start in this process's clock (the controller's clock: same host).
fn start_instant(tl: &Timeline) -> Instant {
    let start_unix = tl.start_unix.load(Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let ahead = start_unix - i64::try_from(now.as_nanos()).unwrap_or(i64::MAX);
    Instant::now() + Duration::from_nanos(u64::try_from(ahead).unwrap_or(0))
}

/// Count what the controller prints; hand over the address it listens on.
async fn read_stdout(
    stdout: tokio::process::ChildStdout,
    addr: tokio::sync::oneshot::Sender<String>,
) -> Printed {
    let mut lines = BufReader::new(stdout).lines();
    let mut addr = Some(addr);
    let mut out = Printed {
        lines: 0,
        bytes: 0,
        run_done: None,
        bench: None,
    };
    while let Ok(Some(line)) = lines.next_line().await {
        if line == controller::RUN_DONE {
            out.run_done = Some(Instant::now());
            continue;
        }
        if let Some(json) = line.strip_prefix("BENCH ") {
            out.bench = serde_json::from_str(json).ok();
            continue;
        }
        out.lines += 1;
        out.bytes += line.len() as u64 + 1;
        if let Some(url) = line.strip_prefix("controller listening on ")
            && let Some(tx) = addr.take()
        {
            let _ = tx.send(url.trim().to_string());
        }
    }
    out
}

fn print_tables(rows: &[Row]) {
    let Some(reference) = rows.first() else {
        return;
    };
    let ratio = |v: f64, r: f64| if r > 0.0 { v / r } else { f64::NAN };
    println!();
    println!("joining and starting");
    println!("       N    join s  probes s  assign s  min lead ms");
    for r in rows {
        println!(
            "{:>8}  {:>8.2}  {:>8.2}  {:>8.3}  {:>11.1}",
            r.n,
            r.join.as_secs_f64(),
            r.probes.as_secs_f64(),
            r.assign.as_secs_f64(),
            r.min_lead_ms
        );
    }
    println!();
    println!("merging windows (controller CPU from the start to the last acknowledgement)");
    println!(
        "       N  windows/msg  µs/agent-window  vs N={:<6} core at 1 s  ack lag p50 ms  max ms  ping after s  fleet cores",
        reference.n
    );
    for r in rows {
        let mut lags = r.ack_lag_ms.clone();
        lags.sort_by(f64::total_cmp);
        println!(
            "{:>8}  {:>11}  {:>15.1}  {:>10.2}x  {:>10.1}%  {:>14.1}  {:>6.1}  {:>12.1}  {:>11.2}",
            r.n,
            r.windows_per_report,
            r.us_per_agent_window(),
            ratio(r.us_per_agent_window(), reference.us_per_agent_window()),
            r.core_at_1s() * 100.0,
            lags.get(lags.len() / 2).copied().unwrap_or(f64::NAN),
            lags.last().copied().unwrap_or(f64::NAN),
            stampede_agent::link::ack_deadline(WINDOW * r.windows_per_report).as_secs_f64(),
            r.fleet_cpu_s / r.wall_s
        );
    }
    print_memory_and_results(rows, reference);
    if let Some(big) = rows.iter().max_by_key(|r| r.n) {
        let pct = big.core_at_1s() * 100.0;
        println!();
        println!(
            "goal: {} agents at 1 s windows under {:.0}% of a core: {pct:.1}% ({})",
            big.n,
            GOAL_CORE * 100.0,
            match (big.kept_up(), big.core_at_1s() < GOAL_CORE) {
                (true, true) => "met",
                (true, false) => "NOT met",
                (false, _) => "NOT met: the controller fell behind",
            }
        );
    }
}

fn print_memory_and_results(rows: &[Row], reference: &Row) {
    let mb = |kb: u64| kb as f64 / 1024.0;
    println!();
    println!("controller memory (RSS)");
    println!(
        "       N  before MB  joined MB  peak MB  KB/agent  vs N={}",
        reference.n
    );
    for r in rows {
        println!(
            "{:>8}  {:>9.1}  {:>9.1}  {:>7.1}  {:>8.1}  {:>7.2}x",
            r.n,
            mb(r.rss_base_kb),
            mb(r.rss_joined_kb),
            mb(r.rss_peak_kb),
            r.kb_per_agent(),
            r.kb_per_agent() / reference.kb_per_agent()
        );
    }
    println!();
    println!("results");
    println!(
        "       N   windows  jsonl MB  append win/s  rebuild s  rebuild win/s  rebuild peak MB  outputs s  stop→done s  stats.txt KB  printed lines (KB)"
    );
    for r in rows {
        let windows = r.figure("windows");
        println!(
            "{:>8}  {:>8}  {:>8.1}  {:>12.0}  {:>9.2}  {:>13.0}  {:>15.1}  {:>9.2}  {:>11.2}  {:>12.1}  {:>16}",
            r.n,
            windows,
            r.figure("jsonl_bytes") / 1048576.0,
            windows / r.figure("append_s"),
            r.figure("rebuild_s"),
            windows / r.figure("rebuild_s"),
            r.figure("rebuild_peak_kb") / 1024.0,
            r.figure("outputs_s"),
            r.stop_to_done_s,
            r.figure("stats_bytes") / 1024.0,
            format!("{} ({:.0})", r.stdout_lines, r.stdout_bytes as f64 / 1024.0)
        );
    }
}

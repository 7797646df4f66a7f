//! What the simulator itself costs, so the agent benchmark can show it is not the bottleneck.
//!
//! Runs the release `stampede-sim` binary as a child process on loopback and drives it with
//! a minimal keep-alive HTTP/1.1 client (raw TCP, no parsing beyond finding the end of the
//! stream), reading the child's CPU time from `/proc/<pid>/stat`. Prints:
//! 1. CPU-seconds per 1,000 streamed 64-token requests, fixed timeline and batching engine;
//! 2. closed-loop steps of rising concurrency: achieved request rate, TTFT p50/p99, simulator
//!    CPU; the highest rate at which the simulator still keeps its timeline (≥ 80% of the rate
//!    the configured latencies allow, no failures), and the CPU-bound estimate
//!    `cores / CPU-seconds per request`.
//!
//! `cargo bench -p stampede-sim --bench sim_cost` (bounded to about a minute). The client runs
//! on the same cores, so the ceiling is a lower bound for the simulator alone.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

const BIN: &str = env!("CARGO_BIN_EXE_stampede-sim");
const TTFT: Duration = Duration::from_millis(20);
const ITL: Duration = Duration::from_millis(5);
const TOKENS: u32 = 64;

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of `pid` (or "self"), in seconds.
fn cpu_seconds(pid: &str, ticks: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (get(11) + get(12)) / ticks
}

struct Sim {
    child: Child,
    addr: SocketAddr,
}

impl Sim {
    fn start(extra: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--ttft", "20ms", "--itl", "5ms"])
            .args(["--output-tokens", &TOKENS.to_string()])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn stampede-sim (build it with cargo bench)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("startup line");
        let addr = line
            .trim()
            .strip_prefix("stampede-sim listening on http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected startup line {line:?}"));
        Self { child, addr }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const BODY: &str = r#"{"prompt":"hello there simulator","stream":true}"#;

/// One streamed request on a keep-alive connection; returns its TTFT (first token chunk).
async fn request(conn: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Duration> {
    let sent = Instant::now();
    let head = format!(
        "POST /v1/completions HTTP/1.1\r\nhost: sim\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    conn.write_all(head.as_bytes()).await?;
    buf.clear();
    let mut ttft = None;
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if ttft.is_none() && memfind(buf, b"\"text\"") {
            ttft = Some(sent.elapsed());
        }
        if buf.ends_with(b"data: [DONE]\n\n\r\n0\r\n\r\n") {
            return Ok(ttft.unwrap_or_else(|| sent.elapsed()));
        }
        if !buf.starts_with(b"HTTP/1.1 200") && buf.len() > 12 {
            return Err(std::io::Error::other("non-200 response"));
        }
    }
}

fn memfind(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Shared tallies of one load step.
#[derive(Default)]
struct Tally {
    done: AtomicU64,
    failed: AtomicU64,
    ttfts: Mutex<Vec<Duration>>,
}

/// `clients` closed-loop users for `warm + window`; tallies requests completed in `window`.
async fn closed_loop(
    addr: SocketAddr,
    clients: usize,
    warm: Duration,
    window: Duration,
    pid: &str,
    ticks: f64,
) -> Step {
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (stop, measuring, tally) = (stop.clone(), measuring.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(mut conn) = TcpStream::connect(addr).await else {
                tally.failed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let _ = conn.set_nodelay(true);
            let mut buf = Vec::with_capacity(32 * 1024);
            let mut local = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let counted = measuring.load(Ordering::Relaxed);
                match request(&mut conn, &mut buf).await {
                    Ok(ttft) if counted && measuring.load(Ordering::Relaxed) => {
                        tally.done.fetch_add(1, Ordering::Relaxed);
                        local.push(ttft);
                    }
                    Ok(_) => {}
                    Err(_) => {
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
            tally.ttfts.lock().await.extend(local);
        }));
    }
    tokio::time::sleep(warm).await;
    let cpu0 = cpu_seconds(pid, ticks);
    let t0 = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(window).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid, ticks) - cpu0;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let mut ttfts = std::mem::take(&mut *tally.ttfts.lock().await);
    ttfts.sort();
    let pct = |p: f64| {
        ttfts
            .get(((ttfts.len() as f64 * p) as usize).min(ttfts.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let done = tally.done.load(Ordering::Relaxed);
    Step {
        clients,
        rate: done as f64 / elapsed,
        done,
        failed: tally.failed.load(Ordering::Relaxed),
        p50: pct(0.5),
        p99: pct(0.99),
        cpu_cores: cpu / elapsed,
        cpu_per_1000: if done > 0 {
            cpu / done as f64 * 1000.0
        } else {
            f64::NAN
        },
    }
}

struct Step {
    clients: usize,
    rate: f64,
    done: u64,
    failed: u64,
    p50: Duration,
    p99: Duration,
    cpu_cores: f64,
    cpu_per_1000: f64,
}

impl Step {
    fn print(&self) {
        println!(
            "  {:>6} streams  {:>8.0} req/s (ideal {:>6.0})  ttft p50 {:>7.1} ms  p99 {:>7.1} ms  sim CPU {:.2} cores  {:.3} CPU-s/1000 req  failed {}",
            self.clients,
            self.rate,
            self.ideal_rate(),
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.cpu_cores,
            self.cpu_per_1000,
            self.failed
        );
    }

    /// The rate `clients` closed-loop users reach if every request takes exactly its
    /// configured time (TTFT + 63 × ITL = 335 ms).
    fn ideal_rate(&self) -> f64 {
        self.clients as f64 / (TTFT + ITL * (TOKENS - 1)).as_secs_f64()
    }

    /// The simulator kept its timeline: ≥ 80% of the ideal rate, no failures.
    fn sustained(&self) -> bool {
        self.failed == 0 && self.done > 0 && self.rate >= 0.8 * self.ideal_rate()
    }
}

fn main() {
    let ticks = clock_ticks();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    println!(
        "stampede-sim cost: {TOKENS}-token streams, ttft 20ms, itl 5ms, HTTP/1.1 keep-alive, loopback"
    );
    println!(
        "machine: {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let mut fixed_cost = f64::NAN;
    println!("\n1. CPU per 1,000 streamed requests (500 streams, 4 s window)");
    for (name, args) in [
        ("fixed timeline", &[][..]),
        (
            "batching engine",
            &[
                "--max-num-seqs",
                "100000",
                "--max-waiting",
                "100000",
                "--step-base",
                "5ms",
                "--step-per-seq",
                "0s",
                "--prefill-per-token",
                "0s",
                "--num-blocks",
                "1000000",
            ][..],
        ),
    ] {
        let sim = Sim::start(args);
        let client0 = cpu_seconds("self", ticks);
        let step = rt.block_on(closed_loop(
            sim.addr,
            500,
            Duration::from_secs(1),
            Duration::from_secs(4),
            &sim.pid(),
            ticks,
        ));
        let client = cpu_seconds("self", ticks) - client0;
        if fixed_cost.is_nan() {
            fixed_cost = step.cpu_per_1000;
        }
        println!(
            "  {name:<16} {:.3} CPU-s per 1000 requests ({} requests, {:.0} req/s, sim {:.2} cores, client {:.2} CPU-s)",
            step.cpu_per_1000, step.done, step.rate, step.cpu_cores, client
        );
    }

    println!(
        "\n2. Ceiling: closed-loop streams, rising (fixed timeline; sustained = ≥ 80% of ideal rate, no failures)"
    );
    let sim = Sim::start(&[]);
    let mut best: Option<Step> = None;
    for clients in [500, 1000, 2000, 4000, 8000, 16000] {
        if started.elapsed() > Duration::from_secs(90) {
            break;
        }
        let step = rt.block_on(closed_loop(
            sim.addr,
            clients,
            Duration::from_secs(2),
            Duration::from_secs(3),
            &sim.pid(),
            ticks,
        ));
        step.print();
        let ok = step.sustained();
        if ok && best.as_ref().is_none_or(|b| step.rate > b.rate) {
            best = Some(step);
        } else if !ok {
            break;
        }
    }
    match best {
        Some(b) => println!(
            "\nhighest sustained rate: {:.0} req/s with {} concurrent streams (sim CPU {:.2} cores)",
            b.rate, b.clients, b.cpu_cores
        ),
        None => println!("\nno step sustained"),
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    println!(
        "CPU-bound ceiling estimate (fixed timeline): {cores:.0} cores / {fixed_cost:.3} CPU-s per 1000 = {:.0} req/s",
        cores / fixed_cost * 1000.0
    );
    println!("bench took {:.0} s", started.elapsed().as_secs_f64());
}

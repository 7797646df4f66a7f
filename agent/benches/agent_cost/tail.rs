//! 2b. Where the agent's TTFT tail comes from, at the rates where it grows.
//!
//! At each rate of `STAMPEDE_BENCH_TAIL_RATES` (default 1000,1500,2000) the
//! bare client, the agent, and the agent recording every request alternate
//! `STAMPEDE_BENCH_REPEATS` times. Each run's TTFT overhead over the
//! simulator's own first-token latency (same quantile, same run) is printed;
//! the recorded run also splits each request's TTFT into its schedule lag
//! (intended → picked up to be written) and what came after (picked up →
//! first token), so the p99 of each part can be set against the overhead.
//! Every run also prints how long the process's threads waited for a core.
//! The medians over the repeats are compared with the goals: the agent's
//! p99 overhead within 0.5 ms of the bare client's, its p50 under 0.2 ms.

use super::*;
use std::collections::BTreeMap;

/// One run's figures (ms).
#[derive(Debug, Clone, Copy, Default)]
struct Tail {
    ovh50: f64,
    ovh99: f64,
    /// Recorded runs only: schedule lag p99, and picked-up → first token
    /// p99 minus the server's p99.
    lag99: f64,
    after99: f64,
    /// Recorded runs only: TTFT p99 minus the server's p99 of the requests
    /// intended in the run's first second (while the connections are being
    /// opened) and of the rest.
    first_second99: f64,
    later99: f64,
    /// Time this process's threads spent runnable but waiting for a core,
    /// per second of the run (ms/s), from `/proc/self/task/*/schedstat`.
    waited: f64,
}

/// Total time (ns) this process's live threads have waited on a run queue
/// (a thread that exits takes its share with it; 0 without `/proc`).
fn run_queue_wait_nanos() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Histograms (µs) of `records`: schedule lag, picked-up → first token,
/// and TTFT of the requests intended in the first second and after it.
fn split(records: &[proto::RequestRecord]) -> [Histogram<u64>; 4] {
    let mut h = [(); 4].map(|()| new_histogram());
    for r in records {
        let Some(first) = r.first_token_micros else {
            continue;
        };
        let _ = h[0].record(r.sent_micros.saturating_sub(r.intended_micros));
        let _ = h[1].record(first.saturating_sub(r.sent_micros));
        let part = if r.intended_micros < 1_000_000 { 2 } else { 3 };
        let _ = h[part].record(first.saturating_sub(r.intended_micros));
    }
    h
}

fn one(rt: &tokio::runtime::Runtime, sim: &Sim, who: &str, rate: f64, secs: u64) -> Tail {
    rt.block_on(sim.reset_latency());
    let waited_before = run_queue_wait_nanos();
    let (ttft, records) = match who {
        "bare" => (
            rt.block_on(bare(&sim.url, rate, secs, true)).first_token,
            Vec::new(),
        ),
        "agent" => (rt.block_on(agent(&sim.url, rate, secs)).ttft, Vec::new()),
        _ => {
            let run = rt.block_on(agent_with(&sim.url, rate, secs, |a| {
                a.record_sample_ratio = 1.0;
            }));
            (run.ttft, run.records)
        }
    };
    let waited = run_queue_wait_nanos().saturating_sub(waited_before) as f64 / 1e6 / secs as f64;
    let server = rt.block_on(sim.first_token());
    let mut t = Tail {
        ovh50: ms(&ttft, 0.5) - server.p50_ms,
        ovh99: ms(&ttft, 0.99) - server.p99_ms,
        waited,
        ..Tail::default()
    };
    if !records.is_empty() {
        let [lag, after, first, later] = split(&records);
        let p99 = |h: &Histogram<u64>| h.value_at_quantile(0.99) as f64 / 1e3;
        t.lag99 = p99(&lag);
        t.after99 = p99(&after) - server.p99_ms;
        t.first_second99 = p99(&first) - server.p99_ms;
        t.later99 = p99(&later) - server.p99_ms;
    }
    println!(
        "   {rate:>6.0} {who:<15} overhead p50 {:>6.3} ms  p99 {:>6.3} ms  waiting for a core {:>5.1} ms/s{}",
        t.ovh50,
        t.ovh99,
        t.waited,
        if records.is_empty() {
            String::new()
        } else {
            format!(
                "  lag p99 {:>6.3} ms  after pick-up p99 {:>6.3} ms ({} records); overhead p99 in the first second {:>6.3} ms, after it {:>6.3} ms",
                t.lag99,
                t.after99,
                records.len(),
                t.first_second99,
                t.later99,
            )
        }
    );
    t
}

/// Section 2b.
pub fn tail(rt: &tokio::runtime::Runtime, sim: &Sim, secs: u64, reps: u64) {
    let rates: Vec<f64> = std::env::var("STAMPEDE_BENCH_TAIL_RATES")
        .unwrap_or_else(|_| "1000,1500,2000".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    println!();
    println!(
        "2b. TTFT tail at {rates:?} req/s, {secs} s per run: bare, agent and agent recording every request alternating {reps} times"
    );
    for rate in rates {
        let mut runs: BTreeMap<&str, Vec<Tail>> = BTreeMap::new();
        for _ in 0..reps {
            for who in ["bare", "agent", "agent+records"] {
                runs.entry(who)
                    .or_default()
                    .push(one(rt, sim, who, rate, secs));
            }
        }
        let med = |who: &str, f: fn(&Tail) -> f64| median(runs[who].iter().map(f).collect());
        let (b99, a99, a50) = (
            med("bare", |t| t.ovh99),
            med("agent", |t| t.ovh99),
            med("agent", |t| t.ovh50),
        );
        println!(
            "   {rate:>6.0} medians: bare p99 {b99:.3} ms, agent p99 {a99:.3} ms (Δ {:+.3} ms, goal ≤ 0.5), agent p50 {a50:.3} ms (goal < 0.2); recorded: lag p99 {:.3} ms, after pick-up p99 {:.3} ms; waiting for a core: bare {:.1}, agent {:.1} ms/s",
            a99 - b99,
            med("agent+records", |t| t.lag99),
            med("agent+records", |t| t.after99),
            med("bare", |t| t.waited),
            med("agent", |t| t.waited),
        );
    }
}

//! 2b. Where the agent's TTFT tail comes from, at the rates where it grows.
//!
//! At each rate of `STAMPEDE_BENCH_TAIL_RATES` (default 1000,1500,2000) the
//! bare client, the agent, and the agent recording every request alternate
//! `STAMPEDE_BENCH_REPEATS` times. Each run's TTFT overhead over the
//! simulator's own first-token latency (same quantile, same run) is printed;
//! the recorded run also splits each request's TTFT into its schedule lag
//! (intended → picked up to be written) and what came after (picked up →
//! first token), so the p99 of each part can be set against the overhead.
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
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// (schedule lag, picked-up → first token) histograms (µs) of `records`.
fn split(records: &[proto::RequestRecord]) -> (Histogram<u64>, Histogram<u64>) {
    let (mut lag, mut after) = (new_histogram(), new_histogram());
    for r in records {
        let Some(first) = r.first_token_micros else {
            continue;
        };
        let _ = lag.record(r.sent_micros.saturating_sub(r.intended_micros));
        let _ = after.record(first.saturating_sub(r.sent_micros));
    }
    (lag, after)
}

fn one(rt: &tokio::runtime::Runtime, sim: &Sim, who: &str, rate: f64, secs: u64) -> Tail {
    rt.block_on(sim.reset_latency());
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
    let server = rt.block_on(sim.first_token());
    let mut t = Tail {
        ovh50: ms(&ttft, 0.5) - server.p50_ms,
        ovh99: ms(&ttft, 0.99) - server.p99_ms,
        ..Tail::default()
    };
    if !records.is_empty() {
        let (lag, after) = split(&records);
        t.lag99 = lag.value_at_quantile(0.99) as f64 / 1e3;
        t.after99 = after.value_at_quantile(0.99) as f64 / 1e3 - server.p99_ms;
    }
    println!(
        "   {rate:>6.0} {who:<15} overhead p50 {:>6.3} ms  p99 {:>6.3} ms{}",
        t.ovh50,
        t.ovh99,
        if records.is_empty() {
            String::new()
        } else {
            format!(
                "  lag p99 {:>6.3} ms  after pick-up p99 {:>6.3} ms ({} records)",
                t.lag99,
                t.after99,
                records.len()
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
            "   {rate:>6.0} medians: bare p99 {b99:.3} ms, agent p99 {a99:.3} ms (Δ {:+.3} ms, goal ≤ 0.5), agent p50 {a50:.3} ms (goal < 0.2); recorded: lag p99 {:.3} ms, after pick-up p99 {:.3} ms",
            a99 - b99,
            med("agent+records", |t| t.lag99),
            med("agent+records", |t| t.after99),
        );
    }
}

//! The engine model against its documented capacity formula, in paused (virtual) time:
//! deterministic, and seconds of simulated load cost milliseconds.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::Engine;
use crate::config::EngineConfig;
use crate::faults::{FaultConfig, Faults};
use crate::hrtimer::Clock;
use crate::stats::ModelStats;

const PROMPT: u32 = 50;
const OUTPUT: u32 = 32;

fn cfg() -> EngineConfig {
    EngineConfig {
        max_num_seqs: 8,
        max_waiting: 100_000,
        step_base: Duration::from_millis(4),
        step_per_seq: Duration::from_micros(500),
        prefill_per_token: Duration::from_micros(20),
        num_blocks: 100_000,
        ..EngineConfig::default()
    }
}

/// `docs/simulator.md`: λ_max = 1 / ((step_base + step_per_seq·N)·L/N + prefill_per_token·P).
fn predicted_capacity(c: &EngineConfig, prompt: u32, output: u32) -> f64 {
    let n = f64::from(c.max_num_seqs);
    let step = c.step_base.as_secs_f64() + c.step_per_seq.as_secs_f64() * n;
    1.0 / (step * f64::from(output) / n + c.prefill_per_token.as_secs_f64() * f64::from(prompt))
}

fn engine(c: EngineConfig) -> (Engine, Arc<ModelStats>, CancellationToken) {
    let stats = Arc::new(ModelStats::default());
    let faults = Arc::new(Faults::new(FaultConfig::default(), 0));
    let stop = CancellationToken::new();
    // Paused time drives tokio's timer only.
    let e = Engine::new(
        c,
        0.0,
        1,
        Arc::clone(&stats),
        faults,
        stop.clone(),
        Clock::Tokio,
    );
    (e, stats, stop)
}

/// A prompt no other request shares (so nothing hits the prefix cache).
fn unique_prompt(i: u32) -> Vec<u32> {
    (0..PROMPT).map(|t| i * 1000 + t).collect()
}

/// Submits at `arrival`, waits for every token; returns the TTFT.
async fn one_request(e: Engine, i: u32, arrival: Instant) -> Duration {
    sleep_until(arrival).await;
    let mut h = e
        .submit(&unique_prompt(i), OUTPUT, arrival, None)
        .expect("queued");
    h.next_token().await.expect("first token");
    let ttft = arrival.elapsed();
    assert!(h.finish().await);
    ttft
}

/// Mean TTFT of the second half of `n` requests arriving every `1/rate` seconds.
async fn open_loop_ttft(rate: f64, n: u32) -> Duration {
    let (e, _, stop) = engine(cfg());
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let at = t0 + Duration::from_secs_f64(f64::from(i) / rate);
            tokio::spawn(one_request(e.clone(), i, at))
        })
        .collect();
    let mut ttfts = Vec::new();
    for t in tasks {
        ttfts.push(t.await.expect("task"));
    }
    stop.cancel();
    let late = &ttfts[ttfts.len() / 2..];
    late.iter().sum::<Duration>() / late.len() as u32
}

#[tokio::test(start_paused = true)]
async fn knee_is_at_the_predicted_rate() {
    let capacity = predicted_capacity(&cfg(), PROMPT, OUTPUT);
    assert!((capacity - 30.30).abs() < 0.01, "{capacity}");
    let unloaded = open_loop_ttft(capacity * 0.3, 100).await;
    // Sweep the offered rate in 2.5% steps; the knee is the first rate at which TTFT blows
    // up (the waiting queue grows without bound).
    let mut knee = None;
    let mut report = Vec::new();
    for step in 0..=20 {
        let rate = capacity * (0.75 + 0.025 * f64::from(step));
        let ttft = open_loop_ttft(rate, 600).await;
        report.push(format!("{rate:.1}/s → {ttft:?}"));
        if ttft > unloaded * 5 {
            knee = Some(rate);
            break;
        }
    }
    let knee = knee.unwrap_or_else(|| panic!("no knee found: {report:#?}"));
    eprintln!("predicted {capacity:.2}/s, knee {knee:.2}/s, unloaded {unloaded:?}: {report:#?}");
    let err = (knee - capacity).abs() / capacity;
    assert!(
        err <= 0.10,
        "knee {knee:.1}/s vs predicted {capacity:.1}/s ({:.1}% off): {report:#?}",
        err * 100.0
    );
    // Below the knee TTFT stays near the unloaded value.
    let below = open_loop_ttft(capacity * 0.9, 600).await;
    assert!(below < unloaded * 3, "{below:?} vs unloaded {unloaded:?}");
}

/// Closed loop: `clients` users each send the next request as soon as the last finished.
async fn closed_loop_ttft(clients: u32, rounds: u32) -> Duration {
    let (e, _, stop) = engine(cfg());
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let e = e.clone();
            tokio::spawn(async move {
                let mut total = Duration::ZERO;
                for r in 0..rounds {
                    total += one_request(e.clone(), c * rounds + r, Instant::now()).await;
                }
                total / rounds
            })
        })
        .collect();
    let mut sum = Duration::ZERO;
    for t in tasks {
        sum += t.await.expect("task");
    }
    stop.cancel();
    sum / clients
}

#[tokio::test(start_paused = true)]
async fn ttft_rises_once_concurrency_exceeds_max_num_seqs() {
    let n = cfg().max_num_seqs;
    let one = closed_loop_ttft(1, 10).await;
    let at_n = closed_loop_ttft(n, 10).await;
    let over = closed_loop_ttft(n + 4, 10).await;
    // One request alone: a prefill step, base + 1 seq + 50 prompt tokens = 5.5 ms.
    let ms = |x: f64| Duration::from_secs_f64(x / 1000.0);
    assert!(one >= ms(5.5) && one <= ms(7.0), "{one:?}");
    assert!(at_n < one * 3, "at max_num_seqs: {at_n:?} vs {one:?}");
    assert!(over > at_n * 4, "beyond max_num_seqs: {over:?} vs {at_n:?}");
}

#[tokio::test(start_paused = true)]
async fn waiting_queue_is_bounded_and_kv_limits_the_batch() {
    let c = EngineConfig {
        max_waiting: 3,
        // A 50 + 32 token request needs ceil(82 / 16) = 6 blocks: 12 blocks hold two.
        block_size: 16,
        num_blocks: 12,
        ..cfg()
    };
    let (e, stats, stop) = engine(c);
    let now = Instant::now();
    let mut handles = Vec::new();
    let mut refused = 0;
    for i in 0..10 {
        match e.submit(&unique_prompt(i), OUTPUT, now, None) {
            Ok(h) => handles.push(h),
            Err(super::SubmitError::QueueFull) => refused += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!((handles.len(), refused), (3, 7));
    // Let one step run: KV holds 12 blocks = two 6-block requests.
    tokio::time::sleep(Duration::from_millis(1)).await;
    tokio::task::yield_now().await;
    let m = &stats.metrics;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!((load(&m.running), load(&m.waiting)), (2, 1));
    assert!((m.kv_usage() - 1.0).abs() < 1e-9);
    let too_big: Vec<u32> = (0..500).collect();
    assert!(matches!(
        e.submit(&too_big, 1, now, None),
        Err(super::SubmitError::TooLarge { .. })
    ));
    for mut h in handles {
        assert!(h.finish().await);
    }
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn cancelled_requests_free_their_slot() {
    let c = EngineConfig {
        max_num_seqs: 1,
        ..cfg()
    };
    let (e, stats, stop) = engine(c);
    let now = Instant::now();
    let mut first = e
        .submit(&unique_prompt(0), OUTPUT, now, None)
        .expect("queued");
    let mut second = e
        .submit(&unique_prompt(1), OUTPUT, now, None)
        .expect("queued");
    first.next_token().await.expect("token");
    drop(first);
    // The second starts at the next step instead of after 32 tokens of the first.
    second.next_token().await.expect("token");
    assert!(
        now.elapsed() < Duration::from_millis(30),
        "{:?}",
        now.elapsed()
    );
    assert!(second.finish().await);
    assert_eq!(
        stats
            .metrics
            .running
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    stop.cancel();
}

//! Synthetic window reports shaped like a real agent's: a few hundred
//! streamed requests per window, each metric's samples recorded into
//! stampede's HDR histograms and encoded with the common codec (V2,
//! uncompressed), only non-empty histograms sent, failures tallied by class
//! — what `agent/src/tally.rs` puts on the wire.

use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use stampede_common::histogram::{encode, new_histogram};
use stampede_common::metric::Metric;
use stampede_common::proto::{self, metric_histogram::Encoding};

/// Distinct report bodies; agents cycle through them so the controller
/// merges varied histograms, not one body over and over.
pub const TEMPLATES: usize = 32;

/// `TEMPLATES` report bodies of about `requests` requests each (sequence,
/// phase and window left for the sender to set).
pub fn templates(seed: u64, requests: u64) -> Vec<proto::WindowReport> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..TEMPLATES).map(|_| one(&mut rng, requests)).collect()
}

/// Log-normal samples with median `median` and log-spread `sigma`.
fn lognormal(median: f64, sigma: f64) -> LogNormal<f64> {
    LogNormal::new(median.ln(), sigma).expect("finite parameters")
}

/// One window: `requests` ± 1/6 requests (250–350 for 300) of 64–512
/// output tokens, TTFT around 200 ms, ITL around 20 ms, three failures.
fn one(rng: &mut SmallRng, requests: u64) -> proto::WindowReport {
    let mut hists: Vec<Histogram<u64>> = Metric::ALL.iter().map(|_| new_histogram()).collect();
    let mut record = |m: Metric, v: f64| {
        let _ = hists[m.index()].record((v as u64).max(1));
    };
    let (ttft, itl, lag) = (
        lognormal(200_000.0, 0.5),
        lognormal(20_000.0, 0.3),
        lognormal(300.0, 1.0),
    );
    let spread = requests / 6;
    let requests: u64 = rng.random_range(requests - spread..=requests + spread);
    let mut counters = proto::Counters {
        sent: requests + 3,
        failed: 3,
        ..Default::default()
    };
    for _ in 0..requests {
        let first = ttft.sample(rng);
        let tokens: u64 = rng.random_range(64..512);
        let mut last = first;
        for _ in 1..tokens {
            let gap = itl.sample(rng);
            record(Metric::Itl, gap);
            last += gap;
        }
        let prompt: u64 = rng.random_range(200..2_000);
        record(Metric::Ttft, first);
        record(Metric::E2e, last);
        record(Metric::Tpot, (last - first) / (tokens - 1) as f64);
        record(Metric::ScheduleLag, lag.sample(rng));
        record(Metric::OutputTokens, tokens as f64);
        record(Metric::InputTokens, prompt as f64);
        record(Metric::Ntpot, last / tokens as f64);
        counters.ok += 1;
        counters.good += 1;
        counters.usage_reported += 1;
        counters.output_tokens += tokens;
        counters.input_tokens += prompt;
    }
    let histograms = Metric::ALL
        .iter()
        .zip(&hists)
        .map(|(m, h)| proto::MetricHistogram {
            metric: m.to_proto() as i32,
            encoding: Some(Encoding::HdrV2(encode(h).expect("encodable"))),
        })
        .collect();
    proto::WindowReport {
        histograms,
        counters: Some(counters),
        errors: vec![
            proto::ErrorTally {
                class: "http_5xx:503".into(),
                count: 2,
            },
            proto::ErrorTally {
                class: "timeout_first_token".into(),
                count: 1,
            },
        ],
        agent_cpu_micros: rng.random_range(20_000..60_000),
        ..Default::default()
    }
}

/// Encoded size of a report's histograms (bytes), for the printout.
pub fn histogram_bytes(w: &proto::WindowReport) -> usize {
    w.histograms
        .iter()
        .map(|h| match &h.encoding {
            Some(Encoding::HdrV2(b)) => b.len(),
            None => 0,
        })
        .sum()
}

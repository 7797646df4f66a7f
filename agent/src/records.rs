//! Per-request records of a seeded sample of a phase's requests.
//!
//! The sampling decision is one hash and compare on the request number, so
//! an unsampled request costs nothing more; a sampled one becomes a compact
//! [`proto::RequestRecord`] in the window in which it completed. A window
//! keeps at most a bounded number of records and counts the rest as dropped.

use crate::client::{Success, micros};
use crate::failure::FailureClass;
use stampede_common::proto;
use tokio::time::Instant;

/// Records kept per window when the assignment leaves the bound 0.
const DEFAULT_PER_WINDOW: usize = 10_000;

/// Which requests of a phase are recorded, and how many per window.
#[derive(Debug, Clone, Copy)]
pub struct Sampler {
    /// ratio · 2⁶⁴, saturating (ratio 1 is `all`).
    threshold: u64,
    all: bool,
    salt: u64,
    /// Records kept per window.
    pub per_window: usize,
}

impl Sampler {
    /// The assignment's sampling, when it records any request.
    pub fn from_assignment(a: &proto::PhaseAssignment) -> Option<Self> {
        let ratio = a.record_sample_ratio;
        (ratio > 0.0).then(|| Self {
            threshold: (ratio * 18_446_744_073_709_551_616.0) as u64,
            all: ratio >= 1.0,
            salt: crate::spans::mix(a.record_seed),
            per_window: match a.max_records_per_window {
                0 => DEFAULT_PER_WINDOW,
                n => n as usize,
            },
        })
    }

    /// Whether request `k` of the phase is recorded.
    pub fn sampled(&self, k: u64) -> bool {
        self.all || crate::spans::mix(k ^ self.salt) < self.threshold
    }
}

/// What is known of a sampled request when it is sent.
#[derive(Debug, Clone, Copy)]
pub struct Draft {
    /// The request's number in the phase.
    pub number: u64,
    /// Turn of a multi-turn session (0 otherwise).
    pub turn: u32,
    /// Intended send time.
    pub intended: Instant,
    /// Actual send time.
    pub sent: Instant,
    /// Workload entry, when the phase has a workload.
    pub entry: Option<u32>,
}

impl Draft {
    /// The record of the request: `start` is the phase start, `outcome`
    /// how it ended (with its token gaps when it succeeded).
    pub fn finish(
        self,
        start: Instant,
        outcome: Result<(&Success, &[u64]), FailureClass>,
    ) -> proto::RequestRecord {
        let at = |t: Instant| micros(t.saturating_duration_since(start));
        let mut r = proto::RequestRecord {
            number: self.number,
            turn: self.turn,
            intended_micros: at(self.intended),
            sent_micros: at(self.sent),
            workload_entry: self.entry,
            ..Default::default()
        };
        match outcome {
            Ok((s, gaps)) => {
                r.first_token_micros = Some(at(s.first_token));
                r.last_token_micros = Some(at(s.last_token));
                r.itl_mean_micros = gaps
                    .iter()
                    .sum::<u64>()
                    .checked_div(gaps.len() as u64)
                    .unwrap_or(0);
                r.itl_max_micros = gaps.iter().copied().max().unwrap_or(0);
                r.output_tokens = s.output_tokens;
                r.usage_reported = s.usage_reported;
                r.usage_input_tokens = s.prompt_tokens;
            }
            Err(class) => r.error_class = class.label(),
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(ratio: f64, seed: u64) -> Sampler {
        Sampler::from_assignment(&proto::PhaseAssignment {
            record_sample_ratio: ratio,
            record_seed: seed,
            ..Default::default()
        })
        .expect("sampling")
    }

    #[test]
    fn the_sample_has_its_ratio_and_follows_the_seed() {
        assert!(
            Sampler::from_assignment(&proto::PhaseAssignment::default()).is_none(),
            "0 records nothing"
        );
        let all = sampler(1.0, 7);
        assert!((0..1000).all(|k| all.sampled(k)));
        assert_eq!(all.per_window, DEFAULT_PER_WINDOW);
        let picked = |s: Sampler| (0..100_000).filter(|&k| s.sampled(k)).collect::<Vec<_>>();
        let one = picked(sampler(0.01, 7));
        assert!((800..1200).contains(&one.len()), "{}", one.len());
        assert_eq!(one, picked(sampler(0.01, 7)), "same seed, same set");
        assert_ne!(one, picked(sampler(0.01, 8)), "another seed, another set");
    }

    #[test]
    fn a_record_holds_times_from_the_phase_start() {
        let start = Instant::now();
        let ms = |n| start + std::time::Duration::from_millis(n);
        let draft = Draft {
            number: 3,
            turn: 0,
            intended: ms(10),
            sent: ms(11),
            entry: Some(1),
        };
        let s = Success {
            first_token: ms(20),
            last_token: ms(40),
            output_tokens: 3,
            usage_reported: true,
            prompt_tokens: Some(9),
            status: 200,
        };
        let r = draft.finish(start, Ok((&s, &[5_000, 15_000])));
        assert_eq!((r.intended_micros, r.sent_micros), (10_000, 11_000));
        assert_eq!(r.first_token_micros, Some(20_000));
        assert_eq!((r.itl_mean_micros, r.itl_max_micros), (10_000, 15_000));
        assert_eq!((r.usage_input_tokens, r.workload_entry), (Some(9), Some(1)));
        let failed = draft.finish(start, Err(FailureClass::Http(503)));
        assert_eq!(failed.error_class, "http_5xx:503");
        assert_eq!(failed.first_token_micros, None);
    }
}

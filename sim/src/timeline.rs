//! When tokens come out, and what they say.
//!
//! Callers only `await` [`Generation::next_token`] (or [`Generation::finish`]); whether the
//! tokens come from a request's own fixed timeline or from the shared batching engine
//! ([`crate::engine`]) is hidden here, so the HTTP and wire-format code is the same for both.
//!
//! Fixed timeline (the default): every request runs alone; token `i` (0-based) is due at
//! `start + ttft + i * itl` (each interval scaled by the warm-up factor and, if configured, a
//! seeded jitter factor). Deadlines are absolute, so scheduling delays do not accumulate
//! into drift, and every one is timed on [`crate::hrtimer`] rather than tokio's millisecond
//! timer, so the measured TTFT and inter-token gaps are the configured ones to within ~0.1 ms.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::ModelConfig;
use crate::engine::SeqHandle;
use crate::hrtimer::Clock;
use crate::metrics::Finished;
use crate::rng::{Rng, scale};
use crate::stats::{ModelStats, SimStats};

/// The generated "text": one word (plus a space) per token, cycled. Plain ASCII that needs no
/// JSON escaping, so the wire-format code can splice it into pre-built chunks.
const WORDS: [&str; 16] = [
    "the ",
    "quick ",
    "brown ",
    "fox ",
    "jumps ",
    "over ",
    "a ",
    "lazy ",
    "dog ",
    "while ",
    "simulated ",
    "tokens ",
    "stream ",
    "out ",
    "of ",
    "stampede ",
];

/// Farthest offset a deadline may have (a year): absurd configurations saturate here.
const FAR: Duration = Duration::from_secs(86_400 * 365);

/// The text of token `i`.
pub(crate) fn token_text(i: u32) -> &'static str {
    WORDS[i as usize % WORDS.len()]
}

/// The whole text of `n` tokens, as a non-streaming response carries it.
pub(crate) fn full_text(n: u32) -> String {
    (0..n).map(token_text).collect()
}

/// One emitted token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    /// Its index in the response (0-based).
    pub index: u32,
    /// Its text.
    pub text: &'static str,
    /// Whether it is the last token of the response.
    pub last: bool,
}

impl Token {
    fn new(index: u32, len: u32) -> Self {
        Self {
            index,
            text: token_text(index),
            last: index + 1 == len,
        }
    }
}

/// Number of tokens a request generates: `min(output_tokens, max_tokens)`, at least one.
pub(crate) fn output_len(cfg: &ModelConfig, max_tokens: Option<u32>) -> u32 {
    max_tokens
        .map_or(cfg.output_tokens, |m| m.min(cfg.output_tokens))
        .max(1)
}

/// The token source of one request.
#[derive(Debug)]
pub(crate) enum Generation {
    /// Its own fixed timeline.
    Fixed(Fixed),
    /// A sequence in the shared batching engine.
    Engine(SeqHandle),
}

impl Generation {
    /// Number of tokens this request generates.
    pub(crate) fn len(&self) -> u32 {
        match self {
            Self::Fixed(f) => f.len,
            Self::Engine(s) => s.len(),
        }
    }

    /// Whether every token has been handed out.
    pub(crate) fn emitted_all(&self) -> bool {
        match self {
            Self::Fixed(f) => f.next >= f.len,
            Self::Engine(s) => s.emitted_all(),
        }
    }

    /// Waits until the next token is due and returns it; `None` once all tokens are out (or
    /// the engine gave up on the request).
    pub(crate) async fn next_token(&mut self) -> Option<Token> {
        match self {
            Self::Fixed(f) => f.next_token().await,
            Self::Engine(s) => {
                let len = s.len();
                s.next_token().await.map(|i| Token::new(i, len))
            }
        }
    }

    /// Waits until the last token is due (non-streaming responses are sent then). Returns
    /// `false` if the engine gave up on the request.
    pub(crate) async fn finish(&mut self) -> bool {
        match self {
            Self::Fixed(f) => {
                f.finish().await;
                true
            }
            Self::Engine(s) => s.finish().await,
        }
    }
}

/// A model's fixed timing and the server's randomness.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// Time to first token.
    pub ttft: Duration,
    /// Gap between tokens.
    pub itl: Duration,
    /// Relative jitter (see [`crate::SimConfig::jitter`]).
    pub jitter: f64,
    /// Seed of the jitter draws.
    pub seed: u64,
}

impl Timing {
    /// `model`'s timing with the server's `jitter` and `seed`.
    pub(crate) fn of(model: &ModelConfig, jitter: f64, seed: u64) -> Self {
        Self {
            ttft: model.ttft,
            itl: model.itl,
            jitter,
            seed,
        }
    }
}

/// One request put on a timeline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Job {
    /// Its arrival, where its timeline starts.
    pub start: Instant,
    /// Tokens it generates (≥ 1).
    pub len: u32,
    /// Its arrival number (seeds its jitter).
    pub seq: u64,
    /// Its prompt tokens.
    pub prompt_tokens: u64,
    /// Its `max_tokens` parameter, if given.
    pub max_tokens: Option<u32>,
}

/// A request's own timeline, with server-side latency metrics observed at the deadlines.
#[derive(Debug)]
pub(crate) struct Fixed {
    start: Instant,
    ttft: Duration,
    itl: Duration,
    len: u32,
    next: u32,
    /// Offset from `start` of the last token handed out.
    at: Duration,
    /// Offset from `start` of the first token.
    first: Duration,
    prompt_tokens: u64,
    max_tokens: Option<u32>,
    jitter: f64,
    rng: Rng,
    stats: Arc<ModelStats>,
    /// The server's counters (requests running across models).
    server: Arc<SimStats>,
    /// What the deadlines are slept on.
    clock: Clock,
}

impl Fixed {
    /// A timeline for `job` on `timing`, with latencies multiplied by `slowdown` (the
    /// warm-up factor, ≥ 1), observed into the model's `stats` and counted running on the
    /// `server`. Its whole prompt counts as prefilled at once (there is no cache).
    pub(crate) fn new(
        timing: &Timing,
        job: &Job,
        slowdown: f64,
        (stats, server): (Arc<ModelStats>, Arc<SimStats>),
    ) -> Self {
        stats.metrics.running.fetch_add(1, Ordering::Relaxed);
        server.running_started();
        stats.metrics.prefilled(job.prompt_tokens, 0);
        Self {
            start: job.start,
            ttft: scale(timing.ttft, slowdown),
            itl: scale(timing.itl, slowdown),
            len: job.len.max(1),
            next: 0,
            at: Duration::ZERO,
            first: Duration::ZERO,
            prompt_tokens: job.prompt_tokens,
            max_tokens: job.max_tokens,
            jitter: timing.jitter,
            rng: Rng::new(timing.seed, job.seq),
            stats,
            server,
            clock: Clock::Precise,
        }
    }

    /// The gap before token `i`: the TTFT for the first, the ITL after; each jittered.
    fn gap(&mut self, i: u32) -> Duration {
        let base = if i == 0 { self.ttft } else { self.itl };
        scale(base, self.rng.jitter(self.jitter))
    }

    /// Offset of token `self.next`, advancing the timeline; observes the metrics.
    fn advance(&mut self) -> Duration {
        let i = self.next;
        let gap = self.gap(i);
        self.at = self.at.checked_add(gap).unwrap_or(FAR).min(FAR);
        self.next += 1;
        let m = &self.stats.metrics;
        if i == 0 {
            m.ttft.observe(self.at);
            self.first = self.at;
        } else {
            m.itl.observe(gap);
        }
        if self.next == self.len {
            // Alone on its timeline: admitted at arrival, no queue.
            m.finished(&Finished {
                queued: Duration::ZERO,
                prefill: self.first,
                decode: self.at.saturating_sub(self.first),
                prompt_tokens: self.prompt_tokens,
                cached_tokens: 0,
                generation_tokens: self.len,
                max_tokens: self.max_tokens,
            });
        }
        self.at
    }

    fn instant(&self, offset: Duration) -> Instant {
        self.start.checked_add(offset).unwrap_or(self.start)
    }

    async fn next_token(&mut self) -> Option<Token> {
        if self.next >= self.len {
            return None;
        }
        let i = self.next;
        let mut probe = self.rng.clone();
        // Compute the deadline without committing, so a dropped wait observes nothing.
        let base = if i == 0 { self.ttft } else { self.itl };
        let gap = scale(base, probe.jitter(self.jitter));
        let due = self.at.checked_add(gap).unwrap_or(FAR).min(FAR);
        self.clock.sleep_until(self.instant(due)).await;
        self.advance();
        Some(Token::new(i, self.len))
    }

    async fn finish(&mut self) {
        let mut probe_rng = self.rng.clone();
        let mut at = self.at;
        for i in self.next..self.len {
            let base = if i == 0 { self.ttft } else { self.itl };
            at = at
                .checked_add(scale(base, probe_rng.jitter(self.jitter)))
                .unwrap_or(FAR)
                .min(FAR);
        }
        self.clock.sleep_until(self.instant(at)).await;
        while self.next < self.len {
            self.advance();
        }
    }
}

impl Drop for Fixed {
    fn drop(&mut self) {
        self.stats.metrics.running.fetch_sub(1, Ordering::Relaxed);
        self.server.running_ended();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SimConfig;

    fn fixed(cfg: &SimConfig, start: Instant, max_tokens: Option<u32>) -> Fixed {
        let len = output_len(&cfg.primary(), max_tokens);
        let job = Job {
            start,
            len,
            seq: 0,
            prompt_tokens: 0,
            max_tokens,
        };
        let timing = Timing::of(&cfg.primary(), cfg.jitter, cfg.seed);
        let mut f = Fixed::new(
            &timing,
            &job,
            1.0,
            (
                Arc::new(ModelStats::default()),
                Arc::new(SimStats::default()),
            ),
        );
        // These tests run in paused time, which drives tokio's timer only.
        f.clock = Clock::Tokio;
        f
    }

    #[test]
    fn words_need_no_json_escaping() {
        for w in WORDS {
            assert!(w.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' '));
            assert_eq!(serde_json::to_string(w).ok(), Some(format!("\"{w}\"")));
        }
    }

    #[test]
    fn length_is_capped_and_at_least_one() {
        let cfg = SimConfig {
            output_tokens: 10,
            ..SimConfig::default()
        };
        assert_eq!(output_len(&cfg.primary(), None), 10);
        assert_eq!(output_len(&cfg.primary(), Some(3)), 3);
        assert_eq!(output_len(&cfg.primary(), Some(30)), 10);
        let zero = SimConfig {
            output_tokens: 0,
            ..cfg
        };
        assert_eq!(output_len(&zero.primary(), None), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_are_absolute_and_saturate() {
        let cfg = SimConfig {
            ttft: Duration::from_millis(20),
            itl: Duration::from_millis(5),
            output_tokens: 4,
            ..SimConfig::default()
        };
        let now = Instant::now();
        let mut g = fixed(&cfg, now, None);
        let mut at = Vec::new();
        while g.next_token().await.is_some() {
            at.push(Instant::now() - now);
        }
        let ms = Duration::from_millis;
        assert_eq!(at, [ms(20), ms(25), ms(30), ms(35)]);
        let absurd = SimConfig {
            itl: Duration::MAX,
            ..cfg
        };
        let mut g = fixed(&absurd, now, None);
        g.advance();
        assert_eq!(g.advance(), FAR);
        assert!(g.instant(FAR) > now);
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_is_seeded_and_bounded() {
        let cfg = SimConfig {
            ttft: Duration::from_millis(100),
            itl: Duration::from_millis(10),
            output_tokens: 50,
            jitter: 0.5,
            seed: 9,
            ..SimConfig::default()
        };
        let run = || {
            let mut g = fixed(&cfg, Instant::now(), None);
            (0..50).map(|_| g.advance()).collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        assert!(a[0] >= Duration::from_millis(50) && a[0] <= Duration::from_millis(150));
        for w in a.windows(2) {
            let gap = w[1] - w[0];
            assert!(gap >= Duration::from_millis(5) && gap <= Duration::from_millis(15));
        }
        assert!(a.windows(3).any(|w| (w[1] - w[0]) != (w[2] - w[1])));
    }

    #[tokio::test]
    async fn tokens_come_out_no_earlier_than_due() {
        let cfg = SimConfig {
            output_tokens: 3,
            ..SimConfig::default()
        };
        let start = Instant::now();
        let mut f = fixed(&cfg, start, None);
        // Real time: the timer every served request uses.
        f.clock = Clock::Precise;
        let mut g = Generation::Fixed(f);
        let mut seen = Vec::new();
        while let Some(t) = g.next_token().await {
            seen.push((start.elapsed(), t.last));
        }
        assert_eq!(seen.len(), 3);
        for (i, (at, last)) in seen.into_iter().enumerate() {
            assert!(
                at >= Duration::from_millis(20 + 5 * i as u64),
                "token {i} at {at:?}"
            );
            assert_eq!(last, i == 2);
        }
        assert!(g.next_token().await.is_none());
    }
}

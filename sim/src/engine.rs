//! When tokens come out, and what they say.
//!
//! This is the seam for the later batching / KV-cache model: callers only `await`
//! [`Generation::next_token`] (or [`Generation::finish`]), so a shared scheduler can replace
//! the fixed per-request timeline without touching the HTTP or wire-format code.
//!
//! Today every request runs alone on a fixed timeline measured from handler start: token `i`
//! (0-based) is due at `start + ttft + i * itl`. Deadlines are absolute
//! (`tokio::time::sleep_until`), so scheduling delays do not accumulate into drift.

use std::time::Duration;

use crate::hrtimer::HrTimer;
use tokio::time::{Instant, sleep_until};

use crate::config::SimConfig;

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
    /// Its text.
    pub text: &'static str,
    /// Whether it is the last token of the response.
    pub last: bool,
}

/// The token timeline of one request.
#[derive(Debug)]
pub(crate) struct Generation {
    start: Instant,
    ttft: Duration,
    itl: Duration,
    len: u32,
    next: u32,
}

impl Generation {
    /// A timeline starting at `start`: `min(cfg.output_tokens, max_tokens)` tokens, at least one.
    pub(crate) fn new(cfg: &SimConfig, start: Instant, max_tokens: Option<u32>) -> Self {
        let len = max_tokens.map_or(cfg.output_tokens, |m| m.min(cfg.output_tokens));
        Self {
            start,
            ttft: cfg.ttft,
            itl: cfg.itl,
            len: len.max(1),
            next: 0,
        }
    }

    /// Number of tokens this request generates.
    pub(crate) fn len(&self) -> u32 {
        self.len
    }

    /// When token `i` is due. Absurd configurations saturate instead of overflowing.
    fn deadline(&self, i: u32) -> Instant {
        let offset = self
            .itl
            .checked_mul(i)
            .and_then(|d| d.checked_add(self.ttft));
        offset
            .and_then(|d| self.start.checked_add(d))
            .or_else(|| self.start.checked_add(Duration::from_secs(86_400 * 365)))
            .unwrap_or(self.start)
    }

    /// Waits until the next token is due and returns it; `None` once all tokens are out.
    pub(crate) async fn next_token(&mut self) -> Option<Token> {
        if self.next >= self.len {
            return None;
        }
        let i = self.next;
        if i == 0 {
            first_token_sleep(self.deadline(0)).await;
        } else {
            sleep_until(self.deadline(i)).await;
        }
        self.next += 1;
        Some(Token {
            text: token_text(i),
            last: self.next == self.len,
        })
    }

    /// Waits until the last token is due (non-streaming responses are sent then).
    pub(crate) async fn finish(&mut self) {
        if self.len == 1 {
            first_token_sleep(self.deadline(0)).await;
        } else {
            sleep_until(self.deadline(self.len - 1)).await;
        }
        self.next = self.len;
    }
}

/// Sleep until the first token is due on the high-resolution timer (the
/// configured TTFT is what benchmarks compare against), falling back to
/// tokio's millisecond timer if the timer thread cannot start.
async fn first_token_sleep(at: Instant) {
    static TIMER: std::sync::OnceLock<Option<HrTimer>> = std::sync::OnceLock::new();
    match TIMER.get_or_init(|| HrTimer::new().ok()) {
        Some(timer) => timer.sleep_until(at.into_std()).await,
        None => sleep_until(at).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let now = Instant::now();
        assert_eq!(Generation::new(&cfg, now, None).len(), 10);
        assert_eq!(Generation::new(&cfg, now, Some(3)).len(), 3);
        assert_eq!(Generation::new(&cfg, now, Some(30)).len(), 10);
        let zero = SimConfig {
            output_tokens: 0,
            ..cfg
        };
        assert_eq!(Generation::new(&zero, now, None).len(), 1);
    }

    #[test]
    fn deadlines_are_absolute_and_saturate() {
        let cfg = SimConfig {
            ttft: Duration::from_millis(20),
            itl: Duration::from_millis(5),
            ..SimConfig::default()
        };
        let now = Instant::now();
        let g = Generation::new(&cfg, now, None);
        assert_eq!(g.deadline(0), now + Duration::from_millis(20));
        assert_eq!(g.deadline(3), now + Duration::from_millis(35));
        let absurd = SimConfig {
            itl: Duration::MAX,
            ..cfg
        };
        let g = Generation::new(&absurd, now, None);
        assert!(g.deadline(5) > now);
    }

    #[tokio::test]
    async fn tokens_come_out_no_earlier_than_due() {
        let cfg = SimConfig {
            output_tokens: 3,
            ..SimConfig::default()
        };
        let start = Instant::now();
        let mut g = Generation::new(&cfg, start, None);
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

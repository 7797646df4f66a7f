//! Trace replay on the agent: the arrival times of a `Replay` load shape,
//! sharded like every open loop (this agent sends arrival k when
//! k mod n == its index), and each arrival's own prompt and output lengths.

use stampede_common::proto;

/// A replayed trace: arrival times and lengths, indexed by arrival.
#[derive(Debug)]
pub struct Replay {
    /// Arrival times from the phase start, nanoseconds, non-decreasing.
    at_nanos: Vec<u64>,
    /// (prompt tokens, max_tokens) per arrival.
    lengths: Vec<(u32, u32)>,
}

impl Replay {
    /// From the wire form; refuses lists of different lengths and zero lengths.
    pub fn from_proto(r: &proto::Replay) -> Result<Self, String> {
        let n = r.gaps_nanos.len();
        if n == 0 || r.input_tokens.len() != n || r.output_tokens.len() != n {
            return Err(format!(
                "replay lists of {} gaps, {} input and {} output lengths (need the same, at least 1)",
                n,
                r.input_tokens.len(),
                r.output_tokens.len()
            ));
        }
        if let Some(k) = (0..n).find(|k| r.input_tokens[*k] == 0 || r.output_tokens[*k] == 0) {
            return Err(format!("replay arrival {k} has a zero length"));
        }
        let mut t = 0u64;
        let at_nanos = r
            .gaps_nanos
            .iter()
            .map(|g| {
                t = t.saturating_add(*g);
                t
            })
            .collect();
        Ok(Self {
            at_nanos,
            lengths: r
                .input_tokens
                .iter()
                .copied()
                .zip(r.output_tokens.iter().copied())
                .collect(),
        })
    }

    /// Every arrival of the trace: (index k, seconds from the phase start).
    /// The engine keeps those its shard owns.
    pub fn arrivals(
        self: std::sync::Arc<Self>,
    ) -> impl Iterator<Item = (u64, f64)> + Send + 'static {
        (0..self.at_nanos.len() as u64).map(move |k| (k, self.at_nanos[k as usize] as f64 / 1e9))
    }

    /// (prompt tokens, max_tokens) of arrival k.
    pub fn lengths(&self, k: u64) -> Option<(u32, u32)> {
        self.lengths.get(usize::try_from(k).ok()?).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn arrivals_follow_the_trace() {
        let r = Arc::new(
            Replay::from_proto(&proto::Replay {
                gaps_nanos: vec![0, 1_500_000, 0, 250_000_000, 1],
                input_tokens: vec![1, 2, 3, 4, 5],
                output_tokens: vec![5, 4, 3, 2, 1],
            })
            .unwrap(),
        );
        let all: Vec<(u64, f64)> = r.clone().arrivals().collect();
        let times: Vec<f64> = all.iter().map(|(_, t)| *t).collect();
        assert_eq!(times, vec![0.0, 0.0015, 0.0015, 0.2515, 0.251_500_001]);
        assert_eq!(r.lengths(3), Some((4, 2)));
        assert_eq!(r.lengths(5), None);
        assert!(
            Replay::from_proto(&proto::Replay {
                gaps_nanos: vec![0],
                input_tokens: vec![],
                output_tokens: vec![1],
            })
            .is_err()
        );
    }
}

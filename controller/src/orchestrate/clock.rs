//! NTP-style clock-offset estimation. For a probe sent at controller time t0,
//! received by the agent at t1 (agent clock), answered at t2 (agent clock) and
//! back at t3 (controller clock): offset = ((t1 − t0) + (t2 − t3)) / 2 and
//! round trip = (t3 − t0) − (t2 − t1). Of several probes the one with the
//! lowest round trip is kept: its offset has the smallest error bound (rtt/2).

/// Now, as Unix nanoseconds in the controller's clock.
pub fn now_unix_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// One probe's four timestamps (Unix ns).
#[derive(Debug, Clone, Copy)]
pub struct ProbeSample {
    /// Controller send.
    pub t0: i64,
    /// Agent receive.
    pub t1: i64,
    /// Agent send.
    pub t2: i64,
    /// Controller receive.
    pub t3: i64,
}

/// An offset estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ClockEstimate {
    /// Agent clock minus controller clock (ns).
    pub offset_nanos: i64,
    /// Round trip of the probe used (ns).
    pub rtt_nanos: i64,
}

impl ProbeSample {
    /// This probe's estimate.
    pub fn estimate(&self) -> ClockEstimate {
        let offset = ((self.t1 - self.t0) + (self.t2 - self.t3)) / 2;
        let rtt = ((self.t3 - self.t0) - (self.t2 - self.t1)).max(0);
        ClockEstimate {
            offset_nanos: offset,
            rtt_nanos: rtt,
        }
    }
}

/// The estimate of the lowest-round-trip probe, if any.
pub fn best(samples: &[ProbeSample]) -> Option<ClockEstimate> {
    samples
        .iter()
        .map(ProbeSample::estimate)
        .min_by_key(|e| e.rtt_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_path_recovers_the_offset() {
        // Agent clock is 200 ms ahead; 1 ms each way; 0.1 ms processing.
        let off = 200_000_000;
        let s = ProbeSample {
            t0: 0,
            t1: 1_000_000 + off,
            t2: 1_100_000 + off,
            t3: 2_100_000,
        };
        assert_eq!(
            s.estimate(),
            ClockEstimate {
                offset_nanos: off,
                rtt_nanos: 2_000_000
            }
        );
    }

    #[test]
    fn keeps_the_lowest_round_trip() {
        let fast = ProbeSample {
            t0: 0,
            t1: 500,
            t2: 600,
            t3: 1_100,
        };
        let slow = ProbeSample {
            t0: 0,
            t1: 9_000,
            t2: 9_100,
            t3: 10_100,
        };
        assert_eq!(best(&[slow, fast]).unwrap().rtt_nanos, 1_000);
        assert!(best(&[]).is_none());
    }
}

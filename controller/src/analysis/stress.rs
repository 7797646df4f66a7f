//! The stress search: which rate a stress phase tries next, when it stops,
//! and where the knee is (the highest rate whose step held every objective).
//!
//! Kept apart from the run loop so the search is a pure function of the step
//! verdicts: the run loop asks for a rate, runs a step, reports pass/fail.

use crate::model::StopReason;
use stampede_plan::{Search, Stress};

impl StopReason {
    /// A sentence for reports.
    pub fn describe(self) -> &'static str {
        match self {
            StopReason::FirstStepFailed => "the first step already failed; the knee is below it",
            StopReason::StepFailed => "a step failed",
            StopReason::Converged => "the failing and passing rates are within the precision",
            StopReason::ReachedMaxRate => "every step passed up to the highest rate allowed",
            StopReason::MaxSteps => "the most steps allowed ran",
            StopReason::Interrupted => "the run was stopped",
        }
    }
}

/// State of one stress phase's search.
#[derive(Debug, Clone)]
pub struct StressSearch {
    cfg: Stress,
    /// (rate, passed) of each step run, in order.
    steps: Vec<(f64, bool)>,
    /// Highest passing rate.
    lo: Option<f64>,
    /// Lowest failing rate.
    hi: Option<f64>,
}

impl StressSearch {
    /// A search with no step run yet.
    pub fn new(cfg: Stress) -> Self {
        Self {
            cfg,
            steps: Vec::new(),
            lo: None,
            hi: None,
        }
    }

    /// The next rate to try, or why the search is over.
    pub fn next_rate(&self) -> Result<f64, StopReason> {
        if self.steps.is_empty() {
            return Ok(self.cfg.from);
        }
        let Some(lo) = self.lo else {
            return Err(StopReason::FirstStepFailed);
        };
        let next = self.candidate(lo)?;
        if self.steps.len() >= self.cfg.max_steps as usize {
            return Err(StopReason::MaxSteps);
        }
        Ok(next)
    }

    fn candidate(&self, lo: f64) -> Result<f64, StopReason> {
        match (self.cfg.search, self.hi) {
            (Search::Linear { .. }, Some(_)) => Err(StopReason::StepFailed),
            (Search::Adaptive { precision, .. }, Some(hi)) => {
                if (hi - lo) / lo <= precision {
                    Err(StopReason::Converged)
                } else {
                    Ok((lo + hi) / 2.0)
                }
            }
            (search, None) => {
                if lo >= self.cfg.to {
                    return Err(StopReason::ReachedMaxRate);
                }
                let next = match search {
                    Search::Adaptive { factor, .. } => lo * factor,
                    Search::Linear { step } => lo + step,
                };
                Ok(next.min(self.cfg.to))
            }
        }
    }

    /// The verdict of the step run at `rate`.
    pub fn record(&mut self, rate: f64, passed: bool) {
        self.steps.push((rate, passed));
        if passed {
            self.lo = Some(self.lo.map_or(rate, |lo| lo.max(rate)));
        } else {
            self.hi = Some(self.hi.map_or(rate, |hi| hi.min(rate)));
        }
    }

    /// The highest rate that held every objective so far.
    pub fn knee(&self) -> Option<f64> {
        self.lo
    }
}

/// Replay a search over recorded step verdicts: its knee and why it ended
/// (`Interrupted` when it would have gone on). Used by reports, so a rebuilt
/// run names the same knee as the live one.
pub fn replay(cfg: Stress, steps: &[(f64, bool)]) -> (Option<f64>, StopReason) {
    let mut s = StressSearch::new(cfg);
    for &(rate, passed) in steps {
        s.record(rate, passed);
    }
    (
        s.knee(),
        s.next_rate().err().unwrap_or(StopReason::Interrupted),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use stampede_plan::Arrival;

    fn cfg(search: Search, from: f64, to: f64, max_steps: u32) -> Stress {
        Stress {
            from,
            to,
            search,
            max_steps,
            arrival: Arrival::Uniform,
            max_error_rate: 0.01,
            min_achieved: 0.95,
            max_saturated: 0.25,
        }
    }

    /// Run a search against a server that holds every rate up to `capacity`.
    fn against(capacity: f64, c: Stress) -> (Option<f64>, StopReason, Vec<f64>) {
        let mut s = StressSearch::new(c);
        let mut tried = Vec::new();
        loop {
            match s.next_rate() {
                Ok(rate) => {
                    tried.push(rate);
                    s.record(rate, rate <= capacity);
                }
                Err(reason) => return (s.knee(), reason, tried),
            }
        }
    }

    #[test]
    fn adaptive_search_finds_the_capacity_within_its_precision() {
        let adaptive = Search::Adaptive {
            factor: 2.0,
            precision: 0.05,
        };
        for capacity in [7.0, 37.5, 100.0, 237.0, 999.0, 1234.5] {
            let (knee, reason, tried) = against(capacity, cfg(adaptive, 5.0, 5000.0, 30));
            let knee = knee.unwrap();
            assert_eq!(
                reason,
                StopReason::Converged,
                "capacity {capacity}: {tried:?}"
            );
            assert!(knee <= capacity, "{knee} above {capacity}");
            assert!(
                knee >= capacity / 1.05,
                "capacity {capacity}: knee {knee}, steps {tried:?}"
            );
        }
    }

    #[test]
    fn adaptive_search_takes_logarithmically_many_steps() {
        let adaptive = Search::Adaptive {
            factor: 2.0,
            precision: 0.05,
        };
        let (_, _, tried) = against(300.0, cfg(adaptive, 10.0, 10_000.0, 100));
        // 10 → 320 doubling (6 steps), then ~5 bisections.
        assert!(tried.len() <= 12, "{tried:?}");
        assert_eq!(&tried[..6], &[10.0, 20.0, 40.0, 80.0, 160.0, 320.0]);
    }

    #[test]
    fn linear_search_stops_at_the_first_failure() {
        let (knee, reason, tried) =
            against(55.0, cfg(Search::Linear { step: 10.0 }, 10.0, 1000.0, 50));
        assert_eq!(knee, Some(50.0));
        assert_eq!(reason, StopReason::StepFailed);
        assert_eq!(tried, vec![10.0, 20.0, 30.0, 40.0, 50.0, 60.0]);
    }

    #[test]
    fn bounds_and_first_failure_are_reported() {
        let adaptive = Search::Adaptive {
            factor: 3.0,
            precision: 0.05,
        };
        let (knee, reason, tried) = against(1e9, cfg(adaptive, 10.0, 200.0, 20));
        assert_eq!((knee, reason), (Some(200.0), StopReason::ReachedMaxRate));
        assert_eq!(tried, vec![10.0, 30.0, 90.0, 200.0]);
        let (knee, reason, _) = against(5.0, cfg(adaptive, 10.0, 200.0, 20));
        assert_eq!((knee, reason), (None, StopReason::FirstStepFailed));
        let (knee, reason, tried) = against(1e9, cfg(adaptive, 1.0, 1e6, 3));
        assert_eq!((knee, reason), (Some(9.0), StopReason::MaxSteps));
        assert_eq!(tried.len(), 3);
    }

    #[test]
    fn replay_names_the_same_knee_as_the_live_search() {
        let c = cfg(
            Search::Adaptive {
                factor: 2.0,
                precision: 0.1,
            },
            10.0,
            1000.0,
            20,
        );
        let mut live = StressSearch::new(c);
        let mut steps = Vec::new();
        while let Ok(rate) = live.next_rate() {
            let pass = rate <= 123.0;
            live.record(rate, pass);
            steps.push((rate, pass));
        }
        let (knee, reason) = replay(c, &steps);
        assert_eq!(knee, live.knee());
        assert_eq!(reason, live.next_rate().unwrap_err());
        let (_, cut) = replay(c, &steps[..3]);
        assert_eq!(cut, StopReason::Interrupted);
    }
}

//! What a window records about a set of requests: one histogram per metric,
//! counters, and failures by class.
//!
//! A window keeps one tally of every request and, when the phase's workload
//! mixes several entries, one more per entry ([`crate::recorder`]): each is
//! a complete, exactly mergeable record, so the controller can add the
//! entries' tallies into per-entry and per-model results bucket for bucket.

use crate::failure::FailureClass;
use hdrhistogram::Histogram;
use stampede_common::histogram::{self, new_histogram};
use stampede_common::metric::Metric;
use stampede_common::proto;
use std::collections::HashMap;

/// Histograms, counters and failure classes of some requests.
#[derive(Debug, Clone)]
pub struct Tally {
    hists: Vec<Histogram<u64>>,
    /// Request counts.
    pub counters: proto::Counters,
    errors: HashMap<FailureClass, u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            hists: Metric::ALL.iter().map(|_| new_histogram()).collect(),
            counters: proto::Counters::default(),
            errors: HashMap::new(),
        }
    }
}

/// Record `value` in `h`: auto-resizing histograms accept any u64;
/// saturate rather than fail.
pub fn record_saturating(h: &mut Histogram<u64>, value: u64) {
    if h.record(value).is_err() {
        let _ = h.record(h.high());
    }
}

impl Tally {
    /// Record one value of `metric`.
    pub fn record(&mut self, metric: Metric, value: u64) {
        record_saturating(&mut self.hists[metric.index()], value);
    }

    /// The histogram of `metric`.
    pub fn hist(&self, metric: Metric) -> &Histogram<u64> {
        &self.hists[metric.index()]
    }

    /// Count one failure of `class`.
    pub fn failed(&mut self, class: FailureClass) {
        self.counters.failed += 1;
        *self.errors.entry(class).or_default() += 1;
    }

    /// The wire form: non-empty histograms, counters, failures sorted by class.
    pub fn into_wire(
        self,
    ) -> (
        Vec<proto::MetricHistogram>,
        proto::Counters,
        Vec<proto::ErrorTally>,
    ) {
        let histograms = Metric::ALL
            .iter()
            .zip(&self.hists)
            .filter(|(_, h)| !h.is_empty())
            .map(|(m, h)| proto::MetricHistogram {
                metric: m.to_proto() as i32,
                encoding: Some(proto::metric_histogram::Encoding::HdrV2(
                    histogram::encode(h).unwrap_or_default(),
                )),
            })
            .collect();
        let mut errors: Vec<_> = self
            .errors
            .into_iter()
            .map(|(class, count)| proto::ErrorTally {
                class: class.label(),
                count,
            })
            .collect();
        errors.sort_by(|a, b| a.class.cmp(&b.class));
        (histograms, self.counters, errors)
    }
}

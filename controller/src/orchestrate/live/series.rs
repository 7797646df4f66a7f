//! What the live page shows of a phase: its merged counters, failures and
//! latency histograms, cut into the classic Prometheus buckets at the
//! moment they are taken, with the same for each breakdown.
//!
//! The controller already merges every window exactly into the phase's
//! HDR histograms; a snapshot walks those once (not each window), so the
//! page costs nothing per agent-window however many agents report.

use crate::analysis::breakdown::{EntryLabels, grouped};
use crate::analysis::merge::Aggregate;
use crate::model::BreakdownBy;
use hdrhistogram::Histogram;
use stampede_common::metric::Metric;
use stampede_common::proto::Counters;
use std::collections::BTreeMap;

/// The latency metrics the page exposes, in the order it lists them.
pub const METRICS: [Metric; 5] = [
    Metric::Ttft,
    Metric::Itl,
    Metric::E2e,
    Metric::Tpot,
    Metric::ScheduleLag,
];

/// Bucket upper bounds (seconds) of `metric`. TTFT, ITL/TPOT and E2E hold
/// every boundary of vLLM's own histogram of the same quantity (so a panel
/// can set ours beside the server's at one `le`), with finer ones below
/// where a load generator's view needs them.
pub fn bounds(metric: Metric) -> &'static [f64] {
    match metric {
        Metric::Ttft => &[
            0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.25,
            0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
        ],
        Metric::Itl | Metric::Tpot => &[
            0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,
            0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
        ],
        Metric::E2e => &[
            0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0,
            30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
        ],
        _ => &[
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5, 5.0, 10.0,
        ],
    }
}

/// One histogram in classic buckets: non-cumulative counts per bound of
/// [`bounds`], the last beyond every bound; sum in seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Buckets {
    /// `h` (µs) cut at `bounds` (s). A value counts as at most a bound when
    /// the lowest value its HDR bucket stands for is: exact up to the
    /// histogram's precision (3 significant digits).
    pub fn of(h: &Histogram<u64>, bounds: &[f64]) -> Self {
        let micros: Vec<u64> = bounds.iter().map(|b| (b * 1e6).round() as u64).collect();
        let mut counts = vec![0u64; bounds.len() + 1];
        let mut sum = 0.0;
        for v in h.iter_recorded() {
            let at = v.value_iterated_to();
            let n = v.count_at_value();
            let low = h.lowest_equivalent(at);
            counts[micros.partition_point(|b| *b < low)] += n;
            sum += h.median_equivalent(at) as f64 * n as f64;
        }
        Self {
            counts,
            sum: sum * 1e-6,
            count: h.len(),
        }
    }

    fn add(&mut self, o: &Buckets) {
        if self.counts.len() < o.counts.len() {
            self.counts.resize(o.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a = a.saturating_add(*b);
        }
        self.sum += o.sum;
        self.count = self.count.saturating_add(o.count);
    }
}

/// Counters, failures by class, and the latency histograms that have a sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub counters: Counters,
    pub failed: BTreeMap<String, u64>,
    /// By metric name (`ttft`, …); a metric with no sample is absent.
    pub hists: BTreeMap<&'static str, Buckets>,
}

impl Series {
    fn of(a: &Aggregate) -> Self {
        Self {
            counters: a.counters,
            failed: a.errors.clone(),
            hists: METRICS
                .iter()
                .filter(|m| !a.hist(**m).is_empty())
                .map(|m| (m.name(), Buckets::of(a.hist(*m), bounds(*m))))
                .collect(),
        }
    }

    /// `self += o`, exactly.
    pub fn add(&mut self, o: &Series) {
        crate::analysis::merge::add_counters(&mut self.counters, &o.counters);
        for (class, n) in &o.failed {
            let e = self.failed.entry(class.clone()).or_default();
            *e = e.saturating_add(*n);
        }
        for (name, b) in &o.hists {
            self.hists.entry(name).or_default().add(b);
        }
    }

    /// Arrivals the schedule made due: sent, skipped or expired.
    pub fn offered(&self) -> u64 {
        let c = &self.counters;
        c.sent.saturating_add(c.skipped).saturating_add(c.expired)
    }
}

/// A phase's live view: its totals and each breakdown's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub total: Series,
    pub breakdowns: BTreeMap<(BreakdownBy, String), Series>,
}

impl Snapshot {
    /// The view of a phase's merged windows `total`, whose entries `labels` names.
    pub fn of(total: &Aggregate, labels: &EntryLabels) -> Self {
        let entries: BTreeMap<u32, Series> = total
            .parts
            .iter()
            .map(|(e, a)| (*e, Series::of(a)))
            .collect();
        Self {
            total: Series::of(total),
            breakdowns: grouped(labels, &entries, Series::add)
                .into_iter()
                .map(|(by, name, s)| ((by, name), s))
                .collect(),
        }
    }

    /// `self += o`: a phase run again (a repeat, a stress step) continues
    /// its series instead of starting them over.
    pub fn add(&mut self, o: &Snapshot) {
        self.total.add(&o.total);
        for (key, s) in &o.breakdowns {
            self.breakdowns.entry(key.clone()).or_default().add(s);
        }
    }
}

#[cfg(test)]
#[path = "series_tests.rs"]
mod tests;

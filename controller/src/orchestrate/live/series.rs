//! What the live page shows of a phase: its merged counters, failures and
//! latency histograms in classic Prometheus buckets, in total and for each
//! breakdown.
//!
//! Each accepted window report, as the merge decoded it (its non-empty HDR
//! buckets), is added once into a [`Running`] view of the phase, as HDR
//! counts: an addition per bucket the report uses, whatever the histograms'
//! range or the length of the phase. The classic buckets are cut from those
//! counts when the page is published.

use crate::analysis::breakdown::{EntryLabels, grouped};
use crate::analysis::merge::DecodedWindow;
use crate::model::BreakdownBy;
use stampede_common::histogram::Counts;
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
pub struct Classic {
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Classic {
    /// Add the HDR counts `b` (µs), cut at `bounds` (s). A value counts as
    /// at most a bound when the lowest value its HDR bucket stands for is:
    /// exact up to the histograms' precision (3 significant digits). The
    /// buckets come in increasing order, so one walk places them all.
    pub fn add(&mut self, b: &Counts, bounds: &[f64]) {
        self.counts.resize(bounds.len() + 1, 0);
        let (mut at, mut sum) = (0usize, 0.0);
        for (low, n) in b.iter() {
            let v = low as f64;
            while bounds.get(at).is_some_and(|x| x * 1e6 < v) {
                at += 1;
            }
            self.counts[at] = self.counts[at].saturating_add(n);
            sum += b.median_of(low) as f64 * n as f64;
            self.count = self.count.saturating_add(n);
        }
        self.sum += sum * 1e-6;
    }

    fn merge(&mut self, o: &Classic) {
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
    pub hists: BTreeMap<&'static str, Classic>,
}

impl Series {
    /// `self += o`, exactly.
    pub fn add(&mut self, o: &Series) {
        crate::analysis::merge::add_counters(&mut self.counters, &o.counters);
        for (class, n) in &o.failed {
            crate::analysis::merge::add_failures(&mut self.failed, class, *n);
        }
        for (name, b) in &o.hists {
            self.hists.entry(name).or_default().merge(b);
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

/// What a phase's page figures are made from: counters, failures and HDR
/// counts of each latency metric with a sample.
#[derive(Debug, Default)]
struct Tally {
    counters: Counters,
    failed: BTreeMap<String, u64>,
    counts: BTreeMap<Metric, Counts>,
}

impl Tally {
    /// Add one decoded window report (or one of its parts).
    fn add_window(&mut self, d: &DecodedWindow) {
        crate::analysis::merge::add_counters(&mut self.counters, &d.counters);
        for (class, n) in &d.errors {
            crate::analysis::merge::add_failures(&mut self.failed, class, *n);
        }
        for (m, b) in d
            .hists
            .iter()
            .filter(|(m, b)| METRICS.contains(m) && !b.is_empty())
        {
            self.counts.entry(*m).or_default().add_buckets(b);
        }
    }

    /// The figures: each histogram cut at its classic bounds.
    fn series(&self) -> Series {
        let hists = self.counts.iter().map(|(m, c)| {
            let mut classic = Classic::default();
            classic.add(c, bounds(*m));
            (m.name(), classic)
        });
        Series {
            counters: self.counters,
            failed: self.failed.clone(),
            hists: hists.collect(),
        }
    }
}

/// A running phase's view, one window report at a time: its totals and
/// each workload entry's.
#[derive(Debug, Default)]
pub struct Running {
    total: Tally,
    entries: BTreeMap<u32, Tally>,
}

impl Running {
    /// Add an accepted window report.
    pub fn add(&mut self, d: &DecodedWindow) {
        self.total.add_window(d);
        for (entry, part) in &d.parts {
            self.entries.entry(*entry).or_default().add_window(part);
        }
    }

    /// The view so far, the entries named by `labels` and grouped by model
    /// as the results group them.
    pub fn snapshot(&self, labels: &EntryLabels) -> Snapshot {
        let entries: BTreeMap<u32, Series> =
            self.entries.iter().map(|(e, t)| (*e, t.series())).collect();
        Snapshot {
            total: self.total.series(),
            breakdowns: grouped(labels, &entries, Series::add)
                .into_iter()
                .map(|(by, name, s)| ((by, name), s))
                .collect(),
        }
    }
}

impl Snapshot {
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

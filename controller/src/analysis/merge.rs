//! Exact merging of agents' window reports into phase results.
//!
//! Histograms are added bucket for bucket (into [`Counts`], then read as the
//! `Histogram` they make), so cluster-wide percentiles are exact, never
//! averages of per-agent percentiles. Reports are deduplicated by (agent,
//! sequence); a report that cannot be decoded is counted, not silently
//! dropped.

use crate::model::MetricSummary;
use hdrhistogram::Histogram;
use stampede_common::MAX_WINDOW_PARTS;
use stampede_common::histogram::{self, Buckets, Counts};
use stampede_common::metric::{Metric, Unit};
use stampede_common::proto::{self, metric_histogram::Encoding};
use stampede_common::quantile::quantile_or_zero;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

/// Merged measurements of a set of windows.
#[derive(Debug, Clone)]
pub struct Aggregate {
    /// One histogram's counts per metric, indexed by [`Metric::index`].
    counts: Vec<Counts>,
    /// Each metric's histogram, made from its counts when first read after
    /// they changed.
    hists: Vec<OnceLock<Histogram<u64>>>,
    /// Summed counters.
    pub counters: proto::Counters,
    /// Failures by class.
    pub errors: BTreeMap<String, u64>,
    /// Agent CPU time (µs).
    pub cpu_micros: u64,
    /// The same requests by workload entry, when agents recorded parts.
    pub parts: BTreeMap<u32, Aggregate>,
}

impl Default for Aggregate {
    fn default() -> Self {
        Self {
            counts: vec![Counts::default(); Metric::ALL.len()],
            hists: vec![OnceLock::new(); Metric::ALL.len()],
            counters: proto::Counters::default(),
            errors: BTreeMap::new(),
            cpu_micros: 0,
            parts: BTreeMap::new(),
        }
    }
}

/// A decoded window report.
#[derive(Debug, Clone)]
pub struct DecodedWindow {
    /// Its histograms by metric, as their non-empty buckets.
    pub hists: Vec<(Metric, Buckets)>,
    /// Its counters.
    pub counters: proto::Counters,
    /// Its error tallies.
    pub errors: Vec<(String, u64)>,
    /// Agent CPU (µs).
    pub cpu_micros: u64,
    /// Its parts by workload entry (each without parts of its own).
    pub parts: Vec<(u32, DecodedWindow)>,
}

/// A window report that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A histogram names no known metric.
    #[error("histogram with unknown metric {0}")]
    UnknownMetric(i32),
    /// A histogram has no encoding this controller reads.
    #[error("histogram of {0} has no supported encoding")]
    NoEncoding(Metric),
    /// Decoding failed.
    #[error("histogram of {metric}: {source}")]
    Codec {
        /// Which metric.
        metric: Metric,
        /// Codec error.
        source: histogram::CodecError,
    },
    /// More histograms than metrics, or one metric twice.
    #[error("histogram of {0} appears more than once")]
    DuplicateMetric(Metric),
    /// One failure class tallied twice: the record keeps one tally per
    /// class, so a rebuild would lose the other.
    #[error("failure class {0:?} is tallied more than once")]
    DuplicateErrorClass(String),
    /// More error classes than a report may carry.
    #[error("{0} error classes, more than the limit of {MAX_ERROR_CLASSES}")]
    TooManyErrorClasses(usize),
    /// More parts than an agent records.
    #[error("{0} workload-entry parts, more than the limit of {MAX_WINDOW_PARTS}")]
    TooManyParts(usize),
    /// One workload entry's part twice.
    #[error("the part of workload entry {0} appears more than once")]
    DuplicatePart(u32),
    /// A part is malformed.
    #[error("part of workload entry {entry}: {source}")]
    Part {
        /// The part's entry.
        entry: u32,
        /// What is wrong with it.
        source: Box<ReportError>,
    },
    /// The failed count disagrees with the error tallies.
    #[error("counters say {failed} failed but error tallies sum to {tallied}")]
    Inconsistent {
        /// `counters.failed`.
        failed: u64,
        /// Sum of tallies.
        tallied: u64,
    },
}

/// Most error classes one window report may carry; the agent's classes are
/// a few dozen, and each becomes a key in every summary.
pub const MAX_ERROR_CLASSES: usize = 256;

/// Decode and check a window report before it touches any aggregate. At
/// most one histogram per metric is decoded, so a report cannot make the
/// controller allocate more than that many bounded histograms.
pub fn decode(w: &proto::WindowReport) -> Result<DecodedWindow, ReportError> {
    if w.parts.len() > MAX_WINDOW_PARTS {
        return Err(ReportError::TooManyParts(w.parts.len()));
    }
    let mut window = decode_tally(&w.histograms, w.counters, &w.errors)?;
    window.cpu_micros = w.agent_cpu_micros;
    for p in &w.parts {
        if window.parts.iter().any(|(e, _)| *e == p.entry) {
            return Err(ReportError::DuplicatePart(p.entry));
        }
        let part =
            decode_tally(&p.histograms, p.counters, &p.errors).map_err(|e| ReportError::Part {
                entry: p.entry,
                source: Box::new(e),
            })?;
        window.parts.push((p.entry, part));
    }
    Ok(window)
}

/// Decode and check one set of histograms, counters and failure tallies.
fn decode_tally(
    histograms: &[proto::MetricHistogram],
    counters: Option<proto::Counters>,
    errors: &[proto::ErrorTally],
) -> Result<DecodedWindow, ReportError> {
    if errors.len() > MAX_ERROR_CLASSES {
        return Err(ReportError::TooManyErrorClasses(errors.len()));
    }
    let mut hists: Vec<(Metric, Buckets)> = Vec::with_capacity(Metric::ALL.len());
    for h in histograms {
        let metric = Metric::from_proto(h.metric).ok_or(ReportError::UnknownMetric(h.metric))?;
        if hists.iter().any(|(m, _)| *m == metric) {
            return Err(ReportError::DuplicateMetric(metric));
        }
        let Some(Encoding::HdrV2(bytes)) = &h.encoding else {
            return Err(ReportError::NoEncoding(metric));
        };
        let hist = histogram::decode_buckets(bytes)
            .map_err(|source| ReportError::Codec { metric, source })?;
        hists.push((metric, hist));
    }
    let mut classes: Vec<&str> = errors.iter().map(|e| &*e.class).collect();
    classes.sort_unstable();
    if let Some(twice) = classes.windows(2).find(|p| p[0] == p[1]) {
        return Err(ReportError::DuplicateErrorClass(twice[0].to_string()));
    }
    let counters = counters.unwrap_or_default();
    let tallied = errors.iter().fold(0u64, |s, e| s.saturating_add(e.count));
    if tallied != counters.failed {
        return Err(ReportError::Inconsistent {
            failed: counters.failed,
            tallied,
        });
    }
    Ok(DecodedWindow {
        hists,
        counters,
        errors: errors.iter().map(|e| (e.class.clone(), e.count)).collect(),
        cpu_micros: 0,
        parts: Vec::new(),
    })
}

impl Aggregate {
    /// Add a decoded window.
    pub fn add(&mut self, w: &DecodedWindow) {
        for (metric, b) in &w.hists {
            self.counts[metric.index()].add_buckets(b);
            self.hists[metric.index()].take();
        }
        add_counters(&mut self.counters, &w.counters);
        for (class, n) in &w.errors {
            add_failures(&mut self.errors, class, *n);
        }
        self.cpu_micros = self.cpu_micros.saturating_add(w.cpu_micros);
        for (entry, part) in &w.parts {
            self.parts.entry(*entry).or_default().add(part);
        }
    }

    /// Add another aggregate (e.g. to merge a range of windows).
    pub fn merge(&mut self, other: &Aggregate) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            mine.add(theirs);
        }
        self.hists = vec![OnceLock::new(); Metric::ALL.len()];
        add_counters(&mut self.counters, &other.counters);
        for (class, n) in &other.errors {
            add_failures(&mut self.errors, class, *n);
        }
        self.cpu_micros = self.cpu_micros.saturating_add(other.cpu_micros);
        for (entry, part) in &other.parts {
            self.parts.entry(*entry).or_default().merge(part);
        }
    }

    /// The histogram of a metric.
    pub fn hist(&self, m: Metric) -> &Histogram<u64> {
        let i = m.index();
        self.hists[i].get_or_init(|| self.counts[i].to_histogram())
    }

    /// Count `value` of metric `m` `n` times.
    pub fn record_n(&mut self, m: Metric, value: u64, n: u64) {
        self.counts[m.index()].record_n(value, n);
        self.hists[m.index()].take();
    }
}

/// Add `n` failures of `class` into `by_class` (the class's name is copied
/// only the first time it is seen).
pub fn add_failures(by_class: &mut BTreeMap<String, u64>, class: &str, n: u64) {
    match by_class.get_mut(class) {
        Some(e) => *e = e.saturating_add(n),
        None => {
            by_class.insert(class.to_string(), n);
        }
    }
}

/// `c += o`, field by field, saturating: a corrupt or hostile report must
/// not panic the merge.
pub fn add_counters(c: &mut proto::Counters, o: &proto::Counters) {
    c.sent = c.sent.saturating_add(o.sent);
    c.ok = c.ok.saturating_add(o.ok);
    c.failed = c.failed.saturating_add(o.failed);
    c.skipped = c.skipped.saturating_add(o.skipped);
    c.output_tokens = c.output_tokens.saturating_add(o.output_tokens);
    c.input_tokens = c.input_tokens.saturating_add(o.input_tokens);
    c.usage_reported = c.usage_reported.saturating_add(o.usage_reported);
    c.good = c.good.saturating_add(o.good);
    c.expired = c.expired.saturating_add(o.expired);
}

/// Per-phase merge state. Reports are merged into their window only; the
/// phase's totals are the sum of its measured windows, made once by
/// [`PhaseAccumulator::restrict`] when the phase is summarized, rather
/// than a second merge of every report.
#[derive(Debug, Default)]
pub struct PhaseAccumulator {
    /// Whole-phase totals (of the measured windows), once restricted.
    pub total: Aggregate,
    /// Per window index.
    pub windows: BTreeMap<u32, (Aggregate, u32)>,
    /// What each agent reported: one lookup per report.
    agents: HashMap<String, AgentReports>,
    /// Reports that could not be used, by agent.
    pub rejected: BTreeMap<String, u64>,
    /// Duplicate reports ignored.
    pub duplicates: u64,
    /// Windows in which an agent reported itself saturated: count and last reason, by agent.
    pub saturated: BTreeMap<String, (u64, String)>,
    /// Reports each agent dropped unacknowledged (its latest cumulative count).
    pub reports_dropped: BTreeMap<String, u64>,
    /// Sampled requests whose records agents dropped (their per-window bound).
    pub records_dropped: u64,
    /// Longest arrival span reported by an agent (µs).
    pub arrivals_micros: u64,
    /// Latest completion reported by an agent (µs from phase start).
    pub finished_micros: u64,
    /// When each agent actually began the phase (Unix ns, controller clock).
    pub starts: Vec<i64>,
}

/// One agent's reports so far.
#[derive(Debug, Default)]
struct AgentReports {
    /// Reports taken, by incarnation and sequence.
    taken: HashSet<(u64, u64)>,
    /// The incarnation of its latest report.
    latest: u64,
    /// Per incarnation, requests sent and not yet reported complete (ok or
    /// failed), over every window whatever the measured interval: what a
    /// lost agent, or a restarted agent's predecessor, had in flight.
    outstanding: BTreeMap<u64, i64>,
}

/// What became of a report handed to [`PhaseAccumulator::offer`].
#[derive(Debug)]
pub enum Offered {
    /// Merged into this window index; the report as decoded, for whoever
    /// keeps a running view of the phase (the live page).
    Merged(u32, Box<DecodedWindow>),
    /// Already seen (same agent and sequence); ignored.
    Duplicate,
    /// Malformed; counted, not merged.
    Rejected(ReportError),
}

impl PhaseAccumulator {
    /// Take one report from `agent`; returns the window index when it was new and valid.
    pub fn add(&mut self, agent: &str, w: &proto::WindowReport) -> Option<u32> {
        match self.offer(agent, w) {
            Offered::Merged(i, _) => Some(i),
            Offered::Duplicate | Offered::Rejected(_) => None,
        }
    }

    /// Take one report from `agent` and say what became of it.
    pub fn offer(&mut self, agent: &str, w: &proto::WindowReport) -> Offered {
        // Keyed by agent, so that a report allocates no key once its agent
        // has reported.
        let mine = match self.agents.get_mut(agent) {
            Some(mine) => mine,
            None => self.agents.entry(agent.to_string()).or_default(),
        };
        if !mine.taken.insert((w.incarnation, w.sequence)) {
            self.duplicates += 1;
            return Offered::Duplicate;
        }
        match decode(w) {
            Ok(d) => {
                if w.reports_dropped > 0 {
                    let d = self.reports_dropped.entry(agent.to_string()).or_default();
                    *d = (*d).max(w.reports_dropped);
                }
                self.records_dropped = self.records_dropped.saturating_add(w.records_dropped);
                if !w.saturation.is_empty() {
                    let e = self.saturated.entry(agent.to_string()).or_default();
                    e.0 = e.0.saturating_add(1);
                    e.1.clone_from(&w.saturation);
                }
                let c = w.counters.unwrap_or_default();
                let open = i64::try_from(c.sent).unwrap_or(i64::MAX)
                    - i64::try_from(c.ok.saturating_add(c.failed)).unwrap_or(i64::MAX);
                *mine.outstanding.entry(w.incarnation).or_default() += open;
                mine.latest = w.incarnation;
                let entry = self.windows.entry(w.window_index).or_default();
                entry.0.add(&d);
                entry.1 = entry.1.saturating_add(1);
                Offered::Merged(w.window_index, Box::new(d))
            }
            Err(e) => {
                tracing::warn!(agent, sequence = w.sequence, "window report rejected: {e}");
                *self.rejected.entry(agent.to_string()).or_default() += 1;
                Offered::Rejected(e)
            }
        }
    }

    /// Make the phase totals the sum of windows `first..end` (warm-up and
    /// cool-down exclusion; `0..u32::MAX` for all); the per-window data stays
    /// whole for time series. Arrival and completion spans are cut to the
    /// same interval.
    pub fn restrict(&mut self, first: u32, end: u32, window: std::time::Duration) {
        let mut total = Aggregate::default();
        for (_, (w, _)) in self.windows.range(first..end) {
            total.merge(w);
        }
        self.total = total;
        let at = |i: u32| u64::try_from(window.as_micros() * u128::from(i)).unwrap_or(u64::MAX);
        let (from, to) = (at(first), at(end));
        self.arrivals_micros = self.arrivals_micros.min(to).saturating_sub(from);
        self.finished_micros = self.finished_micros.min(to).saturating_sub(from);
    }

    /// Requests sent that no report ever completed: by the agents in
    /// `lost`, and by every agent process a restart replaced.
    pub fn lost_requests(&self, lost: &[String]) -> u64 {
        self.agents
            .iter()
            .flat_map(|(a, mine)| {
                let lost = lost.contains(a);
                mine.outstanding
                    .iter()
                    .filter(move |(i, _)| lost || **i != mine.latest)
            })
            .map(|(_, n)| u64::try_from(*n).unwrap_or(0))
            .sum()
    }

    /// An agent finished its share;
    /// `d.started_unix_nanos` must already be in the controller's clock.
    pub fn done(&mut self, d: &proto::PhaseDone) {
        if d.started_unix_nanos != 0 {
            self.starts.push(d.started_unix_nanos);
        }
        self.arrivals_micros = self.arrivals_micros.max(d.arrivals_micros);
        self.finished_micros = self.finished_micros.max(d.finished_micros);
    }
}

impl MetricSummary {
    /// Summarize a histogram of `metric` (µs values shown in ms), with the
    /// plan's `chosen` percentiles when it chose any.
    pub fn of(metric: Metric, h: &Histogram<u64>, chosen: Option<&[f64]>) -> Self {
        let (unit, scale) = match metric.unit() {
            Unit::Micros => ("ms", 1e-3),
            Unit::Tokens => ("tokens", 1.0),
        };
        let q = |p: f64| quantile_or_zero(h, p) * scale;
        let empty = h.is_empty();
        MetricSummary {
            unit,
            count: h.len(),
            mean: if empty { 0.0 } else { h.mean() * scale },
            stddev: if empty { 0.0 } else { h.stdev() * scale },
            min: if empty { 0.0 } else { h.min() as f64 * scale },
            p50: q(0.5),
            p90: q(0.9),
            p95: q(0.95),
            p99: q(0.99),
            p999: q(0.999),
            max: if empty { 0.0 } else { h.max() as f64 * scale },
            chosen: chosen
                .unwrap_or_default()
                .iter()
                .map(|p| (*p, q(p / 100.0)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::SmallRng};
    use stampede_common::histogram::new_histogram;

    fn report(seq: u64, hist: &Histogram<u64>) -> proto::WindowReport {
        proto::WindowReport {
            sequence: seq,
            histograms: vec![proto::MetricHistogram {
                metric: proto::Metric::Ttft as i32,
                encoding: Some(Encoding::HdrV2(histogram::encode(hist).unwrap())),
            }],
            counters: Some(proto::Counters {
                ok: hist.len(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn summary_percentiles_interpolate_like_numpy() {
        // 100 TTFTs of 1..=100 ms: numpy.percentile(x, [50, 90, 99]) = 50.5, 90.1, 99.01.
        let mut h = new_histogram();
        for ms in 1..=100u64 {
            h.record(ms * 1_000).unwrap();
        }
        let s = MetricSummary::of(Metric::Ttft, &h, None);
        for (got, want) in [(s.p50, 50.5), (s.p90, 90.1), (s.p99, 99.01)] {
            // Within the histogram's precision at 100 ms (64 µs buckets).
            assert!((got - want).abs() < 0.07, "{got} ms, numpy says {want} ms");
        }
    }

    #[test]
    fn merged_agents_equal_one_histogram_bucket_for_bucket() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut single = new_histogram();
        let mut acc = PhaseAccumulator::default();
        for agent in 0..5 {
            for window in 0..4u64 {
                let mut h = new_histogram();
                for _ in 0..1_000 {
                    // Log-uniform latencies from 50 µs to 50 s.
                    let v = (50.0 * 10f64.powf(rng.random::<f64>() * 6.0)) as u64;
                    h.record(v).unwrap();
                    single.record(v).unwrap();
                }
                let mut r = report(window + 1, &h);
                r.window_index = window as u32;
                acc.add(&format!("a{agent}"), &r);
            }
        }
        acc.restrict(0, u32::MAX, std::time::Duration::from_secs(1));
        let merged = acc.total.hist(Metric::Ttft);
        assert_eq!(merged.len(), single.len());
        let buckets = |h: &Histogram<u64>| -> Vec<(u64, u64)> {
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect()
        };
        assert_eq!(buckets(merged), buckets(&single));
        for q in [0.5, 0.9, 0.99, 0.999] {
            assert_eq!(merged.value_at_quantile(q), single.value_at_quantile(q));
        }
    }

    #[test]
    fn warm_up_and_cool_down_windows_leave_the_totals_but_not_the_series() {
        let mut acc = PhaseAccumulator::default();
        for i in 0..10u32 {
            let mut h = new_histogram();
            h.record_n(1000 * u64::from(i + 1), 10).unwrap();
            let mut r = report(u64::from(i) + 1, &h);
            r.window_index = i;
            acc.add("a", &r);
        }
        acc.arrivals_micros = 9_500_000;
        acc.finished_micros = 10_000_000;
        acc.restrict(2, 8, std::time::Duration::from_secs(1));
        let t = acc.total.hist(Metric::Ttft);
        assert_eq!(t.len(), 60);
        assert_eq!((t.min(), t.max() / 1000), (3000, 8));
        assert_eq!(acc.total.counters.ok, 60);
        assert_eq!(acc.windows.len(), 10);
        assert_eq!(
            (acc.arrivals_micros, acc.finished_micros),
            (6_000_000, 6_000_000)
        );
        // Warm-up only: completions in the drain still count.
        let mut acc2 = PhaseAccumulator {
            finished_micros: 10_400_000,
            arrivals_micros: 10_000_000,
            ..Default::default()
        };
        acc2.restrict(3, u32::MAX, std::time::Duration::from_secs(1));
        assert_eq!(
            (acc2.arrivals_micros, acc2.finished_micros),
            (7_000_000, 7_400_000)
        );
    }

    #[test]
    fn duplicates_and_bad_reports_are_counted_not_merged() {
        let mut h = new_histogram();
        h.record(10).unwrap();
        let mut acc = PhaseAccumulator::default();
        assert_eq!(acc.add("a", &report(1, &h)), Some(0));
        assert_eq!(acc.add("a", &report(1, &h)), None);
        assert_eq!(acc.duplicates, 1);
        let mut bad = report(2, &h);
        bad.histograms[0].encoding = Some(Encoding::HdrV2(vec![1, 2, 3]));
        assert_eq!(acc.add("a", &bad), None);
        let mut inconsistent = report(3, &h);
        inconsistent.counters = Some(proto::Counters {
            failed: 2,
            ..Default::default()
        });
        assert_eq!(acc.add("a", &inconsistent), None);
        let mut twice = report(4, &h);
        twice.counters = Some(proto::Counters {
            ok: 1,
            failed: 3,
            ..Default::default()
        });
        twice.errors = ["connect", "timeout", "connect"]
            .map(|class| proto::ErrorTally {
                class: class.into(),
                count: 1,
            })
            .into();
        assert!(matches!(
            decode(&twice),
            Err(ReportError::DuplicateErrorClass(c)) if c == "connect"
        ));
        assert_eq!(acc.add("a", &twice), None);
        assert_eq!(acc.rejected["a"], 3);
        acc.restrict(0, u32::MAX, std::time::Duration::from_secs(1));
        assert_eq!(acc.total.hist(Metric::Ttft).len(), 1);
    }
}

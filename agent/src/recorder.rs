//! Per-window recording for one phase.
//!
//! Every request lands in the window in which it completed (sends in the
//! window in which they were sent). The window index is computed under the
//! lock with the same clock the flusher uses, so a window handed to the
//! flusher can never be written again. Only histograms, counters and a
//! bounded number of sampled requests' records ([`crate::records`]) are
//! kept: memory does not grow with the number of requests.

use crate::client::{Success, micros};
use crate::failure::FailureClass;
use crate::records::{Draft, Sampler};
use crate::tally::{Tally, record_saturating};
use hdrhistogram::Histogram;
use stampede_common::histogram::new_histogram;
use stampede_common::metric::Metric;
use stampede_common::proto;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Schedule lag p99 above which a window counts as saturated (µs).
pub const SATURATION_LAG_MICROS: u64 = 5_000;
/// Share of the machine's CPU above which a window counts as saturated.
pub const SATURATION_CPU: f64 = 0.9;
/// Lateness of a window's flush past its end above which the agent counts
/// as stalled in that window (its process was stopped or starved).
pub const STALL: Duration = Duration::from_millis(250);

/// Measurements of one window.
#[derive(Debug, Clone)]
pub struct WindowData {
    /// Every request of the window.
    total: Tally,
    /// The same requests by workload entry, when the phase records parts.
    parts: BTreeMap<u32, Tally>,
    /// How late past the window's end it was flushed, when late by more than [`STALL`].
    stalled: Option<Duration>,
    /// Sampled requests completed in the window.
    records: Vec<proto::RequestRecord>,
    /// Sampled requests beyond the window's bound.
    records_dropped: u64,
    /// The agent's own part of each send's lag: from when the arrival was
    /// free to go (its intended time, or the end of its wait for a slot
    /// under a concurrency cap) to the send. Saturation reads this one, not
    /// the schedule lag reported, which includes the cap's waits, once a
    /// send of the window has waited (`waited`): until then they are equal.
    own_lag: Histogram<u64>,
    /// A send of this window waited for a slot.
    waited: bool,
    /// Arrivals of `counters.expired` that expired waiting for a slot under
    /// the cap (the cap's doing, not a stall of the agent).
    expired_waiting: u64,
}

impl Default for WindowData {
    fn default() -> Self {
        Self {
            total: Tally::default(),
            parts: BTreeMap::new(),
            stalled: None,
            records: Vec::new(),
            records_dropped: 0,
            own_lag: new_histogram(),
            waited: false,
            expired_waiting: 0,
        }
    }
}

impl WindowData {
    #[cfg(test)]
    fn record(&mut self, metric: Metric, value: u64) {
        self.total.record(metric, value);
    }

    /// Apply `f` to the window's total and, when `entry` is given, to that
    /// entry's part.
    fn each(&mut self, entry: Option<u32>, mut f: impl FnMut(&mut Tally)) {
        f(&mut self.total);
        if let Some(e) = entry {
            f(self.parts.entry(e).or_default());
        }
    }

    /// Mark the window flushed `late` past its end; beyond [`STALL`] the
    /// agent itself was not running for part of it.
    pub fn flushed_late(&mut self, late: Duration) {
        if late > STALL {
            self.stalled = Some(late);
        }
    }

    /// Why this window counts as saturated, if it does: the agent stalled
    /// (arrivals expired unsent other than waiting for a slot under a cap,
    /// or the window was flushed more than [`STALL`] late), its own schedule
    /// lag p99 above [`SATURATION_LAG_MICROS`], or CPU above
    /// [`SATURATION_CPU`] of the machine's cores.
    pub fn saturation(&self, cpu_micros: u64, window: Duration) -> Option<String> {
        let stalled = self.total.counters.expired - self.expired_waiting;
        if stalled > 0 {
            return Some(format!("agent stalled: {stalled} arrivals expired unsent"));
        }
        if let Some(late) = self.stalled {
            return Some(format!(
                "agent stalled: window flushed {:.1} s late",
                late.as_secs_f64()
            ));
        }
        let lag = if self.waited {
            &self.own_lag
        } else {
            self.total.hist(Metric::ScheduleLag)
        };
        let lag_p99 = if lag.is_empty() {
            0
        } else {
            lag.value_at_quantile(0.99)
        };
        if lag_p99 > SATURATION_LAG_MICROS {
            return Some(format!("schedule lag p99 {:.1} ms", lag_p99 as f64 / 1e3));
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let busy = cpu_micros as f64 / (window.as_micros().max(1) as f64 * cores);
        (busy > SATURATION_CPU).then(|| format!("CPU {:.0}% of {cores} cores", 100.0 * busy))
    }

    /// The wire form of the window (sequence number left 0 for the session to set).
    pub fn into_report(
        self,
        phase_index: u32,
        window_index: u32,
        cpu_micros: u64,
        window: Duration,
    ) -> proto::WindowReport {
        let saturation = self.saturation(cpu_micros, window).unwrap_or_default();
        let parts = self
            .parts
            .into_iter()
            .map(|(entry, t)| {
                let (histograms, counters, errors) = t.into_wire();
                proto::WindowPart {
                    entry,
                    histograms,
                    counters: Some(counters),
                    errors,
                }
            })
            .collect();
        let (histograms, counters, errors) = self.total.into_wire();
        proto::WindowReport {
            sequence: 0,
            phase_index,
            window_index,
            histograms,
            counters: Some(counters),
            errors,
            agent_cpu_micros: cpu_micros,
            saturation,
            // Numbered by the session.
            reports_dropped: 0,
            incarnation: 0,
            records: self.records,
            records_dropped: self.records_dropped,
            parts,
        }
    }

    /// Counters of the window.
    pub fn counters(&self) -> &proto::Counters {
        &self.total.counters
    }

    /// Keep `record` when the window has room for it (`bound`), else count it dropped.
    fn keep(&mut self, record: Option<proto::RequestRecord>, bound: usize) {
        match record {
            Some(r) if self.records.len() < bound => self.records.push(r),
            Some(_) => self.records_dropped += 1,
            None => {}
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    open: BTreeMap<u32, WindowData>,
    next_unflushed: u32,
    last_completion: Option<Instant>,
}

/// Thread-safe recorder of one phase's windows.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    window: Duration,
    inner: Mutex<Inner>,
    /// Per-request bounds for goodput (µs; 0 = none), when the phase has any.
    goodput: Option<proto::GoodputBounds>,
    /// Which requests are recorded one by one, when any are.
    sampler: Option<Sampler>,
    /// Record each workload entry's requests as a part of the window too.
    parts: bool,
}

impl Recorder {
    /// A recorder whose window 0 starts at `start`.
    pub fn new(start: Instant, window: Duration) -> Self {
        Self {
            start,
            window,
            inner: Mutex::new(Inner::default()),
            goodput: None,
            sampler: None,
            parts: false,
        }
    }

    /// Record each workload entry's requests as a part of every window too
    /// (`on`: the workload has 2 to `MAX_WINDOW_PARTS` entries).
    #[must_use]
    pub fn with_parts(mut self, on: bool) -> Self {
        self.parts = on;
        self
    }

    /// The part a request of `entry` is also recorded in, if any.
    fn part(&self, entry: Option<u32>) -> Option<u32> {
        entry.filter(|_| self.parts)
    }

    /// Record the requests `sampler` picks one by one.
    #[must_use]
    pub fn with_records(mut self, sampler: Option<Sampler>) -> Self {
        self.sampler = sampler;
        self
    }

    /// The draft of request `k`'s record when it is sampled (turn `turn`
    /// of a session, from workload entry `entry`); `None` costs nothing.
    pub fn sample(
        &self,
        k: u64,
        turn: u32,
        intended: Instant,
        sent: Instant,
        entry: Option<u32>,
    ) -> Option<Draft> {
        self.sampler.filter(|s| s.sampled(k)).map(|_| Draft {
            number: k,
            turn,
            intended,
            sent,
            entry,
        })
    }

    fn records_bound(&self) -> usize {
        self.sampler.map_or(0, |s| s.per_window)
    }

    /// Count successful requests within `bounds` as good.
    #[must_use]
    pub fn with_goodput(mut self, bounds: Option<proto::GoodputBounds>) -> Self {
        self.goodput =
            bounds.filter(|b| b.ttft_micros > 0 || b.tpot_micros > 0 || b.e2e_micros > 0);
        self
    }

    fn index_at(&self, now: Instant) -> u32 {
        let since = now.saturating_duration_since(self.start);
        u32::try_from(since.as_nanos() / self.window.as_nanos().max(1)).unwrap_or(u32::MAX)
    }

    /// Run `f` on the window open now (under the lock, with the flusher's
    /// clock); `completion` also records the time as the last completion.
    fn with_window<R>(&self, completion: bool, f: impl FnOnce(&mut WindowData) -> R) -> R {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let idx = self.index_at(now).max(inner.next_unflushed);
        if completion {
            inner.last_completion = Some(now);
        }
        f(inner.open.entry(idx).or_default())
    }

    /// A request was sent `lag` after its intended time.
    pub fn sent(&self, lag: Duration) {
        self.sent_after(lag, lag, None);
    }

    /// A request of workload entry `entry` was sent `lag` after its intended
    /// time, `own` of it after it was free to go (the rest it waited for a
    /// slot under a cap).
    pub fn sent_after(&self, lag: Duration, own: Duration, entry: Option<u32>) {
        crate::live::LIVE.sent(lag);
        let part = self.part(entry);
        self.with_window(false, |w| {
            w.each(part, |t| {
                t.counters.sent += 1;
                t.record(Metric::ScheduleLag, micros(lag));
            });
            record_saturating(&mut w.own_lag, micros(own));
            w.waited |= own < lag;
        });
    }

    /// `n` due arrivals could not be sent.
    pub fn skipped(&self, n: u64) {
        crate::live::LIVE.skipped(n);
        self.with_window(false, |w| w.total.counters.skipped += n);
    }

    /// `n` due arrivals were not sent: their deadline had passed when the
    /// agent got to them.
    pub fn expired(&self, n: u64) {
        crate::live::LIVE.skipped(n);
        self.with_window(false, |w| w.total.counters.expired += n);
    }

    /// `n` due arrivals were not sent: their deadline passed while they
    /// waited for a slot under the concurrency cap (counted as expired).
    pub fn expired_waiting(&self, n: u64) {
        crate::live::LIVE.skipped(n);
        self.with_window(false, |w| {
            w.total.counters.expired += n;
            w.expired_waiting += n;
        });
    }

    /// A request of workload entry `entry`, intended at `intended`,
    /// succeeded (`draft`: it is sampled).
    pub fn success(
        &self,
        (intended, entry): (Instant, Option<u32>),
        s: &Success,
        itl_gaps: &[u64],
        draft: Option<Draft>,
    ) {
        crate::live::LIVE.ok();
        let ttft = micros(s.first_token.saturating_duration_since(intended));
        let e2e = micros(s.last_token.saturating_duration_since(intended));
        let tpot = (s.output_tokens > 1).then(|| e2e.saturating_sub(ttft) / (s.output_tokens - 1));
        let good = self.goodput.is_some_and(|b| {
            let within = |bound: u64, v: u64| bound == 0 || v <= bound;
            within(b.ttft_micros, ttft)
                && within(b.e2e_micros, e2e)
                && within(b.tpot_micros, tpot.unwrap_or(0))
        });
        let record = draft.map(|d| d.finish(self.start, Ok((s, itl_gaps))));
        let (bound, part) = (self.records_bound(), self.part(entry));
        self.with_window(true, |w| {
            w.keep(record, bound);
            w.each(part, |t| {
                let c = &mut t.counters;
                c.ok += 1;
                c.good += u64::from(good);
                c.output_tokens += s.output_tokens;
                c.input_tokens += s.prompt_tokens.unwrap_or(0);
                c.usage_reported += u64::from(s.usage_reported);
                t.record(Metric::Ttft, ttft);
                t.record(Metric::E2e, e2e);
                t.record(Metric::OutputTokens, s.output_tokens);
                if let Some(prompt) = s.prompt_tokens {
                    t.record(Metric::InputTokens, prompt);
                }
                if let Some(ntpot) = e2e.checked_div(s.output_tokens) {
                    t.record(Metric::Ntpot, ntpot);
                }
                if let Some(tpot) = tpot {
                    t.record(Metric::Tpot, tpot);
                }
                for &gap in itl_gaps {
                    t.record(Metric::Itl, gap);
                }
            });
        });
    }

    /// A request of workload entry `entry` failed (`draft`: it is sampled).
    pub fn failure(&self, class: FailureClass, entry: Option<u32>, draft: Option<Draft>) {
        crate::live::LIVE.failed(&class.label());
        let record = draft.map(|d| d.finish(self.start, Err(class)));
        let (bound, part) = (self.records_bound(), self.part(entry));
        self.with_window(true, |w| {
            w.keep(record, bound);
            w.each(part, |t| t.failed(class));
        });
    }

    /// Take every window before `end` (exclusive), including empty ones, in order.
    pub fn take_before(&self, end: u32) -> Vec<(u32, WindowData)> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        while inner.next_unflushed < end {
            let idx = inner.next_unflushed;
            out.push((idx, inner.open.remove(&idx).unwrap_or_default()));
            inner.next_unflushed += 1;
        }
        out
    }

    /// Take every window up to and including the current one.
    pub fn take_all(&self) -> Vec<(u32, WindowData)> {
        let end = {
            let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let last_open = inner.open.keys().next_back().copied().unwrap_or(0);
            self.index_at(Instant::now())
                .max(last_open)
                .max(inner.next_unflushed)
                + 1
        };
        self.take_before(end)
    }

    /// Time of the last completed request, if any.
    pub fn last_completion(&self) -> Option<Instant> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_completion
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturation_is_flagged_by_lag_or_cpu() {
        let second = Duration::from_secs(1);
        let mut w = WindowData::default();
        w.record(Metric::ScheduleLag, 100);
        assert_eq!(w.saturation(10_000, second), None);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let busy = w
            .saturation(cores * 950_000, second)
            .expect("CPU-bound window");
        assert!(busy.contains("CPU"), "{busy}");
        for _ in 0..10 {
            w.record(Metric::ScheduleLag, 12_000);
        }
        let late = w.saturation(0, second).expect("lagging window");
        assert!(late.contains("schedule lag"), "{late}");
        assert_eq!(w.into_report(0, 0, 0, second).saturation, late);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_land_in_their_completion_window() {
        let start = Instant::now();
        let rec = Recorder::new(start, Duration::from_secs(1));
        rec.sent(Duration::from_micros(3));
        tokio::time::advance(Duration::from_millis(1500)).await;
        rec.failure(FailureClass::Http(503), None, None);
        let windows = rec.take_before(2);
        assert_eq!(windows.len(), 2);
        assert_eq!(windows[0].1.counters().sent, 1);
        assert_eq!(windows[1].1.counters().failed, 1);
        // A late write after the flush goes to the next open window, never a flushed one.
        rec.failure(FailureClass::Connect, None, None);
        let rest = rec.take_all();
        assert_eq!(rest[0].0, 2);
        assert_eq!(
            rest.iter().map(|(_, w)| w.counters().failed).sum::<u64>(),
            1
        );
    }

    #[tokio::test(start_paused = true)]
    async fn each_entry_is_a_part_of_the_window_and_the_parts_add_up() {
        let start = Instant::now();
        let ms = |n: u64| start + Duration::from_millis(n);
        let ok = |ttft: u64| Success {
            first_token: ms(ttft),
            last_token: ms(ttft + 10),
            output_tokens: 2,
            usage_reported: true,
            prompt_tokens: Some(7),
            status: 200,
        };
        for parts in [true, false] {
            let rec = Recorder::new(start, Duration::from_secs(1)).with_parts(parts);
            for entry in [0, 1, 1] {
                rec.sent_after(Duration::ZERO, Duration::ZERO, Some(entry));
            }
            rec.success((start, Some(0)), &ok(20), &[10_000], None);
            rec.success((start, Some(1)), &ok(80), &[10_000], None);
            rec.failure(FailureClass::Http(503), Some(1), None);
            rec.expired(2);
            let report = rec
                .take_all()
                .remove(0)
                .1
                .into_report(0, 0, 0, Duration::from_secs(1));
            let c = report.counters.unwrap_or_default();
            assert_eq!((c.sent, c.ok, c.failed, c.expired), (3, 2, 1, 2));
            if !parts {
                assert!(report.parts.is_empty());
                continue;
            }
            let part = |e: usize| {
                let p = &report.parts[e];
                let c = p.counters.unwrap_or_default();
                (p.entry, c.sent, c.ok, c.failed, c.expired, p.errors.len())
            };
            assert_eq!(part(0), (0, 1, 1, 0, 0, 0));
            assert_eq!(part(1), (1, 2, 1, 1, 0, 1));
            let ttft = |hists: &[proto::MetricHistogram]| {
                let h = hists
                    .iter()
                    .find(|h| h.metric == Metric::Ttft.to_proto() as i32)
                    .and_then(|h| match &h.encoding {
                        Some(proto::metric_histogram::Encoding::HdrV2(b)) => {
                            stampede_common::histogram::decode(b).ok()
                        }
                        None => None,
                    })
                    .expect("a TTFT histogram");
                (h.len(), h.max() / 1000)
            };
            assert_eq!(ttft(&report.histograms), (2, 80));
            assert_eq!(ttft(&report.parts[0].histograms), (1, 20));
            assert_eq!(ttft(&report.parts[1].histograms), (1, 80));
        }
    }
}

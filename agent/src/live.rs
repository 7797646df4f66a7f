//! Live Prometheus metrics of the agents in this process: requests sent,
//! succeeded, failed by class and skipped, requests in flight, schedule lag
//! and the phase running — for dashboards while a run goes on. The exact
//! per-window results still travel to the controller as histograms; these
//! are cheap process-wide counters (a few relaxed atomic additions per
//! request) rendered as Prometheus text, which `stampede_runtime::metrics`
//! serves.

use stampede_runtime::metrics::escape;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Upper bounds of the schedule-lag histogram buckets (seconds).
const LAG_BOUNDS: [f64; 8] = [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25];

/// Process-wide live counters.
#[derive(Debug, Default)]
pub struct Live {
    sent: AtomicU64,
    ok: AtomicU64,
    skipped: AtomicU64,
    failed: Mutex<BTreeMap<String, u64>>,
    in_flight: AtomicI64,
    /// Non-cumulative counts per bucket, the last for beyond every bound.
    lag_buckets: [AtomicU64; LAG_BOUNDS.len() + 1],
    lag_sum_micros: AtomicU64,
    /// Phases running now: (agent's phase number, name).
    phases: Mutex<BTreeMap<u32, String>>,
}

/// The process's live counters.
pub static LIVE: LazyLock<Live> = LazyLock::new(Live::default);

impl Live {
    /// A request was sent `lag` after its intended time.
    pub fn sent(&self, lag: Duration) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let secs = lag.as_secs_f64();
        let i = LAG_BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LAG_BOUNDS.len());
        self.lag_buckets[i].fetch_add(1, Ordering::Relaxed);
        self.lag_sum_micros.fetch_add(
            u64::try_from(lag.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// A request succeeded.
    pub fn ok(&self) {
        self.ok.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` due arrivals were not sent.
    pub fn skipped(&self, n: u64) {
        self.skipped.fetch_add(n, Ordering::Relaxed);
    }

    /// A request failed with `class`.
    pub fn failed(&self, class: &str) {
        let mut f = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        *f.entry(class.to_string()).or_default() += 1;
    }

    /// A request started (`+1`) or ended (`-1`).
    pub fn in_flight(&self, delta: i64) {
        self.in_flight.fetch_add(delta, Ordering::Relaxed);
    }

    /// A phase started (`Some(name)`) or ended (`None`).
    pub fn phase(&self, index: u32, name: Option<&str>) {
        let mut p = self.phases.lock().unwrap_or_else(|e| e.into_inner());
        match name {
            Some(n) => {
                p.insert(index, n.to_string());
            }
            None => {
                p.remove(&index);
            }
        }
    }

    /// The Prometheus text page (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            &mut out,
            "stampede_agent_requests_sent_total",
            "Requests sent.",
            self.sent.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "stampede_agent_requests_ok_total",
            "Requests that succeeded.",
            self.ok.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "stampede_agent_arrivals_skipped_total",
            "Arrivals due but not sent (in-flight bound).",
            self.skipped.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP stampede_agent_requests_failed_total Requests that failed, by class.\n\
             # TYPE stampede_agent_requests_failed_total counter"
        );
        for (class, n) in self.failed.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "stampede_agent_requests_failed_total{{class=\"{}\"}} {n}",
                escape(class)
            );
        }
        let _ = writeln!(
            out,
            "# HELP stampede_agent_in_flight Requests in flight.\n\
             # TYPE stampede_agent_in_flight gauge\n\
             stampede_agent_in_flight {}",
            self.in_flight.load(Ordering::Relaxed).max(0)
        );
        let _ = writeln!(
            out,
            "# HELP stampede_agent_schedule_lag_seconds Intended to actual send time.\n\
             # TYPE stampede_agent_schedule_lag_seconds histogram"
        );
        let mut cumulative = 0;
        for (i, bucket) in self.lag_buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = LAG_BOUNDS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                out,
                "stampede_agent_schedule_lag_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "stampede_agent_schedule_lag_seconds_sum {}\n\
             stampede_agent_schedule_lag_seconds_count {cumulative}",
            self.lag_sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# HELP stampede_agent_phase_running Phases this process runs now (1 per phase).\n\
             # TYPE stampede_agent_phase_running gauge"
        );
        for (index, name) in self.phases.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "stampede_agent_phase_running{{index=\"{index}\",phase=\"{}\"}} 1",
                escape(name)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_counts_requests_by_class_and_buckets_lag() {
        let live = Live::default();
        live.sent(Duration::from_micros(50));
        live.sent(Duration::from_millis(3));
        live.sent(Duration::from_secs(1));
        live.ok();
        live.failed("http_5xx:503");
        live.failed("http_5xx:503");
        live.in_flight(2);
        live.phase(3, Some("ramp \"a\""));
        let page = live.render();
        for line in [
            "stampede_agent_requests_sent_total 3",
            "stampede_agent_requests_ok_total 1",
            "stampede_agent_requests_failed_total{class=\"http_5xx:503\"} 2",
            "stampede_agent_in_flight 2",
            "stampede_agent_schedule_lag_seconds_bucket{le=\"0.0001\"} 1",
            "stampede_agent_schedule_lag_seconds_bucket{le=\"0.005\"} 2",
            "stampede_agent_schedule_lag_seconds_bucket{le=\"+Inf\"} 3",
            "stampede_agent_schedule_lag_seconds_count 3",
            "stampede_agent_phase_running{index=\"3\",phase=\"ramp \\\"a\\\"\"} 1",
        ] {
            assert!(page.lines().any(|l| l == line), "{line}\n{page}");
        }
        live.phase(3, None);
        assert!(!live.render().contains("phase_running{"));
    }
}

//! The controller's live Prometheus page: a [`View`] of the run encoded by
//! `prometheus-client` in the text format (0.0.4). A family is written only
//! when it has a series, so nothing that does not exist shows as zero.

use super::series::{METRICS, Series, Snapshot, bounds};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use stampede_common::metric::Metric;
use std::fmt;

/// Label pairs of one series.
type Labels = Vec<(&'static str, String)>;

/// Everything the page shows, taken at one scrape.
#[derive(Debug, Default)]
pub struct View {
    pub run: String,
    pub agents: u64,
    pub windows: u64,
    /// (plan index, name, kind) of the phase running.
    pub running: Option<(u32, String, String)>,
    /// Every phase started in this run, in plan order, with what it merged so far.
    pub phases: Vec<(String, Snapshot)>,
}

/// One series' value.
enum Value<'a> {
    Counter(u64),
    Gauge(u64),
    Histogram(&'a super::series::Classic, &'static [f64]),
}

/// Write one family, if it has a series.
fn family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: Vec<(Labels, Value<'_>)>,
) -> fmt::Result {
    let Some((_, first)) = rows.first() else {
        return Ok(());
    };
    let kind = match first {
        Value::Counter(_) => MetricType::Counter,
        Value::Gauge(_) => MetricType::Gauge,
        Value::Histogram(..) => MetricType::Histogram,
    };
    let mut metric = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in &rows {
        let mut series = metric.encode_family(labels)?;
        match value {
            Value::Counter(v) => series.encode_counter::<NoLabelSet, _, u64>(v, None)?,
            Value::Gauge(v) => series.encode_gauge(v)?,
            Value::Histogram(b, le) => {
                let buckets: Vec<(f64, u64)> = le
                    .iter()
                    .copied()
                    .chain([f64::INFINITY])
                    .zip(b.counts.iter().copied())
                    .collect();
                series.encode_histogram::<NoLabelSet>(b.sum, b.count, &buckets, None)?;
            }
        }
    }
    Ok(())
}

/// The counters of a phase: (name, help, value, whether breakdowns have
/// it). Arrivals never sent have no workload entry yet, so breakdowns count
/// requests sent and what became of them only.
type CounterDef = (&'static str, &'static str, fn(&Series) -> u64, bool);
const COUNTERS: [CounterDef; 7] = [
    (
        "requests_offered",
        "Arrivals the schedule made due: sent, skipped or expired.",
        Series::offered,
        false,
    ),
    ("requests_sent", "Requests sent.", |s| s.counters.sent, true),
    (
        "requests_ok",
        "Requests that succeeded.",
        |s| s.counters.ok,
        true,
    ),
    (
        "requests_skipped",
        "Arrivals not sent: the in-flight bound was reached.",
        |s| s.counters.skipped,
        false,
    ),
    (
        "requests_expired",
        "Arrivals not sent: their deadline passed before a send slot.",
        |s| s.counters.expired,
        false,
    ),
    (
        "output_tokens",
        "Output tokens received.",
        |s| s.counters.output_tokens,
        true,
    ),
    (
        "input_tokens",
        "Prompt tokens, as the server counted them.",
        |s| s.counters.input_tokens,
        true,
    ),
];

/// What `m` measures, for the page's help lines.
fn long_name(m: Metric) -> &'static str {
    match m {
        Metric::Ttft => "time to first token",
        Metric::Itl => "inter-token latency",
        Metric::E2e => "end-to-end latency",
        Metric::Tpot => "time per output token",
        _ => "schedule lag, intended to actual send",
    }
}

impl View {
    /// Every series of one kind of figure: the phases' totals, or their
    /// breakdowns (with `by` and `breakdown` labels).
    fn series(&self, breakdowns: bool) -> Vec<(Labels, &Series)> {
        let mut out = Vec::new();
        for (phase, snap) in &self.phases {
            let base = vec![("run", self.run.clone()), ("phase", phase.clone())];
            if !breakdowns {
                out.push((base, &snap.total));
                continue;
            }
            for ((by, name), s) in &snap.breakdowns {
                let mut l = base.clone();
                l.extend([("by", by.name().to_string()), ("breakdown", name.clone())]);
                out.push((l, s));
            }
        }
        out
    }

    /// The families of the phases' totals, or of their breakdowns.
    fn figures(&self, enc: &mut DescriptorEncoder, breakdowns: bool) -> fmt::Result {
        let all = self.series(breakdowns);
        let (what, prefix) = if breakdowns {
            ("Breakdown", "breakdown_")
        } else {
            ("Phase", "")
        };
        for m in METRICS {
            let rows = all
                .iter()
                .filter_map(|(l, s)| {
                    Some((
                        l.clone(),
                        Value::Histogram(s.hists.get(m.name())?, bounds(m)),
                    ))
                })
                .collect();
            let help = format!(
                "{what} {} (s), merged from every agent's windows.",
                long_name(m)
            );
            family(
                enc,
                &format!("stampede_controller_{prefix}{}_seconds", m.name()),
                &help,
                rows,
            )?;
        }
        for (name, help, get, _) in COUNTERS.iter().filter(|c| c.3 || !breakdowns) {
            let rows = all
                .iter()
                .map(|(l, s)| (l.clone(), Value::Counter(get(s))))
                .collect();
            family(
                enc,
                &format!("stampede_controller_{prefix}{name}"),
                help,
                rows,
            )?;
        }
        let failed = all
            .iter()
            .flat_map(|(l, s)| {
                s.failed.iter().map(|(class, n)| {
                    let mut l = l.clone();
                    l.push(("class", class.clone()));
                    (l, Value::Counter(*n))
                })
            })
            .collect();
        family(
            enc,
            &format!("stampede_controller_{prefix}requests_failed"),
            "Requests that failed, by failure class.",
            failed,
        )
    }
}

impl Collector for View {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        family(
            &mut enc,
            "stampede_controller_agents_connected",
            "Agents connected now.",
            vec![(Vec::new(), Value::Gauge(self.agents))],
        )?;
        family(
            &mut enc,
            "stampede_controller_windows_merged",
            "Agent window reports merged.",
            vec![(Vec::new(), Value::Counter(self.windows))],
        )?;
        let running = self.running.iter().map(|(i, name, kind)| {
            let l = vec![
                ("run", self.run.clone()),
                ("index", i.to_string()),
                ("phase", name.clone()),
                ("kind", kind.clone()),
            ];
            (l, Value::Gauge(1))
        });
        family(
            &mut enc,
            "stampede_controller_phase_running",
            "The phase running now (1).",
            running.collect(),
        )?;
        self.figures(&mut enc, false)?;
        self.figures(&mut enc, true)
    }
}

/// `view` as Prometheus text.
pub fn render(view: View) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(view));
    let mut out = String::with_capacity(8192);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

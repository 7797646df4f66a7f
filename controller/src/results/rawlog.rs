//! `windows.jsonl`: the raw results of a run, appended as they arrive.
//!
//! Every output of a run (stats, summary, CSV, HDR logs, charts, llm-d
//! reports) is derived from this file plus `plan.toml` and `manifest.json`,
//! so a controller killed mid-run loses at most the report it was writing,
//! and `controller report` can rebuild everything without re-running. One
//! JSON object per line; histograms stay in the exact HDR V2 bytes the
//! agents sent (base64), so a rebuild merges them bucket for bucket again.
//! Each line is flushed to the OS as soon as it is written (it survives the
//! process being killed) and the file is synced to disk at each phase end.

use crate::model::StepRecord;
use crate::model::summary::is_zero;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use stampede_common::metric::Metric;
use stampede_common::proto::{self, metric_histogram::Encoding};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// File name of the raw log inside a run directory.
pub const FILE_NAME: &str = "windows.jsonl";

/// Longest line accepted when reading a raw log back (bytes).
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// Errors writing or reading a raw log.
#[derive(Debug, thiserror::Error)]
pub enum RawLogError {
    /// The file could not be opened, written or read.
    #[error("{path}: {source}")]
    Io {
        /// The raw log.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A line is not a valid record.
    #[error("{path}:{line}: {message}")]
    Corrupt {
        /// The raw log.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// One workload entry's part of a window (mirror of the wire `WindowPart`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawPart {
    /// Index of the entry in the phase's workload.
    pub entry: u32,
    /// Counters.
    pub counters: RawCounters,
    /// Failures by class.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
    /// HDR V2 histograms (base64) by metric name.
    pub histograms: BTreeMap<String, String>,
}

/// Wire histograms as base64 by metric name (unknown metrics and encodings
/// are left out: the report was checked before it was recorded).
fn hists_to_raw(hists: &[proto::MetricHistogram]) -> BTreeMap<String, String> {
    hists
        .iter()
        .filter_map(|h| {
            let metric = Metric::from_proto(h.metric)?;
            let Some(Encoding::HdrV2(bytes)) = &h.encoding else {
                return None;
            };
            Some((metric.name().to_string(), B64.encode(bytes)))
        })
        .collect()
}

/// The wire histograms of a record's base64 ones.
fn hists_from_raw(raw: &BTreeMap<String, String>) -> Result<Vec<proto::MetricHistogram>, String> {
    let mut hists = Vec::with_capacity(raw.len());
    for (name, b64) in raw {
        let metric = Metric::ALL
            .iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| format!("unknown metric {name:?}"))?;
        let bytes = B64
            .decode(b64)
            .map_err(|e| format!("histogram {name}: invalid base64: {e}"))?;
        hists.push(proto::MetricHistogram {
            metric: metric.to_proto() as i32,
            encoding: Some(Encoding::HdrV2(bytes)),
        });
    }
    Ok(hists)
}

/// Wire error tallies as a map by class.
fn errors_to_raw(errors: &[proto::ErrorTally]) -> BTreeMap<String, u64> {
    errors.iter().map(|e| (e.class.clone(), e.count)).collect()
}

/// The wire error tallies of a record's map.
fn errors_from_raw(errors: &BTreeMap<String, u64>) -> Vec<proto::ErrorTally> {
    errors
        .iter()
        .map(|(class, count)| proto::ErrorTally {
            class: class.clone(),
            count: *count,
        })
        .collect()
}

/// Counters of one window report (mirror of the wire `Counters`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawCounters {
    /// Requests sent.
    pub sent: u64,
    /// Requests that succeeded.
    pub ok: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Arrivals due but not sent.
    pub skipped: u64,
    /// Output tokens of successful requests.
    pub output_tokens: u64,
    /// Prompt tokens of successful requests.
    pub input_tokens: u64,
    /// Successful requests whose token count came from `usage`.
    pub usage_reported: u64,
    /// Successful requests within every goodput bound.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub good: u64,
    /// Arrivals that expired unsent (the agent was stalled).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub expired: u64,
}

impl From<proto::Counters> for RawCounters {
    fn from(c: proto::Counters) -> Self {
        Self {
            sent: c.sent,
            ok: c.ok,
            failed: c.failed,
            skipped: c.skipped,
            output_tokens: c.output_tokens,
            input_tokens: c.input_tokens,
            usage_reported: c.usage_reported,
            good: c.good,
            expired: c.expired,
        }
    }
}

impl From<RawCounters> for proto::Counters {
    fn from(c: RawCounters) -> Self {
        Self {
            sent: c.sent,
            ok: c.ok,
            failed: c.failed,
            skipped: c.skipped,
            output_tokens: c.output_tokens,
            input_tokens: c.input_tokens,
            usage_reported: c.usage_reported,
            good: c.good,
            expired: c.expired,
        }
    }
}

/// One line of the raw log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "record", rename_all = "snake_case", deny_unknown_fields)]
pub enum Record {
    /// A phase was assigned to agents.
    PhaseStart {
        /// Index of the phase in the plan.
        phase: u32,
        /// Repeat of the plan's phases this run belongs to (0-based).
        #[serde(default)]
        repeat: u32,
        /// Its name.
        name: String,
        /// Common start instant, controller clock (ns since the Unix epoch).
        start_unix_nanos: i64,
        /// Window length (ms).
        window_ms: u64,
        /// Agents assigned.
        agents: Vec<String>,
        /// Each assigned agent's shard weight (same order as `agents`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        shard_weights: Vec<u32>,
        /// The step of a stress phase this assignment runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<StepRecord>,
    },
    /// One scrape of the target's metrics page.
    Scrape {
        /// Phase index.
        phase: u32,
        /// The page.
        url: String,
        /// Milliseconds since the phase's start.
        at_ms: u64,
        /// Declared type of each family.
        types: BTreeMap<String, String>,
        /// (sample name, labels, value) of the kept families.
        samples: Vec<(String, crate::model::Labels, f64)>,
    },
    /// A scrape that failed.
    ScrapeFailed {
        /// Phase index.
        phase: u32,
        /// The page.
        url: String,
        /// Milliseconds since the phase's start.
        at_ms: u64,
        /// Why.
        reason: String,
    },
    /// A lost agent's share was handed to the remaining agents, or an agent
    /// took a share back.
    Reshard {
        /// Phase index.
        phase: u32,
        /// The agent declared lost (empty when one took a share back).
        lost: String,
        /// The agent that took a share back (restarted, reconnected or
        /// resumed after halting), if any.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        rejoined: String,
        /// The agents now sharing the phase, in slice order.
        agents: Vec<String>,
        /// From this offset into the phase (ms).
        from_ms: u64,
    },
    /// An accepted window report of one agent.
    Window {
        /// Phase index.
        phase: u32,
        /// Reporting agent.
        agent: String,
        /// The agent's report sequence number.
        sequence: u64,
        /// Window index within the phase.
        window: u32,
        /// Counters.
        counters: RawCounters,
        /// Failures by class.
        errors: BTreeMap<String, u64>,
        /// Agent CPU time in the window (µs).
        cpu_micros: u64,
        /// HDR V2 histograms (base64) by metric name.
        histograms: BTreeMap<String, String>,
        /// Why the agent was saturated in the window (empty: it was not).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        saturation: String,
        /// The agent's cumulative count of reports dropped unacknowledged.
        #[serde(default, skip_serializing_if = "is_zero")]
        reports_dropped: u64,
        /// The reporting process's incarnation (0: unknown).
        #[serde(default, skip_serializing_if = "is_zero")]
        incarnation: u64,
        /// Sampled requests of the window whose records the agent dropped
        /// (its per-window bound); the records themselves are in `requests/`.
        #[serde(default, skip_serializing_if = "is_zero")]
        records_dropped: u64,
        /// The window by workload entry, when the agent recorded parts.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        parts: Vec<RawPart>,
    },
    /// A window report that could not be used.
    Rejected {
        /// Phase index.
        phase: u32,
        /// Reporting agent.
        agent: String,
        /// Why it was rejected.
        reason: String,
    },
    /// An agent finished its share of a phase.
    PhaseDone {
        /// Phase index.
        phase: u32,
        /// Agent.
        agent: String,
        /// Its arrival span (µs).
        arrivals_micros: u64,
        /// Phase start to its last completion (µs).
        finished_micros: u64,
        /// When it actually began the phase (Unix ns, controller clock; 0: unknown).
        #[serde(default, skip_serializing_if = "is_zero_i64")]
        started_unix_nanos: i64,
        /// It stopped early: it had lost the controller (dead-man's switch).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        halted: bool,
    },
    /// A fault action of the phase fired, failed, or never fired.
    Fault {
        /// Phase index.
        phase: u32,
        /// What happened.
        fired: crate::model::FiredAction,
    },
    /// A phase ended.
    PhaseEnd {
        /// Phase index.
        phase: u32,
        /// Agents lost during the phase.
        lost_agents: Vec<String>,
        /// Stopped before its planned end.
        stopped_early: bool,
        /// Duplicate reports ignored.
        duplicates: u64,
    },
}

impl Record {
    /// A `Window` record of a wire report (histograms kept as sent).
    pub fn window(phase: u32, agent: &str, w: &proto::WindowReport) -> Record {
        let histograms = hists_to_raw(&w.histograms);
        let parts = w
            .parts
            .iter()
            .map(|p| RawPart {
                entry: p.entry,
                counters: p.counters.unwrap_or_default().into(),
                errors: errors_to_raw(&p.errors),
                histograms: hists_to_raw(&p.histograms),
            })
            .collect();
        Record::Window {
            phase,
            agent: agent.to_string(),
            sequence: w.sequence,
            window: w.window_index,
            counters: w.counters.unwrap_or_default().into(),
            errors: errors_to_raw(&w.errors),
            cpu_micros: w.agent_cpu_micros,
            histograms,
            saturation: w.saturation.clone(),
            reports_dropped: w.reports_dropped,
            incarnation: w.incarnation,
            records_dropped: w.records_dropped,
            parts,
        }
    }
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

impl Record {
    /// The number of the phase this record belongs to.
    pub fn phase(&self) -> u32 {
        match self {
            Record::PhaseStart { phase, .. }
            | Record::Window { phase, .. }
            | Record::Scrape { phase, .. }
            | Record::ScrapeFailed { phase, .. }
            | Record::Reshard { phase, .. }
            | Record::Fault { phase, .. }
            | Record::Rejected { phase, .. }
            | Record::PhaseDone { phase, .. }
            | Record::PhaseEnd { phase, .. } => *phase,
        }
    }

    /// The wire report a `Window` record came from (`None` for other records).
    pub fn to_report(&self) -> Result<Option<proto::WindowReport>, String> {
        let Record::Window {
            phase,
            sequence,
            window,
            counters,
            errors,
            cpu_micros,
            histograms,
            saturation,
            reports_dropped,
            incarnation,
            records_dropped,
            parts,
            ..
        } = self
        else {
            return Ok(None);
        };
        let (phase, sequence, window, counters, cpu_micros) =
            (*phase, *sequence, *window, *counters, *cpu_micros);
        let (reports_dropped, incarnation, records_dropped) =
            (*reports_dropped, *incarnation, *records_dropped);
        let parts = parts
            .iter()
            .map(|p| {
                Ok(proto::WindowPart {
                    entry: p.entry,
                    histograms: hists_from_raw(&p.histograms)
                        .map_err(|e| format!("part {}: {e}", p.entry))?,
                    counters: Some(p.counters.into()),
                    errors: errors_from_raw(&p.errors),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Some(proto::WindowReport {
            sequence,
            phase_index: phase,
            window_index: window,
            histograms: hists_from_raw(histograms)?,
            counters: Some(counters.into()),
            errors: errors_from_raw(errors),
            agent_cpu_micros: cpu_micros,
            saturation: saturation.to_string(),
            reports_dropped,
            incarnation,
            records_dropped,
            records: Vec::new(),
            parts,
        }))
    }
}

/// Appends records to a run's raw log.
#[derive(Debug)]
pub struct RawLog {
    path: PathBuf,
    file: File,
    /// The line being written (or the lines held, see [`RawLog::hold`]),
    /// kept between lines: a window's line is kilobytes, and growing a new
    /// buffer to that for every report showed in the controller's profile.
    line: Vec<u8>,
    /// Lines are kept in `line` until [`RawLog::release`].
    held: bool,
}

impl RawLog {
    /// Create (or truncate) the raw log in `dir`.
    pub fn create(dir: &Path) -> Result<RawLog, RawLogError> {
        let path = dir.join(FILE_NAME);
        let file = File::create(&path).map_err(|source| RawLogError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(RawLog {
            path,
            file,
            line: Vec::new(),
            held: false,
        })
    }

    /// Append one record and hand it to the OS (unless lines are held).
    pub fn append(&mut self, record: &Record) -> Result<(), RawLogError> {
        self.append_with(|line| serde_json::to_writer(line, record))
    }

    /// Append the line of `Record::window(phase, agent, w)`, written
    /// without building the record (see `window_line`): the line written
    /// for every accepted window report.
    pub fn append_window(
        &mut self,
        phase: u32,
        agent: &str,
        w: &proto::WindowReport,
    ) -> Result<(), RawLogError> {
        self.append_with(|line| super::window_line::write(line, phase, agent, w))
    }

    /// Append the line `encode` writes.
    fn append_with(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<()>,
    ) -> Result<(), RawLogError> {
        if !self.held {
            self.line.clear();
        }
        let start = self.line.len();
        if let Err(e) = encode(&mut self.line) {
            self.line.truncate(start);
            return Err(RawLogError::Corrupt {
                path: self.path.clone(),
                line: 0,
                message: format!("cannot encode record: {e}"),
            });
        }
        self.line.push(b'\n');
        if self.held { Ok(()) } else { self.write_line() }
    }

    /// Keep the lines appended from now on until [`RawLog::release`] hands
    /// them to the OS together: the records of one message (windows sent
    /// together) cost one write, and the file system zeroes fewer partly
    /// written pages than with a write per line.
    pub fn hold(&mut self) {
        if !self.held {
            self.line.clear();
            self.held = true;
        }
    }

    /// Write the lines held since [`RawLog::hold`].
    pub fn release(&mut self) -> Result<(), RawLogError> {
        self.held = false;
        self.write_line()
    }

    /// One write for what `line` holds: a kill leaves at most one partial
    /// last line.
    fn write_line(&mut self) -> Result<(), RawLogError> {
        let written = self.file.write_all(&self.line);
        self.line.clear();
        written.map_err(|source| RawLogError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// The run directory the log is in.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Force everything written so far to disk.
    pub fn sync(&mut self) -> Result<(), RawLogError> {
        self.file.sync_data().map_err(|source| RawLogError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// Read a raw log as (1-based line number, record) pairs. A truncated last
/// line (the controller was killed while writing it) is skipped; any other
/// bad line is an error naming it. Holds the whole file's records: a
/// rebuild goes through `rawlog_read::for_each` instead.
pub fn read(path: &Path) -> Result<Vec<(usize, Record)>, RawLogError> {
    let mut records = Vec::new();
    crate::results::rawlog_read::for_each(path, |line, r| {
        records.push((line, r));
        Ok::<(), RawLogError>(())
    })?;
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stampede_common::histogram::{encode, new_histogram};

    fn sample() -> proto::WindowReport {
        let mut h = new_histogram();
        h.record(12_345).unwrap();
        proto::WindowReport {
            sequence: 4,
            phase_index: 1,
            window_index: 2,
            histograms: vec![proto::MetricHistogram {
                metric: proto::Metric::Ttft as i32,
                encoding: Some(Encoding::HdrV2(encode(&h).unwrap())),
            }],
            counters: Some(proto::Counters {
                sent: 3,
                ok: 1,
                failed: 2,
                ..Default::default()
            }),
            errors: vec![proto::ErrorTally {
                class: "connect".into(),
                count: 2,
            }],
            agent_cpu_micros: 99,
            saturation: "schedule lag p99 6.0 ms".into(),
            reports_dropped: 3,
            incarnation: 0x5eed,
            records: Vec::new(),
            records_dropped: 2,
            parts: vec![proto::WindowPart {
                entry: 1,
                histograms: vec![proto::MetricHistogram {
                    metric: proto::Metric::Ttft as i32,
                    encoding: Some(Encoding::HdrV2(encode(&h).unwrap())),
                }],
                counters: Some(proto::Counters {
                    sent: 2,
                    ok: 1,
                    failed: 1,
                    ..Default::default()
                }),
                errors: vec![proto::ErrorTally {
                    class: "connect".into(),
                    count: 1,
                }],
            }],
        }
    }

    #[test]
    fn window_round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RawLog::create(dir.path()).unwrap();
        let w = sample();
        log.append(&Record::window(1, "a", &w)).unwrap();
        let back = read(&dir.path().join(FILE_NAME)).unwrap();
        let again = back[0].1.to_report().unwrap().expect("a window record");
        assert_eq!(again, w);
    }

    #[test]
    fn held_lines_reach_the_file_together_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut log = RawLog::create(dir.path()).unwrap();
        let window = |k: u64| {
            let mut w = sample();
            w.sequence = k;
            w
        };
        log.append(&Record::window(0, "a", &window(1))).unwrap();
        log.hold();
        for k in 2..5 {
            log.append(&Record::window(0, "a", &window(k))).unwrap();
        }
        assert_eq!(
            read(&path).unwrap().len(),
            1,
            "held lines are not written yet"
        );
        log.release().unwrap();
        log.append(&Record::window(0, "a", &window(5))).unwrap();
        let seqs: Vec<u64> = read(&path)
            .unwrap()
            .iter()
            .map(|(_, r)| r.to_report().unwrap().unwrap().sequence)
            .collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_fault_record_round_trips_and_unknown_fields_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RawLog::create(dir.path()).unwrap();
        let r = Record::Fault {
            phase: 2,
            fired: crate::model::FiredAction {
                index: 1,
                kind: "simulator".into(),
                action: "simulator off".into(),
                restores: true,
                at_s: 35.0,
                fired_at_s: Some(35.001),
                took_ms: Some(1.5),
                error: None,
                target_injected_before: Some(10),
                target_injected_after: Some(10),
            },
        };
        log.append(&r).unwrap();
        let path = dir.path().join(FILE_NAME);
        assert_eq!(read(&path).unwrap()[0].1, r);
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"restores\"", "\"restored\"");
        std::fs::write(&path, text + "\n").unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("restored"), "{e}");
    }

    #[test]
    fn a_long_log_comes_back_in_order_and_its_first_bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let line = |k: u64| {
            let mut w = sample();
            w.sequence = k;
            serde_json::to_string(&Record::window(0, "a", &w)).unwrap()
        };
        // Several batches of every thread, a blank line, a truncated end.
        let mut text: String = (0..3_000).map(|k| line(k) + "\n").collect();
        text.push('\n');
        let cut = line(3_000);
        std::fs::write(&path, format!("{text}{}", &cut[..cut.len() / 2])).unwrap();
        let back = read(&path).unwrap();
        let got: Vec<(usize, u64)> = back
            .iter()
            .map(|(n, r)| match r {
                Record::Window { sequence, .. } => (*n, *sequence),
                other => panic!("{other:?}"),
            })
            .collect();
        let want: Vec<(usize, u64)> = (0..3_000).map(|k| (k as usize + 1, k)).collect();
        assert_eq!(got, want);
        let mut lines: Vec<String> = (0..3_000).map(line).collect();
        lines[2_599] = "{\"record\":\"window\"}".into();
        lines[2_900] = "not json".into();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let mut applied = 0;
        let e = crate::results::rawlog_read::for_each(&path, |_, _| {
            applied += 1;
            Ok::<(), RawLogError>(())
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("windows.jsonl:2600"), "{e}");
        assert_eq!(applied, 2_599);
    }

    #[test]
    fn truncated_last_line_is_skipped_but_corrupt_middle_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let good = serde_json::to_string(&Record::window(0, "a", &sample())).unwrap();
        std::fs::write(&path, format!("{good}\n{}", &good[..good.len() / 2])).unwrap();
        assert_eq!(read(&path).unwrap().len(), 1);
        std::fs::write(&path, format!("{good}\n{{\"record\":\"nope\"}}\n{good}\n")).unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("windows.jsonl:2"), "{e}");
    }
}

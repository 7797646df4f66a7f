//! HDR histogram interval logs, one per metric (`ttft.hlog`, `itl.hlog`, …),
//! in the standard HdrHistogram log format so HdrHistogram's own tools
//! (HistogramLogProcessor, Python `hdrh`, the Rust reader) can read them.
//!
//! One interval per window of each phase, merged across agents, tagged with
//! the phase name. Histograms are deflate-compressed V2 (`V2DeflateSerializer`):
//! readers in other languages only decode that form. Timestamps are seconds
//! since the `BaseTime` header (the first phase's start), in fixed-point
//! notation. Values are in the metric's recorded unit (µs for latencies).

use crate::results::RunData;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use stampede_common::metric::{Metric, Unit};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Column legend line of the standard format.
const LEGEND: &str =
    "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n";

/// File name of a metric's log.
pub fn file_name(m: Metric) -> String {
    format!("{}.hlog", m.name())
}

/// The interval tag of a phase: its name (with `#<repeat>` when phases
/// repeat), the characters the format forbids in tags (`,`, space, CR, LF)
/// replaced by `_`.
pub fn tag_of(phase_name: &str) -> String {
    phase_name
        .chars()
        .map(|c| {
            if matches!(c, ',' | ' ' | '\r' | '\n') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

fn unix(nanos: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
}

/// The log text of one metric.
pub fn log_text(data: &RunData, m: Metric) -> Result<Vec<u8>, String> {
    let base = data
        .phases
        .iter()
        .map(|p| p.start_unix_nanos)
        .min()
        .unwrap_or(0);
    let mut out: Vec<u8> = Vec::new();
    let mut ser = V2DeflateSerializer::new();
    let unit = match m.unit() {
        Unit::Micros => "microseconds",
        Unit::Tokens => "tokens",
    };
    {
        let mut builder = IntervalLogWriterBuilder::new();
        builder
            .add_comment(&format!(
                "stampede {} run {}: metric {} (values in {unit}); one interval per window, merged across agents, tagged with the phase",
                data.summary.stampede_version,
                data.summary.run_id,
                m.name()
            ))
            .with_start_time(unix(base))
            .with_base_time(unix(base));
        builder
            .begin_log_with(&mut out, &mut ser)
            .map_err(|e| e.to_string())?;
    }
    out.extend_from_slice(LEGEND.as_bytes());
    let mut writer = IntervalLogWriterBuilder::new()
        .begin_log_with(&mut out, &mut ser)
        .map_err(|e| e.to_string())?;
    for (i, p) in data.phases.iter().enumerate() {
        let tag = tag_of(
            &data
                .summary
                .phases
                .get(i)
                .map_or_else(|| p.phase.name.clone(), |s| s.label(data.summary.repeat)),
        );
        let phase_offset = Duration::from_nanos(
            u64::try_from(p.start_unix_nanos.saturating_sub(base)).unwrap_or(0),
        );
        for (w, (agg, _)) in &p.acc.windows {
            writer
                .write_histogram(
                    agg.hist(m),
                    phase_offset.saturating_add(p.window.saturating_mul(*w)),
                    p.window,
                    Tag::new(&tag),
                )
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(out)
}

/// Write one `.hlog` per metric into `dir`; on failure, the file and why.
pub fn write(dir: &Path, data: &RunData) -> Result<(), (PathBuf, String)> {
    for m in Metric::ALL {
        let path = dir.join(file_name(m));
        let text = log_text(data, m).map_err(|e| (path.clone(), e))?;
        std::fs::write(&path, text).map_err(|e| (path.clone(), e.to_string()))?;
    }
    Ok(())
}

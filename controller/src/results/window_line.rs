//! The `windows.jsonl` line of an accepted window report, written straight
//! from the wire message.
//!
//! The controller writes one such line per agent-window, so at thousands of
//! agents it is on the hot path. Going through [`Record::window`] builds a
//! map of metric names to base64 strings per report and then has
//! `serde_json` scan every base64 byte for characters to escape, which
//! base64 never contains. This writes the same bytes (a test holds the two
//! equal for every field) with the histograms' base64 encoded in place and
//! the small fields (numbers, names, counters, failure classes) still through
//! `serde_json`.
//!
//! [`Record::window`]: super::rawlog::Record::window

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use stampede_common::metric::Metric;
use stampede_common::proto::{self, metric_histogram::Encoding};
use std::collections::BTreeMap;

use super::rawlog::RawCounters;

/// Append the line of `w` (phase `phase`, from `agent`) to `out`, without
/// its newline.
pub fn write(
    out: &mut Vec<u8>,
    phase: u32,
    agent: &str,
    w: &proto::WindowReport,
) -> serde_json::Result<()> {
    out.extend_from_slice(br#"{"record":"window","phase":"#);
    serde_json::to_writer(&mut *out, &phase)?;
    out.extend_from_slice(br#","agent":"#);
    serde_json::to_writer(&mut *out, agent)?;
    out.extend_from_slice(br#","sequence":"#);
    serde_json::to_writer(&mut *out, &w.sequence)?;
    out.extend_from_slice(br#","window":"#);
    serde_json::to_writer(&mut *out, &w.window_index)?;
    tally(
        out,
        w.counters,
        &w.errors,
        Some(w.agent_cpu_micros),
        &w.histograms,
    )?;
    if !w.saturation.is_empty() {
        out.extend_from_slice(br#","saturation":"#);
        serde_json::to_writer(&mut *out, &w.saturation)?;
    }
    for (key, n) in [
        (&br#","reports_dropped":"#[..], w.reports_dropped),
        (br#","incarnation":"#, w.incarnation),
        (br#","records_dropped":"#, w.records_dropped),
    ] {
        if n != 0 {
            out.extend_from_slice(key);
            serde_json::to_writer(&mut *out, &n)?;
        }
    }
    if !w.parts.is_empty() {
        out.extend_from_slice(br#","parts":["#);
        for (i, p) in w.parts.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(br#"{"entry":"#);
            serde_json::to_writer(&mut *out, &p.entry)?;
            tally(out, p.counters, &p.errors, None, &p.histograms)?;
            out.push(b'}');
        }
        out.push(b']');
    }
    out.push(b'}');
    Ok(())
}

/// `,"counters":…,"errors":…,"cpu_micros":…,"histograms":…` of a window,
/// which carries its CPU time and its failures even when there are none, or
/// of one of its parts (`cpu_micros` is `None`; no failures, no key).
fn tally(
    out: &mut Vec<u8>,
    counters: Option<proto::Counters>,
    errors: &[proto::ErrorTally],
    cpu_micros: Option<u64>,
    hists: &[proto::MetricHistogram],
) -> serde_json::Result<()> {
    out.extend_from_slice(br#","counters":"#);
    serde_json::to_writer(&mut *out, &RawCounters::from(counters.unwrap_or_default()))?;
    if cpu_micros.is_some() || !errors.is_empty() {
        // As the record's map holds them: by class, the last of a class.
        let errors: BTreeMap<&str, u64> = errors.iter().map(|e| (&*e.class, e.count)).collect();
        out.extend_from_slice(br#","errors":"#);
        serde_json::to_writer(&mut *out, &errors)?;
    }
    if let Some(cpu) = cpu_micros {
        out.extend_from_slice(br#","cpu_micros":"#);
        serde_json::to_writer(&mut *out, &cpu)?;
    }
    out.push(b',');
    histograms(out, hists);
    Ok(())
}

/// `"histograms":{"name":"base64",…}` by metric name, as the record's map
/// orders them; unknown metrics and encodings are left out as there.
fn histograms(out: &mut Vec<u8>, hists: &[proto::MetricHistogram]) {
    // Collected as the record collects them: the last of a metric is kept.
    let named: BTreeMap<&str, &[u8]> = hists
        .iter()
        .filter_map(|h| match (&h.encoding, Metric::from_proto(h.metric)) {
            (Some(Encoding::HdrV2(bytes)), Some(m)) => Some((m.name(), &bytes[..])),
            _ => None,
        })
        .collect();
    out.extend_from_slice(br#""histograms":{"#);
    for (i, (name, bytes)) in named.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Metric names are lowercase identifiers: nothing to escape.
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":\"");
        let start = out.len();
        out.resize(start + bytes.len().div_ceil(3) * 4, 0);
        let written = B64
            .encode_slice(bytes, &mut out[start..])
            .expect("room for the padded base64 was made");
        out.truncate(start + written);
        out.push(b'"');
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::rawlog::Record;
    use stampede_common::histogram::{encode, new_histogram};

    fn hist(metric: proto::Metric, values: &[u64]) -> proto::MetricHistogram {
        let mut h = new_histogram();
        for v in values {
            h.record(*v).unwrap();
        }
        proto::MetricHistogram {
            metric: metric as i32,
            encoding: Some(Encoding::HdrV2(encode(&h).unwrap())),
        }
    }

    fn tally(class: &str, count: u64) -> proto::ErrorTally {
        proto::ErrorTally {
            class: class.into(),
            count,
        }
    }

    /// What the record's serialization writes.
    fn by_serde(phase: u32, agent: &str, w: &proto::WindowReport) -> String {
        serde_json::to_string(&Record::window(phase, agent, w)).unwrap()
    }

    fn by_hand(phase: u32, agent: &str, w: &proto::WindowReport) -> String {
        let mut out = Vec::new();
        write(&mut out, phase, agent, w).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// A report with every field set, histograms and failures out of order,
    /// one histogram of an unknown metric and one with no encoding.
    fn full() -> proto::WindowReport {
        let counters = |sent, failed| {
            Some(proto::Counters {
                sent,
                ok: sent - failed,
                failed,
                skipped: 1,
                output_tokens: 640,
                input_tokens: 1_280,
                usage_reported: 9,
                good: 7,
                expired: 2,
            })
        };
        proto::WindowReport {
            sequence: u64::MAX,
            phase_index: 3,
            window_index: 41,
            histograms: vec![
                hist(proto::Metric::Itl, &[5_000, 5_100, 90_000]),
                hist(proto::Metric::Ttft, &[20_000]),
                proto::MetricHistogram {
                    metric: 999,
                    encoding: Some(Encoding::HdrV2(vec![1, 2, 3])),
                },
                proto::MetricHistogram {
                    metric: proto::Metric::E2e as i32,
                    encoding: None,
                },
            ],
            counters: counters(12, 3),
            errors: vec![tally("timeout", 1), tally("connect", 2)],
            agent_cpu_micros: 123_456,
            saturation: "lag \"p99\" 6.0 ms\n\u{1}é".into(),
            reports_dropped: 5,
            incarnation: 0x5eed,
            records: Vec::new(),
            records_dropped: 1,
            parts: vec![
                proto::WindowPart {
                    entry: 2,
                    histograms: vec![hist(proto::Metric::Ttft, &[21_000])],
                    counters: counters(4, 0),
                    errors: Vec::new(),
                },
                proto::WindowPart {
                    entry: 0,
                    histograms: vec![
                        hist(proto::Metric::Itl, &[4_000]),
                        hist(proto::Metric::Ttft, &[1]),
                    ],
                    counters: counters(8, 3),
                    errors: vec![tally("timeout", 1), tally("connect", 2)],
                },
            ],
        }
    }

    #[test]
    fn every_field_is_written_as_the_record_writes_it() {
        let w = full();
        let agent = "node-\"7\"\\é\u{7}";
        assert_eq!(by_hand(9, agent, &w), by_serde(9, agent, &w));
    }

    #[test]
    fn empty_and_default_fields_are_left_out_as_the_record_leaves_them() {
        let empty = proto::WindowReport::default();
        assert_eq!(by_hand(0, "a", &empty), by_serde(0, "a", &empty));
        // Each optional field alone, and each with the others.
        let full = full();
        for mask in 0u32..64 {
            let mut w = full.clone();
            let on = |bit: u32| mask & (1 << bit) != 0;
            if !on(0) {
                w.saturation.clear();
            }
            if !on(1) {
                w.reports_dropped = 0;
            }
            if !on(2) {
                w.incarnation = 0;
            }
            if !on(3) {
                w.records_dropped = 0;
            }
            if !on(4) {
                w.parts.clear();
            }
            if !on(5) {
                w.errors.clear();
                w.counters = None;
                w.histograms.clear();
            }
            assert_eq!(by_hand(1, "a", &w), by_serde(1, "a", &w), "mask {mask:#b}");
        }
    }

    #[test]
    fn of_two_histograms_or_tallies_of_one_name_the_last_is_written_as_in_the_record() {
        let mut w = full();
        w.histograms.push(hist(proto::Metric::Itl, &[7]));
        w.histograms.insert(0, hist(proto::Metric::Ttft, &[8]));
        w.errors.push(tally("connect", 5));
        assert_eq!(by_hand(1, "a", &w), by_serde(1, "a", &w));
    }

    #[test]
    fn the_line_reads_back_as_the_report() {
        let w = full();
        let line = by_hand(2, "a", &w);
        let Record::Window { histograms, .. } = serde_json::from_str::<Record>(&line).unwrap()
        else {
            panic!("not a window record: {line}");
        };
        assert_eq!(histograms.len(), 2, "the known, encoded metrics: {line}");
    }

    #[test]
    fn metric_names_need_no_escaping() {
        for m in Metric::ALL {
            assert_eq!(
                serde_json::to_string(m.name()).unwrap(),
                format!("\"{}\"", m.name())
            );
        }
    }
}

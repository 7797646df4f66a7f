//! The run loop's own work per window report, piece by piece, timed in
//! this process on the bench's report templates: decoding the report's
//! histograms and checking it, adding it into its window's totals, and its
//! `windows.jsonl` line, written from the report directly (what the
//! controller does) and, for reference, through the generic record.
//!
//! What the pieces leave of a measured µs per agent-window is the rest of
//! the path: receiving the message (HTTP/2, gRPC, protobuf), the wake-ups
//! and the acknowledgement, and the agents' keepalive pings.

use stampede_common::proto;
use stampede_controller::analysis::merge::{Aggregate, decode};
use stampede_controller::results::rawlog::{RawLog, Record};
use std::hint::black_box;
use std::time::Instant;

/// Reports timed per piece (the templates cycled).
const ROUNDS: usize = 4_000;
/// Windows per held write, as a gathered message of ten is written.
const PER_WRITE: usize = 10;

/// Each piece's µs per report.
pub struct Pieces {
    pub decode: f64,
    pub add: f64,
    pub line: f64,
    pub line_by_record: f64,
}

/// Time each piece over `reports`, alternating the two ways of writing the
/// line twice and keeping each one's faster run.
pub fn measure(reports: &[proto::WindowReport]) -> Result<Pieces, String> {
    let each = |f: &mut dyn FnMut(&proto::WindowReport) -> Result<(), String>| {
        let t = Instant::now();
        for r in reports.iter().cycle().take(ROUNDS) {
            f(r)?;
        }
        Ok::<f64, String>(t.elapsed().as_secs_f64() * 1e6 / ROUNDS as f64)
    };
    let decode_us = each(&mut |r| {
        decode(r)
            .map(|d| drop(black_box(d)))
            .map_err(|e| e.to_string())
    })?;
    let decoded: Vec<_> = reports
        .iter()
        .map(decode)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let mut totals = Aggregate::default();
    let mut k = 0;
    let add_us = each(&mut |_| {
        totals.add(&decoded[k % decoded.len()]);
        k += 1;
        Ok(())
    })?;
    black_box(&totals);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut log = RawLog::create(dir.path()).map_err(|e| e.to_string())?;
    let mut held = 0;
    let mut line = |log: &mut RawLog, r: &proto::WindowReport, direct: bool| {
        if held == 0 {
            log.hold();
        }
        if direct {
            log.append_window(0, "agent-00042", r)
        } else {
            log.append(&Record::window(0, "agent-00042", r))
        }
        .map_err(|e| e.to_string())?;
        held = (held + 1) % PER_WRITE;
        if held == 0 {
            log.release().map_err(|e| e.to_string())
        } else {
            Ok(())
        }
    };
    let (mut direct, mut by_record) = (f64::MAX, f64::MAX);
    for _ in 0..2 {
        direct = direct.min(each(&mut |r| line(&mut log, r, true))?);
        by_record = by_record.min(each(&mut |r| line(&mut log, r, false))?);
    }
    Ok(Pieces {
        decode: decode_us,
        add: add_us,
        line: direct,
        line_by_record: by_record,
    })
}

impl Pieces {
    pub fn print(&self) {
        println!("the run loop's work per report (this process, {ROUNDS} reports per piece)");
        println!(
            "  decode and check {:.1} µs, add to the window {:.1} µs, windows.jsonl line {:.1} µs \
             (through the record {:.1} µs: {:.2}x); together {:.1} µs",
            self.decode,
            self.add,
            self.line,
            self.line_by_record,
            self.line / self.line_by_record,
            self.decode + self.add + self.line,
        );
    }
}

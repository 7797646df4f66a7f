//! The run loop's own work per window report, piece by piece, timed in
//! this process on the bench's report templates: decoding the message that
//! carries it from protobuf (on the session's task), taking the report into the
//! phase's totals (`PhaseAccumulator::offer`: decoding its histograms,
//! checking it, and adding it into its window), adding it to the live
//! page's running view, and its `windows.jsonl` line, written from the
//! report directly (what the controller does) and, for reference, through
//! the generic record.
//!
//! What the pieces leave of a measured µs per agent-window is the rest of
//! the path: receiving the message (HTTP/2, gRPC framing), the wake-ups
//! and the acknowledgement, and the agents' keepalive pings.

use stampede_common::proto;
use stampede_controller::analysis::merge::{Offered, PhaseAccumulator};
use stampede_controller::orchestrate::live::series::Running;
use stampede_controller::results::rawlog::{RawLog, Record};
use std::hint::black_box;
use std::time::Instant;

/// Reports timed per piece (the templates cycled).
const ROUNDS: usize = 4_000;
/// Windows per held write, as a gathered message of ten is written.
const PER_WRITE: usize = 10;
/// Agents the reports come from in turn.
const AGENTS: usize = 1_000;

/// Each piece's µs per report.
pub struct Pieces {
    pub protobuf: f64,
    pub offer: f64,
    pub live: f64,
    pub line: f64,
    pub line_by_record: f64,
}

/// Time each piece over `templates`, alternating the two ways of writing
/// the line twice and keeping each one's faster run.
pub fn measure(templates: &[proto::WindowReport]) -> Result<Pieces, String> {
    let each = |f: &mut dyn FnMut(&proto::WindowReport) -> Result<(), String>| {
        let t = Instant::now();
        for r in templates.iter().cycle().take(ROUNDS) {
            f(r)?;
        }
        Ok::<f64, String>(t.elapsed().as_secs_f64() * 1e6 / ROUNDS as f64)
    };
    // Each report its own sequence (a repeat is a duplicate), from one of
    // AGENTS agents in turn, as a fleet's come.
    let reports: Vec<proto::WindowReport> = (0..ROUNDS)
        .map(|k| proto::WindowReport {
            sequence: k as u64,
            ..templates[k % templates.len()].clone()
        })
        .collect();
    // Taken and added to the live page in turn, each timed, as the run
    // loop does before it drops the decoded report.
    let (mut acc, mut live) = (PhaseAccumulator::default(), Running::default());
    let (mut offer, mut live_us) = (0.0, 0.0);
    let names: Vec<String> = (0..AGENTS).map(|i| format!("agent-{i:05}")).collect();
    for (r, agent) in reports.iter().zip(names.iter().cycle()) {
        let t = Instant::now();
        let decoded = match acc.offer(agent, r) {
            Offered::Merged(_, d) => d,
            Offered::Duplicate => return Err("a report taken twice".into()),
            Offered::Rejected(e) => return Err(format!("a template was rejected: {e}")),
        };
        let taken = Instant::now();
        live.add(&decoded);
        let added = Instant::now();
        drop(decoded);
        offer += (taken - t).as_secs_f64() * 1e6 / ROUNDS as f64;
        live_us += (added - taken).as_secs_f64() * 1e6 / ROUNDS as f64;
    }
    black_box((&acc, &live));
    let protobuf = protobuf_decode(&reports[..PER_WRITE])?;
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
        protobuf,
        offer,
        live: live_us,
        line: direct,
        line_by_record: by_record,
    })
}

/// µs per report to decode a message of `reports` from its protobuf bytes,
/// as the session's stream does before the run loop gets it.
fn protobuf_decode(reports: &[proto::WindowReport]) -> Result<f64, String> {
    let msg = proto::SessionRequest {
        kind: Some(proto::session_request::Kind::WindowReports(
            proto::WindowReports {
                reports: reports.to_vec(),
            },
        )),
    };
    let bytes = prost::Message::encode_to_vec(&msg);
    let t = Instant::now();
    for _ in 0..ROUNDS / reports.len() {
        let m: proto::SessionRequest =
            prost::Message::decode(&bytes[..]).map_err(|e| e.to_string())?;
        black_box(m);
    }
    Ok(t.elapsed().as_secs_f64() * 1e6 / ROUNDS as f64)
}

impl Pieces {
    pub fn print(&self) {
        println!(
            "the run loop's work per report (this process, {ROUNDS} reports per piece from \
             {AGENTS} agents)"
        );
        println!(
            "  decoded from protobuf (ten to a message) {:.1} µs, taken into the phase (decoded, \
             checked, added to its window) {:.1} µs, added to the live page {:.1} µs, \
             windows.jsonl line {:.1} µs (through the record {:.1} µs: {:.2}x); together {:.1} µs",
            self.protobuf,
            self.offer,
            self.live,
            self.line,
            self.line_by_record,
            self.line / self.line_by_record,
            self.protobuf + self.offer + self.live + self.line,
        );
    }
}

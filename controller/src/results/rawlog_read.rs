//! Reading `windows.jsonl` back, in order, a batch of lines at a time, with
//! each batch's lines parsed on the machine's cores.
//!
//! A run of 10,000 agents writes 8.5 MB of raw log per second of phase, so
//! a reader that held every record at once would need memory in proportion
//! to the run's length (tens of gigabytes for ten minutes), and parsing the
//! JSON is most of a rebuild's time. Here at most [`BATCH_LINES`] lines per
//! thread are held, and records reach the caller in the file's order.

use super::rawlog::{MAX_LINE_BYTES, RawLogError, Record};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Lines one thread parses at a time.
const BATCH_LINES: usize = 256;

/// Most threads parsing at once.
const MAX_THREADS: usize = 8;

/// One line of the file as read.
struct Line {
    /// 1-based.
    number: usize,
    bytes: Vec<u8>,
    /// It ended with a newline (only the file's last line may not).
    complete: bool,
}

/// What a line holds.
enum Parsed {
    Record(Box<Record>),
    Blank,
    Bad(String),
}

/// Hand each record of the raw log at `path` to `apply` with its 1-based
/// line number, in order. A truncated last line (the controller was killed
/// while writing it) is skipped; any other bad line is an error naming it,
/// returned once the lines before it were applied.
pub fn for_each<E: From<RawLogError>>(
    path: &Path,
    mut apply: impl FnMut(usize, Record) -> Result<(), E>,
) -> Result<(), E> {
    let io = |source| RawLogError::Io {
        path: path.to_path_buf(),
        source,
    };
    let corrupt = |line: usize, message: String| RawLogError::Corrupt {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path).map_err(io)?);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_THREADS);
    let mut number = 0;
    loop {
        let lines = read_lines(&mut reader, &mut number, threads * BATCH_LINES).map_err(io)?;
        let Some(last) = lines.last() else {
            return Ok(());
        };
        if !last.complete && last.bytes.len() > MAX_LINE_BYTES {
            // Everything before it first, so an earlier bad line is named.
            let too_long = last.number;
            for (line, parsed) in lines
                .iter()
                .zip(parse_all(&lines[..lines.len() - 1], threads))
            {
                apply_one(line, parsed, &mut apply, &corrupt)?;
            }
            let message = format!("line longer than {MAX_LINE_BYTES} bytes");
            return Err(corrupt(too_long, message).into());
        }
        for (line, parsed) in lines.iter().zip(parse_all(&lines, threads)) {
            if !apply_one(line, parsed, &mut apply, &corrupt)? {
                return Ok(());
            }
        }
    }
}

/// Apply one parsed line; false when it ends the file (a truncated last line).
fn apply_one<E: From<RawLogError>>(
    line: &Line,
    parsed: Parsed,
    apply: &mut impl FnMut(usize, Record) -> Result<(), E>,
    corrupt: &impl Fn(usize, String) -> RawLogError,
) -> Result<bool, E> {
    match parsed {
        Parsed::Record(r) => apply(line.number, *r)?,
        Parsed::Blank => {}
        // The line being written when the process died.
        Parsed::Bad(_) if !line.complete => return Ok(false),
        Parsed::Bad(message) => return Err(corrupt(line.number, message).into()),
    }
    Ok(true)
}

/// Up to `max` lines, numbered on from `number`; fewer at the end of the
/// file, or up to and including a line longer than [`MAX_LINE_BYTES`]
/// (read that far and no further).
fn read_lines(
    reader: &mut impl BufRead,
    number: &mut usize,
    max: usize,
) -> std::io::Result<Vec<Line>> {
    let mut lines = Vec::with_capacity(max);
    while lines.len() < max {
        let mut bytes = Vec::new();
        let n = Read::by_ref(reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut bytes)?;
        if n == 0 {
            break;
        }
        *number += 1;
        let complete = bytes.last() == Some(&b'\n');
        lines.push(Line {
            number: *number,
            bytes,
            complete,
        });
        if !complete {
            break;
        }
    }
    Ok(lines)
}

/// Parse `lines` on up to `threads` threads, keeping their order.
fn parse_all(lines: &[Line], threads: usize) -> Vec<Parsed> {
    if threads <= 1 || lines.len() <= BATCH_LINES {
        return lines.iter().map(parse).collect();
    }
    std::thread::scope(|s| {
        let parsing: Vec<_> = lines
            .chunks(lines.len().div_ceil(threads))
            .map(|chunk| s.spawn(move || chunk.iter().map(parse).collect::<Vec<_>>()))
            .collect();
        parsing
            .into_iter()
            .flat_map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

fn parse(line: &Line) -> Parsed {
    let text = String::from_utf8_lossy(&line.bytes);
    let text = text.trim();
    if text.is_empty() {
        return Parsed::Blank;
    }
    match serde_json::from_str::<Record>(text) {
        Ok(r) => Parsed::Record(Box::new(r)),
        Err(e) => Parsed::Bad(e.to_string()),
    }
}

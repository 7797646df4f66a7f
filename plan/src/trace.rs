//! Request traces for replay: (timestamp, input tokens, output tokens)
//! records, e.g. the Azure LLM inference traces
//! (`TIMESTAMP,ContextTokens,GeneratedTokens`), replayed as arrival times.
//!
//! The controller reads and checks the trace when it validates the plan:
//! every bad record (and a timestamp earlier than the one before it) is named
//! by file and line. Arrival times are offsets from the first record, divided
//! by the phase's `time_scale`, and travel to every agent in nanoseconds, so
//! each agent sends its shard at exactly the trace's (scaled) times.

use stampede_common::proto;
use std::path::{Path, PathBuf};

/// `trace = { path = "traces/azure_code.csv", format = "csv", time_scale = 2.0, max_records = 10000 }`.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrace {
    /// The file, relative to the plan file. Required.
    pub path: Option<PathBuf>,
    /// "csv" or "jsonl". Default: "jsonl" for `.jsonl` files, "csv" otherwise.
    pub format: Option<String>,
    /// Replay this many times faster (2.0 halves every gap). Default 1.
    pub time_scale: Option<f64>,
    /// Use only the first this many records. Default: all.
    pub max_records: Option<u64>,
}

/// File format of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated with a header line naming the columns.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// One request of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceRecord {
    /// Line of the file (1-based).
    pub line: usize,
    /// Time from the first record, unscaled, in nanoseconds.
    pub offset_nanos: u64,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Output tokens (`max_tokens`).
    pub output_tokens: u32,
}

/// A loaded trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// The file as read.
    pub path: PathBuf,
    /// Its records, in time order.
    pub records: Vec<TraceRecord>,
}

/// Why a trace cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A record (or the header) is malformed.
    #[error("{}:{line}: {reason}", path.display())]
    Record {
        /// The file.
        path: PathBuf,
        /// The line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Accepted names of the timestamp, input and output columns (compared
/// without case).
const TIME_NAMES: [&str; 3] = ["timestamp", "time", "arrival_time"];
const INPUT_NAMES: [&str; 4] = ["contexttokens", "input_tokens", "prompt_tokens", "input"];
const OUTPUT_NAMES: [&str; 4] = [
    "generatedtokens",
    "output_tokens",
    "completion_tokens",
    "output",
];

/// Largest token count a record may carry.
const MAX_TOKENS: i64 = 1_000_000;

/// Read and check a trace, keeping at most `max_records` records.
pub fn load(path: &Path, format: Format, max_records: Option<usize>) -> Result<Trace, TraceError> {
    let text = std::fs::read_to_string(path).map_err(|source| TraceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path, format, max_records)
}

/// A timestamp: nanoseconds since the Unix epoch (datetime) or since an
/// arbitrary origin (numeric seconds); the kinds must not mix in one trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    DateTime(i128),
    Seconds(i128),
}

impl Stamp {
    fn nanos(self) -> i128 {
        match self {
            Stamp::DateTime(n) | Stamp::Seconds(n) => n,
        }
    }
}

/// Check trace text (`path` names it in messages).
pub fn parse(
    text: &str,
    path: &Path,
    format: Format,
    max_records: Option<usize>,
) -> Result<Trace, TraceError> {
    let err = |line: usize, reason: String| TraceError::Record {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let limit = max_records.unwrap_or(usize::MAX);
    let mut records: Vec<TraceRecord> = Vec::new();
    let mut first: Option<Stamp> = None;
    let mut prev: Option<(i128, usize)> = None;
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let columns = match format {
        Format::Csv => {
            let Some((n, header)) = lines.find(|(_, l)| !l.trim().is_empty()) else {
                return Err(err(1, "empty trace: expected a header line".into()));
            };
            Some(csv_columns(header).map_err(|r| err(n, r))?)
        }
        Format::Jsonl => None,
    };
    for (n, line) in lines {
        if records.len() >= limit {
            break;
        }
        if line.trim().is_empty() {
            continue;
        }
        let (stamp, input, output) = match &columns {
            Some(cols) => csv_record(line, cols),
            None => jsonl_record(line),
        }
        .map_err(|r| err(n, r))?;
        let origin = *first.get_or_insert(stamp);
        if std::mem::discriminant(&origin) != std::mem::discriminant(&stamp) {
            return Err(err(
                n,
                "timestamp is of another kind (date-time vs seconds) than the first record's"
                    .into(),
            ));
        }
        if let Some((p, pl)) = prev
            && stamp.nanos() < p
        {
            return Err(err(
                n,
                format!(
                    "timestamp is {:.6} s earlier than the previous record's (line {pl}): a trace must be sorted by time",
                    (p - stamp.nanos()) as f64 / 1e9
                ),
            ));
        }
        prev = Some((stamp.nanos(), n));
        records.push(TraceRecord {
            line: n,
            offset_nanos: u64::try_from(stamp.nanos() - origin.nanos()).unwrap_or(u64::MAX),
            input_tokens: input,
            output_tokens: output,
        });
    }
    if records.is_empty() {
        return Err(err(1, "no records".into()));
    }
    Ok(Trace {
        path: path.to_path_buf(),
        records,
    })
}

/// Column positions (time, input, output) from a CSV header.
fn csv_columns(header: &str) -> Result<(usize, usize, usize, Vec<String>), String> {
    let names: Vec<String> = header
        .trim_start_matches('\u{feff}')
        .split(',')
        .map(|c| c.trim().trim_matches('"').to_string())
        .collect();
    let find = |accepted: &[&str], what: &str| {
        names
            .iter()
            .position(|c| accepted.iter().any(|a| c.eq_ignore_ascii_case(a)))
            .ok_or_else(|| {
                format!(
                    "no {what} column in the header ({}); expected one of {}",
                    names.join(","),
                    accepted.join(", ")
                )
            })
    };
    Ok((
        find(&TIME_NAMES, "timestamp")?,
        find(&INPUT_NAMES, "input-token")?,
        find(&OUTPUT_NAMES, "output-token")?,
        names,
    ))
}

fn csv_record(
    line: &str,
    (t, i, o, names): &(usize, usize, usize, Vec<String>),
) -> Result<(Stamp, u32, u32), String> {
    let fields: Vec<&str> = line
        .split(',')
        .map(|f| f.trim().trim_matches('"'))
        .collect();
    if fields.len() != names.len() {
        return Err(format!(
            "{} fields, the header has {}",
            fields.len(),
            names.len()
        ));
    }
    let tokens = |c: usize| -> Result<u32, String> {
        match fields[c].parse::<i64>() {
            Ok(v) if (1..=MAX_TOKENS).contains(&v) => Ok(v as u32),
            _ => Err(format!(
                "{} = {:?}: must be an integer between 1 and {MAX_TOKENS}",
                names[c], fields[c]
            )),
        }
    };
    let stamp =
        timestamp(fields[*t]).map_err(|r| format!("{} = {:?}: {r}", names[*t], fields[*t]))?;
    Ok((stamp, tokens(*i)?, tokens(*o)?))
}

fn jsonl_record(line: &str) -> Result<(Stamp, u32, u32), String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let obj = v.as_object().ok_or("expected a JSON object")?;
    let field = |accepted: &[&str]| {
        obj.iter()
            .find(|(k, _)| accepted.iter().any(|a| k.eq_ignore_ascii_case(a)))
    };
    let Some((tk, tv)) = field(&TIME_NAMES) else {
        return Err("missing field `timestamp`".into());
    };
    let stamp = match tv {
        serde_json::Value::String(s) => timestamp(s),
        serde_json::Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| "not a number".to_string())
            .and_then(seconds),
        _ => Err("expected seconds or a date-time string".into()),
    }
    .map_err(|r| format!("`{tk}` = {tv}: {r}"))?;
    let tokens = |accepted: &[&str], what: &str| -> Result<u32, String> {
        let Some((k, v)) = field(accepted) else {
            return Err(format!("missing field `{what}`"));
        };
        match v.as_i64() {
            Some(n) if (1..=MAX_TOKENS).contains(&n) => Ok(n as u32),
            _ => Err(format!(
                "`{k}` = {v}: must be an integer between 1 and {MAX_TOKENS}"
            )),
        }
    };
    Ok((
        stamp,
        tokens(&INPUT_NAMES, "input_tokens")?,
        tokens(&OUTPUT_NAMES, "output_tokens")?,
    ))
}

fn seconds(x: f64) -> Result<Stamp, String> {
    if x.is_finite() && x.abs() < 1e12 {
        Ok(Stamp::Seconds((x * 1e9).round() as i128))
    } else {
        Err("not a usable number of seconds".into())
    }
}

/// Seconds (`12.5`) or a UTC date-time (`2023-11-16 18:15:46.6805900`,
/// also with `T` and a trailing `Z`).
fn timestamp(s: &str) -> Result<Stamp, String> {
    if let Ok(x) = s.parse::<f64>() {
        return seconds(x);
    }
    let bad = || "expected seconds or a date-time like 2023-11-16 18:15:46.68".to_string();
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = s.split_once([' ', 'T']).ok_or_else(bad)?;
    let num = |p: &str| p.parse::<i64>().map_err(|_| bad());
    let d: Vec<&str> = date.split('-').collect();
    let [y, mo, da] = d.as_slice() else {
        return Err(bad());
    };
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let t: Vec<&str> = hms.split(':').collect();
    let [h, mi, se] = t.as_slice() else {
        return Err(bad());
    };
    let (y, mo, da, h, mi, se) = (num(y)?, num(mo)?, num(da)?, num(h)?, num(mi)?, num(se)?);
    if !(1..=12).contains(&mo)
        || !(1..=31).contains(&da)
        || !(0..24).contains(&h)
        || !(0..60).contains(&mi)
        || !(0..61).contains(&se)
        || frac.len() > 9
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let frac_nanos = if frac.is_empty() {
        0
    } else {
        num(frac)? * 10i64.pow(9 - frac.len() as u32)
    };
    let secs = days_from_civil(y, mo, da) * 86_400 + h * 3600 + mi * 60 + se;
    Ok(Stamp::DateTime(
        i128::from(secs) * 1_000_000_000 + i128::from(frac_nanos),
    ))
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Trace {
    /// The wire form, with offsets divided by `time_scale`.
    pub fn to_proto(&self, time_scale: f64) -> proto::Replay {
        let mut last = 0u64;
        let mut gaps = Vec::with_capacity(self.records.len());
        for r in &self.records {
            let at = scaled(r.offset_nanos, time_scale);
            gaps.push(at.saturating_sub(last));
            last = at.max(last);
        }
        proto::Replay {
            gaps_nanos: gaps,
            input_tokens: self.records.iter().map(|r| r.input_tokens).collect(),
            output_tokens: self.records.iter().map(|r| r.output_tokens).collect(),
        }
    }

    /// Records whose scaled time falls before `within` (those a phase of
    /// that duration sends).
    pub fn records_within(&self, time_scale: f64, within: std::time::Duration) -> usize {
        let limit = u64::try_from(within.as_nanos()).unwrap_or(u64::MAX);
        self.records
            .partition_point(|r| scaled(r.offset_nanos, time_scale) < limit)
    }

    /// Scaled time of the last record, in seconds.
    pub fn span_secs(&self, time_scale: f64) -> f64 {
        self.records
            .last()
            .map_or(0.0, |r| scaled(r.offset_nanos, time_scale) as f64 / 1e9)
    }
}

/// `nanos / time_scale`, rounded to the nanosecond.
pub fn scaled(nanos: u64, time_scale: f64) -> u64 {
    (nanos as f64 / time_scale).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const AZURE: &str = "TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:15:46.6805900,374,44
2023-11-16 18:15:50.9951690,396,109
2023-11-16 18:15:50.9951690,879,55
2023-11-16 18:16:01.0000000,91,16
";

    fn err(text: &str, format: Format) -> String {
        parse(text, Path::new("t/trace.csv"), format, None)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn azure_trace_loads_with_offsets_from_the_first_record() {
        let t = parse(AZURE, Path::new("t.csv"), Format::Csv, None).unwrap();
        let offsets: Vec<u64> = t.records.iter().map(|r| r.offset_nanos).collect();
        assert_eq!(
            offsets,
            vec![0, 4_314_579_000, 4_314_579_000, 14_319_410_000]
        );
        assert_eq!(
            (t.records[0].input_tokens, t.records[0].output_tokens),
            (374, 44)
        );
        assert_eq!(t.records[1].line, 3);
        let w = t.to_proto(2.0);
        assert_eq!(w.gaps_nanos, vec![0, 2_157_289_500, 0, 5_002_415_500]);
        assert_eq!(t.records_within(2.0, std::time::Duration::from_secs(3)), 3);
        let first_two = parse(AZURE, Path::new("t.csv"), Format::Csv, Some(2)).unwrap();
        assert_eq!(first_two.records.len(), 2);
    }

    #[test]
    fn numeric_seconds_and_jsonl_load() {
        let t = parse(
            "timestamp,input_tokens,output_tokens\n10.5,5,6\n11,7,8\n",
            Path::new("t.csv"),
            Format::Csv,
            None,
        )
        .unwrap();
        assert_eq!(t.records[1].offset_nanos, 500_000_000);
        let j = "{\"timestamp\": 0.25, \"input_tokens\": 3, \"output_tokens\": 4}\n\n{\"TIMESTAMP\": \"2023-11-16T18:15:46Z\", \"ContextTokens\": 3, \"GeneratedTokens\": 4}\n";
        let e = parse(j, Path::new("t.jsonl"), Format::Jsonl, None).unwrap_err();
        assert!(e.to_string().contains("t.jsonl:3: "), "{e}");
        let j = "{\"timestamp\": 0.25, \"input_tokens\": 3, \"output_tokens\": 4}\n{\"timestamp\": 1.0, \"input_tokens\": 3, \"output_tokens\": 4}\n";
        let t = parse(j, Path::new("t.jsonl"), Format::Jsonl, None).unwrap();
        assert_eq!(t.records[1].offset_nanos, 750_000_000);
    }

    #[test]
    fn each_malformed_record_names_file_and_line() {
        let csv = |row: &str| {
            format!("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,5,5\n{row}\n")
        };
        let cases = [
            (csv("2023-11-16 18:15:40.00,5,5"), "must be sorted by time"),
            (csv("2023-11-16 18:15:50.00,-5,5"), "ContextTokens = \"-5\""),
            (csv("2023-11-16 18:15:50.00,5,0"), "GeneratedTokens = \"0\""),
            (csv("2023-11-16 18:15:50.00,5"), "2 fields"),
            (csv("yesterday,5,5"), "TIMESTAMP = \"yesterday\""),
            (csv("2023-13-16 18:15:50,5,5"), "date-time"),
            (csv("12.5,5,5"), "another kind"),
        ];
        for (text, want) in cases {
            let e = err(&text, Format::Csv);
            assert!(e.starts_with("t/trace.csv:3: "), "{want}: {e}");
            assert!(e.contains(want), "{want}: {e}");
        }
        let e = err("when,ContextTokens,GeneratedTokens\n1,2,3\n", Format::Csv);
        assert!(e.starts_with("t/trace.csv:1: no timestamp column"), "{e}");
        let jl = |row: &str| {
            format!("{{\"timestamp\": 5, \"input_tokens\": 3, \"output_tokens\": 4}}\n{row}\n")
        };
        let cases = [
            (
                jl("{\"timestamp\": 6, \"input_tokens\": 3"),
                "not valid JSON",
            ),
            (
                jl("{\"timestamp\": 6, \"output_tokens\": 3}"),
                "missing field `input_tokens`",
            ),
            (
                jl("{\"input_tokens\": 6, \"output_tokens\": 3}"),
                "missing field `timestamp`",
            ),
            (
                jl("{\"timestamp\": 6, \"input_tokens\": -2, \"output_tokens\": 3}"),
                "`input_tokens` = -2",
            ),
            (
                jl("{\"timestamp\": 4, \"input_tokens\": 2, \"output_tokens\": 3}"),
                "sorted",
            ),
        ];
        for (text, want) in cases {
            let e = err(&text, Format::Jsonl);
            assert!(e.starts_with("t/trace.csv:2: "), "{want}: {e}");
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn replay_phases_are_validated() {
        use crate::{PhaseKind, parse};
        let dir = std::env::temp_dir().join(format!("stampede-replay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("t.csv"), AZURE).unwrap();
        let plan_path = dir.join("p.toml");
        let check = |phase: &str| {
            let text = format!("[target.simulator]\n[[phase]]\nduration = \"10s\"\n{phase}\n");
            parse(&text, &plan_path).and_then(|p| p.validate(&plan_path))
        };
        let plan =
            check("kind = \"replay\"\ntrace = { path = \"t.csv\", time_scale = 4.0 }").unwrap();
        let PhaseKind::Replay { time_scale, trace } = &plan.phases[0].kind else {
            panic!("{:?}", plan.phases[0].kind)
        };
        assert_eq!(*time_scale, 4.0);
        assert_eq!(trace.as_ref().unwrap().records.len(), 4);
        let e = |phase: &str| check(phase).unwrap_err().to_string();
        assert!(e("kind = \"replay\"").contains("phase[0].trace"));
        let bad_scale = e("kind = \"replay\"\ntrace = { path = \"t.csv\", time_scale = -1.0 }");
        assert!(
            bad_scale.contains("phase[0].trace.time_scale"),
            "{bad_scale}"
        );
        let other_kind = e("kind = \"constant\"\nrate = 1.0\ntrace = { path = \"t.csv\" }");
        assert!(other_kind.contains("phase[0].trace"), "{other_kind}");
        let with_rate = e("kind = \"replay\"\nrate = 1.0\ntrace = { path = \"t.csv\" }");
        assert!(with_rate.contains("phase[0].rate"), "{with_rate}");
        let missing = e("kind = \"replay\"\ntrace = { path = \"none.csv\" }");
        assert!(missing.contains("none.csv"), "{missing}");
        // Without reading files (a past run's reports), the file is not needed.
        let text = "[target.simulator]\n[[phase]]\nduration = \"1s\"\nkind = \"replay\"\ntrace = { path = \"none.csv\" }\n";
        let p = parse(text, &plan_path)
            .unwrap()
            .validate_without_files(&plan_path)
            .unwrap();
        assert!(matches!(
            p.phases[0].kind,
            PhaseKind::Replay { trace: None, .. }
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn dates_convert_to_epoch_seconds() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(
            timestamp("2023-11-16 18:15:46.5").unwrap(),
            Stamp::DateTime(1_700_158_546_500_000_000)
        );
    }
}

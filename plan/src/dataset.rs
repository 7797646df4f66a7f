//! Datasets: real prompts from ShareGPT-format JSON or JSONL files.
//!
//! A dataset is read and checked by the controller when the plan is
//! validated, so `controller validate` finds a bad record before anything
//! runs. Every malformed record is named by file and line; the plan says
//! whether it is skipped (counted, and the count travels into the run's
//! manifest and summary) or fatal. The sample sent to agents is drawn with the
//! plan's seed, so the same plan sends the same records.

use stampede_common::proto;
use std::path::{Path, PathBuf};

/// File format of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line: `{"prompt": ..., "max_tokens": ...}` or
    /// `{"messages": [{"role": ..., "content": ...}], "max_tokens": ...}`.
    Jsonl,
    /// A JSON array of `{"conversations": [{"from": "human", "value": ...},
    /// {"from": "gpt", "value": ...}, ...]}`.
    ShareGpt,
}

impl Format {
    /// The name as written in plans.
    pub fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::ShareGpt => "sharegpt",
        }
    }
}

/// What to do with a malformed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Leave it out, count it and report it.
    Skip,
    /// Refuse the whole file.
    Fatal,
}

/// A chat message of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// "system", "user", "assistant", ...
    pub role: String,
    /// The message text.
    pub content: String,
}

/// The prompt of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// Plain text.
    Text(String),
    /// Chat messages in order.
    Chat(Vec<ChatMessage>),
}

impl Prompt {
    /// Whitespace-separated words of the prompt: its client-side length estimate.
    pub fn words(&self) -> usize {
        match self {
            Prompt::Text(t) => t.split_whitespace().count(),
            Prompt::Chat(m) => m.iter().map(|m| m.content.split_whitespace().count()).sum(),
        }
    }
}

/// One valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Line of the file where the record starts (1-based).
    pub line: usize,
    /// What to send.
    pub prompt: Prompt,
    /// `max_tokens` from the record (JSONL) or the answer's length (ShareGPT).
    pub max_tokens: Option<u32>,
}

/// A record that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// Line where the record starts (1-based).
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// How a dataset is read.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// File format.
    pub format: Format,
    /// Skip or refuse malformed records.
    pub on_error: OnError,
    /// Keep at most this many records (a seeded sample); `None` keeps all.
    pub max_records: Option<usize>,
    /// Records without `max_tokens` are malformed (the entry has no `output`
    /// distribution to fall back on).
    pub max_tokens_required: bool,
    /// Seed of the sample.
    pub seed: u64,
}

/// A loaded dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// The file as read.
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// Valid records in the file.
    pub valid: usize,
    /// The records sent (all valid ones, or the sample), in file order.
    pub records: Vec<Record>,
    /// Malformed records that were skipped, in file order (at most
    /// [`MAX_KEPT_PROBLEMS`] kept; `skipped` counts them all).
    pub problems: Vec<Malformed>,
    /// Number of malformed records skipped.
    pub skipped: usize,
}

/// Malformed records kept with their reasons (the rest are only counted).
pub const MAX_KEPT_PROBLEMS: usize = 20;

/// Largest `max_tokens` a record may ask for.
const MAX_LENGTH: i64 = 1_000_000;

/// Why a dataset cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A record is malformed and the plan says malformed records are fatal.
    #[error("{}:{line}: {reason}", path.display())]
    Record {
        /// The file.
        path: PathBuf,
        /// Line where the record starts (or where the JSON error is).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The file as a whole is unusable.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Read and check a dataset file.
pub fn load(path: &Path, opts: &Options) -> Result<Dataset, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path, opts)
}

/// Check dataset text (`path` names it in messages).
pub fn parse(text: &str, path: &Path, opts: &Options) -> Result<Dataset, DataError> {
    let mut records = Vec::new();
    let mut problems = Vec::new();
    let mut skipped = 0usize;
    let mut take = |line: usize, r: Result<Record, String>| -> Result<(), DataError> {
        match r {
            Ok(rec) => records.push(rec),
            Err(reason) if opts.on_error == OnError::Fatal => {
                return Err(DataError::Record {
                    path: path.to_path_buf(),
                    line,
                    reason,
                });
            }
            Err(reason) => {
                skipped += 1;
                if problems.len() < MAX_KEPT_PROBLEMS {
                    problems.push(Malformed { line, reason });
                }
            }
        }
        Ok(())
    };
    match opts.format {
        Format::Jsonl => {
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                take(i + 1, jsonl_record(line, i + 1, opts))?;
            }
        }
        Format::ShareGpt => {
            let elements = array_elements(text).map_err(|(line, reason)| DataError::Record {
                path: path.to_path_buf(),
                line,
                reason,
            })?;
            for (start, slice) in elements {
                let line = line_of(text, start);
                let r = match serde_json::from_str::<serde_json::Value>(slice) {
                    Ok(v) => sharegpt_record(&v, line),
                    Err(e) => {
                        // The error's own line, within the element.
                        let at = line + e.line().saturating_sub(1);
                        take(at, Err(format!("not valid JSON: {e}")))?;
                        continue;
                    }
                };
                take(line, r)?;
            }
        }
    }
    let valid = records.len();
    if valid == 0 {
        return Err(DataError::File {
            path: path.to_path_buf(),
            reason: if skipped > 0 {
                format!(
                    "no valid record ({skipped} malformed; first: line {})",
                    problems.first().map_or(0, |p| p.line)
                )
            } else {
                "no records".to_string()
            },
        });
    }
    if let Some(n) = opts.max_records
        && n < records.len()
    {
        records = sample(records, n, opts.seed);
    }
    Ok(Dataset {
        path: path.to_path_buf(),
        format: opts.format,
        valid,
        records,
        problems,
        skipped,
    })
}

/// `n` of `records`, chosen by `seed`, in file order.
fn sample(records: Vec<Record>, n: usize, seed: u64) -> Vec<Record> {
    let mut idx: Vec<usize> = (0..records.len()).collect();
    let mut x = seed ^ 0x0DA7_A5E7;
    // Partial Fisher–Yates with SplitMix64.
    for i in 0..n {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let j = i + (z % (idx.len() - i) as u64) as usize;
        idx.swap(i, j);
    }
    let mut chosen = idx[..n].to_vec();
    chosen.sort_unstable();
    let mut keep = vec![false; records.len()];
    for i in chosen {
        keep[i] = true;
    }
    records
        .into_iter()
        .zip(keep)
        .filter_map(|(r, k)| k.then_some(r))
        .collect()
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Byte offsets and slices of the elements of a top-level JSON array, found
/// without parsing them, so one bad element can be named (and skipped) on
/// its own. Errors: (line, reason).
fn array_elements(text: &str) -> Result<Vec<(usize, &str)>, (usize, String)> {
    let b = text.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && (b[*i].is_ascii_whitespace() || text[*i..].starts_with('\u{feff}')) {
            *i += if b[*i].is_ascii_whitespace() { 1 } else { 3 };
        }
    };
    skip_ws(&mut i);
    if i >= b.len() || b[i] != b'[' {
        return Err((
            line_of(text, i.min(b.len())),
            "expected a JSON array of ShareGPT conversations (`[{\"conversations\": [...]}, ...]`)"
                .into(),
        ));
    }
    i += 1;
    let mut out = Vec::new();
    loop {
        skip_ws(&mut i);
        if i >= b.len() {
            return Err((
                line_of(text, b.len()),
                "the JSON array is not closed".into(),
            ));
        }
        if b[i] == b']' && out.is_empty() {
            i += 1;
            break;
        }
        let start = i;
        let (mut depth, mut in_str, mut esc) = (0i64, false, false);
        while i < b.len() {
            let c = b[i];
            if in_str {
                if esc {
                    esc = false;
                } else if c == b'\\' {
                    esc = true;
                } else if c == b'"' {
                    in_str = false;
                }
            } else {
                match c {
                    b'"' => in_str = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' if depth > 0 => depth -= 1,
                    b',' | b']' if depth == 0 => break,
                    _ => {}
                }
            }
            i += 1;
        }
        if i >= b.len() {
            return Err((
                line_of(text, start),
                "the record starting here is not closed before the end of the file".into(),
            ));
        }
        out.push((start, text[start..i].trim_end()));
        let end = b[i];
        i += 1;
        if end == b']' {
            break;
        }
    }
    skip_ws(&mut i);
    if i < b.len() {
        return Err((
            line_of(text, i),
            "text after the end of the JSON array".into(),
        ));
    }
    Ok(out)
}

/// A positive length from a JSON value.
fn length(v: &serde_json::Value, field: &str) -> Result<u32, String> {
    match v.as_i64() {
        Some(n) if (1..=MAX_LENGTH).contains(&n) => Ok(n as u32),
        Some(n) => Err(format!(
            "`{field}` = {n}: must be between 1 and {MAX_LENGTH}"
        )),
        None => Err(format!("`{field}` = {v}: must be a positive integer")),
    }
}

fn jsonl_record(line: &str, at: usize, opts: &Options) -> Result<Record, String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| format!("expected a JSON object, found {}", kind(&v)))?;
    let prompt = match (obj.get("prompt"), obj.get("messages")) {
        (Some(_), Some(_)) => return Err("give `prompt` or `messages`, not both".into()),
        (Some(p), None) => match p.as_str() {
            Some(s) if !s.trim().is_empty() => Prompt::Text(s.to_string()),
            Some(_) => return Err("`prompt` is empty".into()),
            None => return Err(format!("`prompt` must be a string, found {}", kind(p))),
        },
        (None, Some(m)) => Prompt::Chat(messages(m)?),
        (None, None) => return Err("missing field `prompt` (or `messages`)".into()),
    };
    let max_tokens = match obj.get("max_tokens") {
        Some(v) => Some(length(v, "max_tokens")?),
        None if opts.max_tokens_required => {
            return Err(
                "missing field `max_tokens` (or give the workload entry an `output` distribution)"
                    .into(),
            );
        }
        None => None,
    };
    Ok(Record {
        line: at,
        prompt,
        max_tokens,
    })
}

fn messages(m: &serde_json::Value) -> Result<Vec<ChatMessage>, String> {
    let list = m
        .as_array()
        .ok_or_else(|| format!("`messages` must be an array, found {}", kind(m)))?;
    if list.is_empty() {
        return Err("`messages` is empty".into());
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, msg) in list.iter().enumerate() {
        let field = |f: &str| msg.get(f).and_then(serde_json::Value::as_str);
        let Some(role) = field("role").filter(|r| !r.is_empty()) else {
            return Err(format!("`messages[{i}].role`: missing or not a string"));
        };
        let Some(content) = field("content") else {
            return Err(format!("`messages[{i}].content`: missing or not a string"));
        };
        out.push(ChatMessage {
            role: role.to_string(),
            content: content.to_string(),
        });
    }
    if out.iter().all(|m| m.content.trim().is_empty()) {
        return Err("every message of `messages` is empty".into());
    }
    Ok(out)
}

/// Output-token estimate of an answer: one token per 4 characters (rounded
/// up), the usual rule of thumb for English BPE vocabularies.
pub fn answer_tokens(answer: &str) -> u32 {
    u32::try_from(answer.chars().count().div_ceil(4)).unwrap_or(u32::MAX)
}

fn sharegpt_record(v: &serde_json::Value, line: usize) -> Result<Record, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("expected a JSON object, found {}", kind(v)))?;
    let turns = obj
        .get("conversations")
        .ok_or("missing field `conversations`")?
        .as_array()
        .ok_or("`conversations` must be an array")?;
    fn role(t: &serde_json::Value) -> Option<&str> {
        t.get("from").and_then(serde_json::Value::as_str)
    }
    let value = |i: usize, t: &serde_json::Value| -> Result<String, String> {
        t.get("value")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("`conversations[{i}].value`: missing or not a string"))
    };
    let Some(q) = turns
        .iter()
        .position(|t| matches!(role(t), Some("human" | "user")))
    else {
        return Err("no `human` turn in `conversations`".into());
    };
    let question = value(q, &turns[q])?;
    if question.trim().is_empty() {
        return Err(format!("`conversations[{q}].value`: the prompt is empty"));
    }
    let Some(a) = turns.get(q + 1) else {
        return Err(format!(
            "`conversations[{q}]` has no answer (`gpt` turn) after it"
        ));
    };
    if !matches!(role(a), Some("gpt" | "assistant" | "chatgpt")) {
        return Err(format!(
            "`conversations[{}].from` = {}: expected the `gpt` answer to the prompt",
            q + 1,
            a.get("from")
                .map_or("(missing)".to_string(), |f| f.to_string())
        ));
    }
    let answer = value(q + 1, a)?;
    let n = answer_tokens(&answer);
    if n == 0 {
        return Err(format!(
            "`conversations[{}].value`: the answer is empty (its length sets max_tokens)",
            q + 1
        ));
    }
    Ok(Record {
        line,
        prompt: Prompt::Text(question),
        max_tokens: Some(n),
    })
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

impl Record {
    /// The wire form.
    pub fn to_proto(&self) -> proto::DatasetRecord {
        use proto::dataset_record::Prompt as P;
        proto::DatasetRecord {
            prompt: Some(match &self.prompt {
                Prompt::Text(t) => P::Text(t.clone()),
                Prompt::Chat(m) => P::Chat(proto::ChatMessages {
                    messages: m
                        .iter()
                        .map(|m| proto::ChatMessage {
                            role: m.role.clone(),
                            content: m.content.clone(),
                        })
                        .collect(),
                }),
            }),
            max_tokens: self.max_tokens.unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(format: Format, on_error: OnError) -> Options {
        Options {
            format,
            on_error,
            max_records: None,
            max_tokens_required: true,
            seed: 1,
        }
    }

    fn fatal(text: &str, format: Format) -> String {
        parse(
            text,
            Path::new("data/x.json"),
            &opts(format, OnError::Fatal),
        )
        .unwrap_err()
        .to_string()
    }

    const JSONL: &str = r#"{"prompt": "Name three rivers.", "max_tokens": 32}

{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "max_tokens": 8, "id": 7}
"#;

    #[test]
    fn good_jsonl_loads() {
        let d = parse(
            JSONL,
            Path::new("x.jsonl"),
            &opts(Format::Jsonl, OnError::Fatal),
        )
        .unwrap();
        assert_eq!(d.records.len(), 2);
        assert_eq!(d.records[0].max_tokens, Some(32));
        assert_eq!(d.records[1].line, 3);
        assert!(matches!(&d.records[1].prompt, Prompt::Chat(m) if m.len() == 2));
    }

    #[test]
    fn each_malformed_jsonl_record_names_file_and_line() {
        let cases = [
            (r#"{"prompt": "a", "max_tokens": 4"#, "not valid JSON"),
            (r#"{"max_tokens": 4}"#, "missing field `prompt`"),
            (r#"{"prompt": "a"}"#, "missing field `max_tokens`"),
            (r#"{"prompt": "a", "max_tokens": -5}"#, "`max_tokens` = -5"),
            (r#"{"prompt": "a", "max_tokens": 0}"#, "`max_tokens` = 0"),
            (r#"{"prompt": "a", "max_tokens": "4"}"#, "positive integer"),
            (r#"{"prompt": 3, "max_tokens": 4}"#, "must be a string"),
            (r#"{"prompt": " ", "max_tokens": 4}"#, "empty"),
            (
                r#"{"messages": [{"role": "user"}], "max_tokens": 4}"#,
                "content",
            ),
            (r#"[1, 2]"#, "expected a JSON object"),
        ];
        for (bad, want) in cases {
            let text = format!("{}\n{bad}\n", JSONL.lines().next().unwrap());
            let e = fatal(&text, Format::Jsonl);
            assert!(e.starts_with("data/x.json:2: "), "{bad}: {e}");
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn skipped_records_are_counted_and_named() {
        let text = format!("{JSONL}{{\"prompt\": \"a\", \"max_tokens\": -1}}\nnot json\n");
        let d = parse(
            &text,
            Path::new("x.jsonl"),
            &opts(Format::Jsonl, OnError::Skip),
        )
        .unwrap();
        assert_eq!((d.valid, d.skipped), (2, 2));
        assert_eq!(d.problems[0].line, 4);
        assert_eq!(d.problems[1].line, 5);
        let all_bad = parse(
            "nope\n",
            Path::new("x.jsonl"),
            &opts(Format::Jsonl, OnError::Skip),
        )
        .unwrap_err();
        assert!(all_bad.to_string().contains("no valid record"), "{all_bad}");
    }

    #[test]
    fn output_fallback_allows_missing_max_tokens() {
        let mut o = opts(Format::Jsonl, OnError::Fatal);
        o.max_tokens_required = false;
        let d = parse("{\"prompt\": \"a b\"}\n", Path::new("x"), &o).unwrap();
        assert_eq!(d.records[0].max_tokens, None);
    }

    const SHAREGPT: &str = r#"[
  {"id": "a", "conversations": [
    {"from": "human", "value": "What is a river?"},
    {"from": "gpt", "value": "A natural stream of water."}
  ]},
  {"id": "b", "conversations": [
    {"from": "system", "value": "You are terse."},
    {"from": "human", "value": "Say \"hi\" ]"},
    {"from": "gpt", "value": "hi"},
    {"from": "human", "value": "again"}
  ]}
]"#;

    #[test]
    fn good_sharegpt_loads_with_answer_lengths() {
        let d = parse(
            SHAREGPT,
            Path::new("s.json"),
            &opts(Format::ShareGpt, OnError::Fatal),
        )
        .unwrap();
        assert_eq!(d.records.len(), 2);
        assert_eq!(d.records[0].line, 2);
        assert_eq!(d.records[1].line, 6);
        // "A natural stream of water." is 26 characters: 7 tokens.
        assert_eq!(d.records[0].max_tokens, Some(7));
        assert_eq!(d.records[1].prompt, Prompt::Text("Say \"hi\" ]".into()));
    }

    #[test]
    fn each_malformed_sharegpt_record_names_file_and_line() {
        let cases = [
            (
                SHAREGPT.replace(r#""id": "b", "conversations""#, r#""id": "b", "turns""#),
                6,
                "missing field `conversations`",
            ),
            (
                SHAREGPT.replace(r#"{"from": "gpt", "value": "hi"},"#, ""),
                6,
                "expected the `gpt` answer",
            ),
            (
                SHAREGPT.replace(r#""value": "hi""#, r#""value": 5"#),
                6,
                "conversations[2].value",
            ),
            (
                SHAREGPT.replace(r#""value": "hi"}"#, r#""value": "hi",}"#),
                9,
                "not valid JSON",
            ),
            (
                SHAREGPT.replace(r#""value": "What is a river?""#, r#""value": """#),
                2,
                "the prompt is empty",
            ),
        ];
        for (text, line, want) in cases {
            let e = fatal(&text, Format::ShareGpt);
            assert!(
                e.starts_with(&format!("data/x.json:{line}: ")),
                "{want}: {e}"
            );
            assert!(e.contains(want), "{want}: {e}");
        }
        let e = fatal("{\"conversations\": []}", Format::ShareGpt);
        assert!(e.contains("data/x.json:1: expected a JSON array"), "{e}");
        let e = fatal("[\n{\"conversations\": [\n", Format::ShareGpt);
        assert!(
            e.contains("data/x.json:2: ") && e.contains("not closed"),
            "{e}"
        );
    }

    #[test]
    fn samples_are_seeded_and_keep_file_order() {
        let text: String = (0..100)
            .map(|i| format!("{{\"prompt\": \"p{i}\", \"max_tokens\": {}}}\n", i + 1))
            .collect();
        let mut o = opts(Format::Jsonl, OnError::Fatal);
        o.max_records = Some(10);
        let a = parse(&text, Path::new("x"), &o).unwrap();
        let b = parse(&text, Path::new("x"), &o).unwrap();
        o.seed = 2;
        let c = parse(&text, Path::new("x"), &o).unwrap();
        assert_eq!(a.records.len(), 10);
        assert_eq!(a.valid, 100);
        assert_eq!(a.records, b.records);
        assert_ne!(a.records, c.records);
        assert!(a.records.windows(2).all(|w| w[0].line < w[1].line));
    }
}

//! Workloads in plans: the built-in profiles of the five workload categories,
//! length distributions, and weighted mixes — parsed and validated like the
//! rest of the plan, then sent to agents as `proto::Workload`.

use crate::quote::{written, written_key};
use serde::{Deserialize, Serialize};
use stampede_common::proto;

/// `[[workload]]`: one entry of the request mix, as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkloadEntry {
    /// Built-in profile to start from: "chat", "classification",
    /// "summarization", "code" or "translation".
    pub profile: Option<String>,
    /// Name in reports. Default: the profile's name, or `entry-<i>`.
    pub name: Option<String>,
    /// Relative weight in the mix. Default 1.
    pub weight: Option<f64>,
    /// Prompt length distribution (overrides the profile's).
    pub input: Option<RawLength>,
    /// Output length (`max_tokens`) distribution (overrides the profile's).
    pub output: Option<RawLength>,
    /// Shared system-prompt prefixes, to exercise prefix caching.
    pub shared_prefix: Option<RawSharedPrefix>,
    /// Ask the server to ignore end-of-sequence. Default true (lengths as planned).
    pub ignore_eos: Option<bool>,
    /// Sampling temperature. Default: the server's.
    pub temperature: Option<f64>,
    /// Send records of a dataset file instead of synthetic prompts.
    pub dataset: Option<RawDataset>,
    /// Stop sequences (`stop` in the request body).
    pub stop: Option<Vec<String>>,
    /// Extra fields merged into the request body, e.g. `{ top_p = 0.9 }`.
    pub extra_body: Option<toml::Table>,
    /// Stream responses (SSE). Default: `request.stream`.
    pub stream: Option<bool>,
    /// Model of this entry's requests. Default: `target.model`.
    pub model: Option<String>,
    /// "chat" or "completions". Default: `target.api`.
    pub api: Option<String>,
    /// Multi-turn sessions: `{ turns = 4, think_time = "2s" }`.
    pub session: Option<RawSession>,
}

/// `session = { turns = 4, think_time = "2s" }`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    /// Turns per session (≥ 1). Required.
    pub turns: Option<u32>,
    /// Pause between an answer and the next turn. Default "0s".
    pub think_time: Option<crate::duration::HumanDuration>,
}

/// Body fields stampede sets itself; `extra_body` may not carry them.
pub const RESERVED_BODY_FIELDS: [&str; 9] = [
    "model",
    "prompt",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "stream",
    "stream_options",
    "ignore_eos",
    "temperature",
];

/// `dataset = { path = "data/x.jsonl", format = "jsonl", on_error = "skip", max_records = 1000 }`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDataset {
    /// The file, relative to the plan file. Required.
    pub path: Option<std::path::PathBuf>,
    /// "jsonl" or "sharegpt". Default: "sharegpt" for `.json` files, "jsonl" otherwise.
    pub format: Option<String>,
    /// "fatal" (default: refuse the plan) or "skip" (leave the record out,
    /// count it and report it).
    pub on_error: Option<String>,
    /// Send at most this many records, sampled with the plan's seed. Default: all.
    pub max_records: Option<u64>,
}

/// A length distribution as written, e.g. `{ dist = "lognormal", mean = 800, stddev = 300, min = 16, max = 8192 }`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLength {
    /// "fixed", "uniform", "normal", "lognormal" or "empirical".
    pub dist: Option<String>,
    /// The length of a "fixed" distribution.
    pub value: Option<u32>,
    /// Lower clamp (≥ 1). Default 1.
    pub min: Option<u32>,
    /// Upper clamp. Default 1000000 (normal, lognormal); required for uniform.
    pub max: Option<u32>,
    /// Mean (normal, lognormal).
    pub mean: Option<f64>,
    /// Standard deviation of the lengths (normal, lognormal).
    pub stddev: Option<f64>,
    /// Observed lengths to draw from ("empirical").
    pub values: Option<Vec<u32>>,
}

/// `shared_prefix = { groups = 8, tokens = 1024 }`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSharedPrefix {
    /// Number of distinct prefixes; request k uses prefix k mod groups.
    pub groups: Option<u32>,
    /// Length of each prefix in tokens.
    pub tokens: Option<u32>,
}

/// A validated length distribution.
#[derive(Debug, Clone, PartialEq)]
pub enum Length {
    /// Always this.
    Fixed(u32),
    /// Uniform over [min, max].
    Uniform { min: u32, max: u32 },
    /// Normal, clamped to [min, max].
    Normal {
        mean: f64,
        stddev: f64,
        min: u32,
        max: u32,
    },
    /// Log-normal with this mean and stddev of the lengths, clamped.
    LogNormal {
        mean: f64,
        stddev: f64,
        min: u32,
        max: u32,
    },
    /// Drawn from these values.
    Empirical(Vec<u32>),
}

/// A validated workload entry.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadEntry {
    /// Name in reports.
    pub name: String,
    /// Relative weight.
    pub weight: f64,
    /// Prompt lengths.
    pub input: Length,
    /// Output lengths.
    pub output: Length,
    /// (groups, tokens) of shared prefixes.
    pub shared_prefix: Option<(u32, u32)>,
    /// Ask the server to ignore end-of-sequence.
    pub ignore_eos: bool,
    /// Temperature.
    pub temperature: Option<f64>,
    /// Records of a dataset (sent instead of synthetic prompts).
    pub dataset: Option<DatasetSource>,
    /// Per-entry request options.
    pub options: RequestOptions,
    /// (turns, think time) of multi-turn sessions.
    pub session: Option<(u32, std::time::Duration)>,
}

/// Request options of one workload entry; `None`/empty: the plan's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestOptions {
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Extra body fields (a JSON object), serialized.
    pub extra_body_json: String,
    /// Streaming.
    pub stream: Option<bool>,
    /// Model.
    pub model: Option<String>,
    /// API.
    pub api: Option<crate::Api>,
}

/// A dataset as a workload entry uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSource {
    /// The `path` as written in the plan.
    pub path: std::path::PathBuf,
    /// How it is read.
    pub options: crate::dataset::Options,
    /// The loaded records; `None` when the plan was checked without reading
    /// files (rebuilding the reports of a past run).
    pub data: Option<std::sync::Arc<crate::dataset::Dataset>>,
}

const UNBOUNDED: u32 = 1_000_000;

/// The built-in profiles: (name, input, output). Means and shapes are
/// documented in `docs/workloads.md`.
pub fn profile(name: &str) -> Option<(Length, Length)> {
    let ln = |mean: f64, stddev: f64, min: u32, max: u32| Length::LogNormal {
        mean,
        stddev,
        min,
        max,
    };
    let n = |mean: f64, stddev: f64, min: u32, max: u32| Length::Normal {
        mean,
        stddev,
        min,
        max,
    };
    Some(match name {
        // Conversational turns: medium prompts, medium answers, long tails.
        "chat" => (ln(512.0, 256.0, 16, 8192), ln(256.0, 128.0, 16, 4096)),
        // Long input, a label out.
        "classification" => (
            ln(1024.0, 512.0, 64, 16384),
            Length::Uniform { min: 1, max: 8 },
        ),
        // Long input, medium output.
        "summarization" => (ln(2048.0, 768.0, 256, 32768), n(256.0, 64.0, 32, 1024)),
        // Medium input, long output.
        "code" => (n(512.0, 128.0, 64, 4096), ln(768.0, 256.0, 64, 8192)),
        // Output about as long as the input.
        "translation" => (n(256.0, 96.0, 16, 2048), n(256.0, 96.0, 16, 2048)),
        _ => return None,
    })
}

/// Names of the built-in profiles.
pub const PROFILES: [&str; 5] = [
    "chat",
    "classification",
    "summarization",
    "code",
    "translation",
];

/// A validation failure: (key under the entry, value shown, reason).
pub type Problem = (String, String, String);

pub(crate) fn problem(
    key: impl Into<String>,
    value: impl std::fmt::Display,
    reason: impl Into<String>,
) -> Problem {
    (key.into(), value.to_string(), reason.into())
}

impl RawLength {
    fn validate(&self, key: &str) -> Result<Length, Problem> {
        let k = |f: &str| format!("{key}.{f}");
        let dist = self.dist.as_deref().ok_or_else(|| {
            problem(
                k("dist"),
                "(missing)",
                "expected \"fixed\", \"uniform\", \"normal\", \"lognormal\" or \"empirical\"",
            )
        })?;
        let min = self.min.unwrap_or(1);
        if min == 0 {
            return Err(problem(k("min"), 0, "lengths are at least 1"));
        }
        let max = self.max.unwrap_or(UNBOUNDED);
        if max < min {
            return Err(problem(k("max"), max, format!("must be ≥ min ({min})")));
        }
        let normal = |log: bool| -> Result<Length, Problem> {
            let mean = self.mean.ok_or_else(|| {
                problem(k("mean"), "(missing)", format!("\"{dist}\" needs a mean"))
            })?;
            let stddev = self.stddev.ok_or_else(|| {
                problem(
                    k("stddev"),
                    "(missing)",
                    format!("\"{dist}\" needs a stddev"),
                )
            })?;
            if !(mean.is_finite() && mean > 0.0) {
                return Err(problem(k("mean"), mean, "must be positive"));
            }
            if !(stddev.is_finite() && stddev >= 0.0) {
                return Err(problem(k("stddev"), stddev, "must be ≥ 0"));
            }
            Ok(if log {
                Length::LogNormal {
                    mean,
                    stddev,
                    min,
                    max,
                }
            } else {
                Length::Normal {
                    mean,
                    stddev,
                    min,
                    max,
                }
            })
        };
        match dist {
            "fixed" => match self.value {
                Some(v) if v > 0 => Ok(Length::Fixed(v)),
                Some(v) => Err(problem(k("value"), v, "must be at least 1")),
                None => Err(problem(k("value"), "(missing)", "\"fixed\" needs a value")),
            },
            "uniform" => {
                if self.max.is_none() {
                    return Err(problem(
                        k("max"),
                        "(missing)",
                        "\"uniform\" needs min and max",
                    ));
                }
                Ok(Length::Uniform { min, max })
            }
            "normal" => normal(false),
            "lognormal" => normal(true),
            "empirical" => match &self.values {
                Some(v) if !v.is_empty() && v.iter().all(|x| *x > 0) => {
                    Ok(Length::Empirical(v.clone()))
                }
                Some(_) => Err(problem(
                    k("values"),
                    "(list)",
                    "needs at least one value, each ≥ 1",
                )),
                None => Err(problem(
                    k("values"),
                    "(missing)",
                    "\"empirical\" needs values",
                )),
            },
            other => Err(problem(
                k("dist"),
                format!("{other:?}"),
                "expected \"fixed\", \"uniform\", \"normal\", \"lognormal\" or \"empirical\"",
            )),
        }
    }
}

/// A `temperature` (at `key`) is between 0 and 2: `[[workload]]` and
/// `[request]` both check it here.
pub(crate) fn check_temperature(key: &str, temperature: Option<f64>) -> Result<(), Problem> {
    match temperature {
        Some(t) if !(t.is_finite() && (0.0..=2.0).contains(&t)) => {
            Err(problem(key, t, "must be between 0 and 2"))
        }
        _ => Ok(()),
    }
}

/// An `extra_body` table (at `key`) as the JSON object merged into request
/// bodies (empty when not given), refusing the fields stampede sets itself:
/// `[[workload]]` and `[request]` both read it here.
pub(crate) fn extra_body_json(key: &str, table: Option<&toml::Table>) -> Result<String, Problem> {
    let Some(table) = table else {
        return Ok(String::new());
    };
    if let Some((k, v)) = table
        .iter()
        .find(|(k, _)| RESERVED_BODY_FIELDS.contains(&k.as_str()))
    {
        return Err(problem(
            format!("{key}.{k}"),
            written(v),
            "stampede sets this field itself; use the plan's own key for it",
        ));
    }
    serde_json::to_string(table)
        .map_err(|e| problem(key, written(table), format!("not expressible as JSON: {e}")))
}

impl RawWorkloadEntry {
    /// Validate entry `i` (keys in problems are relative to `workload[i]`).
    pub fn validate(&self, i: usize) -> Result<WorkloadEntry, Problem> {
        let key = |f: &str| format!("workload[{i}].{f}");
        let base = match self.profile.as_deref() {
            Some(p) => Some(profile(p).ok_or_else(|| {
                problem(
                    key("profile"),
                    format!("{p:?}"),
                    format!("expected one of {}", PROFILES.join(", ")),
                )
            })?),
            None => None,
        };
        let dataset = match &self.dataset {
            Some(d) => Some(self.dataset_source(d, i)?),
            None => None,
        };
        let input = match (&self.input, &base) {
            // Placeholder until the records are read (see `load_dataset`).
            (None, None) if dataset.is_some() => Length::Fixed(1),
            (Some(raw), _) => raw.validate(&key("input"))?,
            (None, Some((inp, _))) => inp.clone(),
            (None, None) => {
                return Err(problem(
                    key("input"),
                    "(missing)",
                    "give a `profile` or an `input` distribution",
                ));
            }
        };
        let output = match (&self.output, &base) {
            (None, None) if dataset.is_some() => Length::Fixed(1),
            (Some(raw), _) => raw.validate(&key("output"))?,
            (None, Some((_, out))) => out.clone(),
            (None, None) => {
                return Err(problem(
                    key("output"),
                    "(missing)",
                    "give a `profile` or an `output` distribution",
                ));
            }
        };
        let weight = self.weight.unwrap_or(1.0);
        if !(weight.is_finite() && weight > 0.0) {
            return Err(problem(key("weight"), weight, "must be positive"));
        }
        let shared_prefix = match &self.shared_prefix {
            None => None,
            Some(p) => {
                let groups = p.groups.filter(|g| *g > 0).ok_or_else(|| {
                    problem(
                        key("shared_prefix.groups"),
                        p.groups.map_or("(missing)".into(), |g| g.to_string()),
                        "must be at least 1",
                    )
                })?;
                let tokens = p.tokens.filter(|t| *t > 0).ok_or_else(|| {
                    problem(
                        key("shared_prefix.tokens"),
                        p.tokens.map_or("(missing)".into(), |t| t.to_string()),
                        "must be at least 1",
                    )
                })?;
                Some((groups, tokens))
            }
        };
        check_temperature(&key("temperature"), self.temperature)?;
        Ok(WorkloadEntry {
            name: self
                .name
                .clone()
                .or_else(|| self.profile.clone())
                .unwrap_or_else(|| format!("entry-{i}")),
            weight,
            input,
            output,
            shared_prefix,
            ignore_eos: self.ignore_eos.unwrap_or(true),
            temperature: self.temperature,
            dataset,
            options: self.request_options(i)?,
            session: self.session(i)?,
        })
    }

    fn session(&self, i: usize) -> Result<Option<(u32, std::time::Duration)>, Problem> {
        let Some(s) = &self.session else {
            return Ok(None);
        };
        let key = |f: &str| format!("workload[{i}].session.{f}");
        if self.dataset.is_some() {
            return Err(problem(
                format!("workload[{i}].session"),
                written(s),
                "sessions build synthetic conversations; they do not apply to a dataset entry",
            ));
        }
        let turns = match s.turns {
            Some(t) if (1..=1000).contains(&t) => t,
            Some(t) => return Err(problem(key("turns"), t, "must be between 1 and 1000")),
            None => {
                return Err(problem(
                    key("turns"),
                    "(missing)",
                    "turns per session, e.g. 4",
                ));
            }
        };
        Ok(Some((
            turns,
            s.think_time
                .as_ref()
                .map_or(std::time::Duration::ZERO, |d| d.get()),
        )))
    }

    fn request_options(&self, i: usize) -> Result<RequestOptions, Problem> {
        let key = |f: &str| format!("workload[{i}].{f}");
        let stop = self.stop.clone().unwrap_or_default();
        if let Some((j, _)) = stop.iter().enumerate().find(|(_, s)| s.is_empty()) {
            return Err(problem(
                key(&format!("stop[{j}]")),
                "\"\"",
                "a stop sequence must not be empty",
            ));
        }
        let extra_body_json = extra_body_json(&key("extra_body"), self.extra_body.as_ref())?;
        if self.model.as_deref() == Some("") {
            return Err(problem(key("model"), "\"\"", "must not be empty"));
        }
        let api = match self.api.as_deref() {
            None => None,
            Some("chat") => Some(crate::Api::Chat),
            Some("completions") => Some(crate::Api::Completions),
            Some(other) => {
                return Err(problem(
                    key("api"),
                    format!("{other:?}"),
                    "expected \"chat\" or \"completions\"",
                ));
            }
        };
        Ok(RequestOptions {
            stop,
            extra_body_json,
            stream: self.stream,
            model: self.model.clone(),
            api,
        })
    }

    /// The static checks of a dataset entry; the file is read by [`load_dataset`].
    fn dataset_source(&self, d: &RawDataset, i: usize) -> Result<DatasetSource, Problem> {
        use crate::dataset::{Format, OnError, Options};
        let key = |f: &str| format!("workload[{i}].{f}");
        for (field, set) in [
            ("profile", self.profile.is_some()),
            ("input", self.input.is_some()),
        ] {
            if set {
                return Err(problem(
                    key(field),
                    written_key(self, field),
                    "does not apply to a dataset entry (its records are the prompts)",
                ));
            }
        }
        let Some(path) = d.path.clone() else {
            return Err(problem(
                key("dataset.path"),
                "(missing)",
                "the dataset file, relative to the plan file",
            ));
        };
        let format = match d.format.as_deref() {
            Some("jsonl") => Format::Jsonl,
            Some("sharegpt") => Format::ShareGpt,
            None if path.extension().is_some_and(|e| e == "json") => Format::ShareGpt,
            None => Format::Jsonl,
            Some(other) => {
                return Err(problem(
                    key("dataset.format"),
                    format!("{other:?}"),
                    "expected \"jsonl\" or \"sharegpt\"",
                ));
            }
        };
        if let (Format::ShareGpt, Some(output)) = (format, &self.output) {
            return Err(problem(
                key("output"),
                written(output),
                "a ShareGPT record's answer sets its max_tokens; `output` applies to JSONL records without max_tokens",
            ));
        }
        let on_error = match d.on_error.as_deref().unwrap_or("fatal") {
            "fatal" => OnError::Fatal,
            "skip" => OnError::Skip,
            other => {
                return Err(problem(
                    key("dataset.on_error"),
                    format!("{other:?}"),
                    "expected \"fatal\" or \"skip\"",
                ));
            }
        };
        let max_records = match d.max_records {
            Some(0) => {
                return Err(problem(
                    key("dataset.max_records"),
                    0,
                    "must be at least 1 (or left out for all records)",
                ));
            }
            Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            None => None,
        };
        Ok(DatasetSource {
            path,
            options: Options {
                format,
                on_error,
                max_records,
                max_tokens_required: self.output.is_none(),
                seed: 0,
            },
            data: None,
        })
    }
}

/// Read entry `i`'s dataset (if it has one) from `dir` (the plan file's
/// directory), sampling with `seed`; its lengths become the entry's
/// empirical input and output distributions.
pub fn load_dataset(
    entry: &mut WorkloadEntry,
    i: usize,
    dir: &std::path::Path,
    seed: u64,
) -> Result<(), Problem> {
    let Some(src) = &mut entry.dataset else {
        return Ok(());
    };
    src.options.seed = seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let full = dir.join(&src.path);
    let data = crate::dataset::load(&full, &src.options).map_err(|e| {
        problem(
            format!("workload[{i}].dataset.path"),
            format!("{:?}", src.path.display().to_string()),
            e.to_string(),
        )
    })?;
    let lengths = |f: &dyn Fn(&crate::dataset::Record) -> Option<u32>| {
        data.records.iter().filter_map(f).collect::<Vec<u32>>()
    };
    let words = lengths(&|r| u32::try_from(r.prompt.words().max(1)).ok());
    entry.input = Length::Empirical(words);
    let outputs = lengths(&|r| r.max_tokens);
    if src.options.max_tokens_required && !outputs.is_empty() {
        entry.output = Length::Empirical(outputs);
    }
    src.data = Some(std::sync::Arc::new(data));
    Ok(())
}

impl Length {
    /// The wire form.
    pub fn to_proto(&self) -> proto::LengthDistribution {
        use proto::length_distribution::Kind;
        let bounds = |min: u32, max: u32| Some(proto::LengthBounds { min, max });
        let kind = match self {
            Length::Fixed(v) => Kind::Fixed(*v),
            Length::Uniform { min, max } => Kind::Uniform(proto::LengthBounds {
                min: *min,
                max: *max,
            }),
            Length::Normal {
                mean,
                stddev,
                min,
                max,
            } => Kind::Normal(proto::LengthNormal {
                mean: *mean,
                stddev: *stddev,
                bounds: bounds(*min, *max),
            }),
            Length::LogNormal {
                mean,
                stddev,
                min,
                max,
            } => Kind::LogNormal(proto::LengthNormal {
                mean: *mean,
                stddev: *stddev,
                bounds: bounds(*min, *max),
            }),
            Length::Empirical(v) => Kind::Empirical(proto::LengthEmpirical { values: v.clone() }),
        };
        proto::LengthDistribution { kind: Some(kind) }
    }
}

/// The mix of a plan without `[[workload]]`: one entry with `[request]`'s
/// lengths. Its prompts are synthetic like every entry's, so they differ
/// per request from the first word on (no shared prefix a server's prefix
/// cache could answer); the body asks for what `[request]` asks (its
/// temperature and extra fields; `ignore_eos` when given, else only for
/// `replay`: a replayed trace's recorded output lengths).
pub fn from_request(r: &crate::RequestSpec, replay: bool) -> WorkloadEntry {
    WorkloadEntry {
        name: "request".into(),
        weight: 1.0,
        input: Length::Fixed(r.prompt_tokens.max(1)),
        output: Length::Fixed(r.max_tokens.max(1)),
        shared_prefix: None,
        ignore_eos: r.ignore_eos.unwrap_or(replay),
        temperature: r.temperature,
        dataset: None,
        options: RequestOptions {
            extra_body_json: r.extra_body_json.clone(),
            ..RequestOptions::default()
        },
        session: None,
    }
}

/// The wire form of a validated mix.
pub fn to_proto(entries: &[WorkloadEntry], seed: u64) -> proto::Workload {
    proto::Workload {
        entries: entries
            .iter()
            .map(|e| proto::WorkloadEntry {
                name: e.name.clone(),
                weight: e.weight,
                input_tokens: e.dataset.is_none().then(|| e.input.to_proto()),
                // A dataset entry's output distribution is only a fallback for
                // records without max_tokens.
                output_tokens: e
                    .dataset
                    .as_ref()
                    .is_none_or(|d| !d.options.max_tokens_required)
                    .then(|| e.output.to_proto()),
                shared_prefix: e
                    .shared_prefix
                    .map(|(groups, prefix_tokens)| proto::SharedPrefix {
                        groups,
                        prefix_tokens,
                    }),
                ignore_eos: e.ignore_eos,
                temperature: e.temperature,
                records: e
                    .dataset
                    .as_ref()
                    .and_then(|d| d.data.as_ref())
                    .map(|d| {
                        d.records
                            .iter()
                            .map(crate::dataset::Record::to_proto)
                            .collect()
                    })
                    .unwrap_or_default(),
                stop: e.options.stop.clone(),
                extra_body_json: e.options.extra_body_json.clone(),
                stream: e.options.stream,
                model: e.options.model.clone().unwrap_or_default(),
                api: match e.options.api {
                    None => proto::Api::Unspecified,
                    Some(crate::Api::Chat) => proto::Api::Chat,
                    Some(crate::Api::Completions) => proto::Api::Completions,
                } as i32,
                turns: e.session.map_or(0, |(t, _)| t),
                think_time_ms: e
                    .session
                    .map_or(0, |(_, d)| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            })
            .collect(),
        seed,
    }
}

/// Room left in an assignment for everything but dataset records and trace
/// arrivals (headers, CA certificates, the rest of the template).
pub const ASSIGNMENT_RESERVE: usize = 1024 * 1024;

/// Check that the mix's records fit in one assignment message, leaving
/// `other` bytes for the phase's trace: the problem names the largest dataset.
pub fn check_wire_size(entries: &[WorkloadEntry], other: usize) -> Result<(), Problem> {
    use prost::Message;
    let budget = stampede_common::MAX_MESSAGE_BYTES.saturating_sub(ASSIGNMENT_RESERVE);
    let wire = to_proto(entries, 0);
    let total = wire.encoded_len() + other;
    if total <= budget {
        return Ok(());
    }
    let Some((i, e)) = wire
        .entries
        .iter()
        .enumerate()
        .filter(|(_, e)| !e.records.is_empty())
        .max_by_key(|(_, e)| e.encoded_len())
    else {
        return Ok(());
    };
    let n = e.records.len();
    let per_record = e.encoded_len() / n.max(1);
    let fit = budget.saturating_sub(total - e.encoded_len()) / per_record.max(1);
    let path = entries[i]
        .dataset
        .as_ref()
        .map_or_else(String::new, |d| d.path.display().to_string());
    Err(problem(
        format!("workload[{i}].dataset.max_records"),
        n,
        format!(
            "the {n} records sampled from {path} take {:.1} MiB on the wire, and with the rest an assignment would be {:.1} MiB, over the {} MiB message limit (less {} MiB for the rest of the assignment); set max_records to at most about {fit}",
            e.encoded_len() as f64 / 1048576.0,
            total as f64 / 1048576.0,
            stampede_common::MAX_MESSAGE_BYTES / 1048576,
            ASSIGNMENT_RESERVE / 1048576,
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_exists_and_overrides_apply() {
        for p in PROFILES {
            let e = RawWorkloadEntry {
                profile: Some(p.into()),
                ..Default::default()
            }
            .validate(0)
            .unwrap();
            assert_eq!(e.name, p);
            assert!(e.ignore_eos);
        }
        let e = RawWorkloadEntry {
            profile: Some("chat".into()),
            output: Some(RawLength {
                dist: Some("fixed".into()),
                value: Some(7),
                ..Default::default()
            }),
            ..Default::default()
        }
        .validate(0)
        .unwrap();
        assert_eq!(e.output, Length::Fixed(7));
    }

    #[test]
    fn a_dataset_too_big_for_one_assignment_is_named() {
        let big = "word ".repeat(200_000);
        let text: String = (0..20)
            .map(|_| format!("{{\"prompt\": \"{big}\", \"max_tokens\": 4}}\n"))
            .collect();
        let dir = std::env::temp_dir().join(format!("stampede-wire-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("big.jsonl"), text).unwrap();
        let raw = RawWorkloadEntry {
            dataset: Some(RawDataset {
                path: Some("big.jsonl".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut e = raw.validate(0).unwrap();
        load_dataset(&mut e, 0, &dir, 1).unwrap();
        let (key, value, reason) = check_wire_size(&[e.clone()], 0).unwrap_err();
        assert_eq!(
            (key.as_str(), value.as_str()),
            ("workload[0].dataset.max_records", "20")
        );
        assert!(
            reason.contains("big.jsonl") && reason.contains("16 MiB"),
            "{reason}"
        );
        // The suggested sample fits.
        let fit: usize = reason.rsplit(' ').next().unwrap().parse().unwrap();
        let mut small = raw.clone();
        small.dataset.as_mut().unwrap().max_records = Some(fit as u64);
        let mut e = small.validate(0).unwrap();
        load_dataset(&mut e, 0, &dir, 1).unwrap();
        assert!(check_wire_size(&[e], 0).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn problems_name_the_key() {
        let bad = |e: RawWorkloadEntry| e.validate(2).unwrap_err().0;
        assert_eq!(
            bad(RawWorkloadEntry {
                profile: Some("poetry".into()),
                ..Default::default()
            }),
            "workload[2].profile"
        );
        assert_eq!(bad(RawWorkloadEntry::default()), "workload[2].input");
        let no_mean = RawLength {
            dist: Some("normal".into()),
            stddev: Some(1.0),
            ..Default::default()
        };
        assert_eq!(
            bad(RawWorkloadEntry {
                profile: Some("chat".into()),
                input: Some(no_mean),
                ..Default::default()
            }),
            "workload[2].input.mean"
        );
        let prefix = RawSharedPrefix {
            groups: Some(0),
            tokens: Some(5),
        };
        assert_eq!(
            bad(RawWorkloadEntry {
                profile: Some("chat".into()),
                shared_prefix: Some(prefix),
                ..Default::default()
            }),
            "workload[2].shared_prefix.groups"
        );
    }
}

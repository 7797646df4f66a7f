//! Per-request variation: which kind of request, how long a prompt, how many
//! output tokens, which shared prefix.
//!
//! Request k's content depends only on (seed, k) — not on the agent that
//! sends it or on timing — so a sharded run sends exactly the requests an
//! unsharded one would. Prompts are synthetic one-token words (see
//! `stampede_common::prompt`): a shared prefix is the same words for every
//! request of its group, and the rest is drawn from k's own stream, so
//! requests share no more prefix than the workload says.

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Normal};
use serde_json::json;
use stampede_common::prompt::push_words_from;
use stampede_common::proto::dataset_record::Prompt;
use stampede_common::proto::{self, Api, RequestTemplate, length_distribution::Kind};

/// A length distribution, ready to sample.
#[derive(Debug, Clone)]
pub enum Length {
    /// Always n.
    Fixed(u32),
    /// Uniform over [min, max].
    Uniform(u32, u32),
    /// Normal, clamped.
    Normal(Normal<f64>, u32, u32),
    /// Log-normal, clamped.
    LogNormal(LogNormal<f64>, u32, u32),
    /// Drawn from observed values.
    Empirical(Vec<u32>),
}

impl Length {
    fn from_proto(d: Option<&proto::LengthDistribution>, what: &str) -> Result<Self, String> {
        let bounds = |b: Option<&proto::LengthBounds>| -> Result<(u32, u32), String> {
            let b = b.ok_or_else(|| format!("{what}: bounds missing"))?;
            if b.min == 0 || b.max < b.min {
                return Err(format!(
                    "{what}: bounds [{}, {}] (need 1 ≤ min ≤ max)",
                    b.min, b.max
                ));
            }
            Ok((b.min, b.max))
        };
        let normal_params = |n: &proto::LengthNormal| -> Result<(), String> {
            if !(n.mean.is_finite() && n.mean > 0.0 && n.stddev.is_finite() && n.stddev >= 0.0) {
                return Err(format!("{what}: mean {} / stddev {}", n.mean, n.stddev));
            }
            Ok(())
        };
        match d.and_then(|d| d.kind.as_ref()) {
            Some(Kind::Fixed(n)) if *n > 0 => Ok(Length::Fixed(*n)),
            Some(Kind::Fixed(n)) => Err(format!("{what}: fixed length {n}")),
            Some(Kind::Uniform(b)) => {
                let (lo, hi) = bounds(Some(b))?;
                Ok(Length::Uniform(lo, hi))
            }
            Some(Kind::Normal(n)) => {
                normal_params(n)?;
                let (lo, hi) = bounds(n.bounds.as_ref())?;
                let dist = Normal::new(n.mean, n.stddev).map_err(|e| format!("{what}: {e}"))?;
                Ok(Length::Normal(dist, lo, hi))
            }
            Some(Kind::LogNormal(n)) => {
                normal_params(n)?;
                let (lo, hi) = bounds(n.bounds.as_ref())?;
                // Parameters of the underlying normal from the lengths' mean and stddev.
                let sigma2 = (1.0 + (n.stddev / n.mean).powi(2)).ln();
                let mu = n.mean.ln() - sigma2 / 2.0;
                let dist = LogNormal::new(mu, sigma2.sqrt()).map_err(|e| format!("{what}: {e}"))?;
                Ok(Length::LogNormal(dist, lo, hi))
            }
            Some(Kind::Empirical(e)) if !e.values.is_empty() && e.values.iter().all(|v| *v > 0) => {
                Ok(Length::Empirical(e.values.clone()))
            }
            Some(Kind::Empirical(_)) => Err(format!(
                "{what}: empirical values must be non-empty and ≥ 1"
            )),
            None => Err(format!("{what}: no distribution")),
        }
    }

    /// One sample.
    pub fn sample(&self, rng: &mut SmallRng) -> u32 {
        let clamp =
            |x: f64, lo: u32, hi: u32| (x.round().max(f64::from(lo)).min(f64::from(hi))) as u32;
        match self {
            Length::Fixed(n) => *n,
            Length::Uniform(lo, hi) => rng.random_range(*lo..=*hi),
            Length::Normal(d, lo, hi) => clamp(d.sample(rng), *lo, *hi),
            Length::LogNormal(d, lo, hi) => clamp(d.sample(rng), *lo, *hi),
            Length::Empirical(v) => v[rng.random_range(0..v.len())],
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    weight: f64,
    /// Prompt lengths (absent for a dataset entry).
    input: Option<Length>,
    /// `max_tokens` (absent for a dataset entry whose records all carry theirs).
    output: Option<Length>,
    /// Dataset records sent instead of synthetic prompts.
    records: Vec<proto::DatasetRecord>,
    /// Stop sequences.
    stop: Vec<String>,
    /// Extra body fields (stampede's own fields are set after them and win).
    extra: serde_json::Map<String, serde_json::Value>,
    /// Turns per session (≤ 1: single requests) and the pause between them.
    turns: u32,
    think: std::time::Duration,
    /// API, model and streaming of this entry's requests.
    api: Api,
    model: String,
    stream: bool,
    prefix: Option<(u32, u32)>,
    ignore_eos: bool,
    temperature: Option<f64>,
}

/// One generated request.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The JSON body.
    pub body: Bytes,
    /// Its `max_tokens`.
    pub max_tokens: u32,
    /// Which workload entry it came from.
    pub entry: usize,
    /// The new user question (filled for multi-turn sessions only: it joins
    /// the history of the next turn).
    pub question: String,
}

/// Generates request k of a phase.
#[derive(Debug, Clone)]
pub struct WorkloadGen {
    entries: Vec<Entry>,
    total_weight: f64,
    seed: u64,
    /// Words prompts are built from (empty: the built-in list).
    words: Vec<String>,
}

impl WorkloadGen {
    /// From the wire form; `t` gives the API, model and streaming.
    pub fn from_proto(w: &proto::Workload, t: &RequestTemplate) -> Result<Self, String> {
        if w.entries.is_empty() {
            return Err("workload has no entries".into());
        }
        let mut entries = Vec::with_capacity(w.entries.len());
        for e in &w.entries {
            if !(e.weight.is_finite() && e.weight > 0.0) {
                return Err(format!("workload {:?}: weight {}", e.name, e.weight));
            }
            let prefix = match &e.shared_prefix {
                Some(p) if p.groups == 0 || p.prefix_tokens == 0 => {
                    return Err(format!(
                        "workload {:?}: shared prefix needs groups and tokens",
                        e.name
                    ));
                }
                Some(p) => Some((p.groups, p.prefix_tokens)),
                None => None,
            };
            let need_input = e.records.is_empty();
            let need_output = need_input || e.records.iter().any(|r| r.max_tokens == 0);
            if e.records.iter().any(|r| r.prompt.is_none()) {
                return Err(format!(
                    "workload {:?}: a dataset record has no prompt",
                    e.name
                ));
            }
            let length = |d: Option<&proto::LengthDistribution>, need: bool, what: &str| {
                if need || d.is_some() {
                    Length::from_proto(d, &format!("{} {what}", e.name)).map(Some)
                } else {
                    Ok(None)
                }
            };
            let extra = if e.extra_body_json.is_empty() {
                serde_json::Map::new()
            } else {
                match serde_json::from_str::<serde_json::Value>(&e.extra_body_json) {
                    Ok(serde_json::Value::Object(m)) => m,
                    _ => {
                        return Err(format!(
                            "workload {:?}: extra body is not a JSON object",
                            e.name
                        ));
                    }
                }
            };
            let template_api = Api::try_from(t.api).unwrap_or(Api::Chat);
            entries.push(Entry {
                turns: e.turns,
                think: std::time::Duration::from_millis(e.think_time_ms),
                stop: e.stop.clone(),
                extra,
                api: match Api::try_from(e.api) {
                    Ok(Api::Unspecified) | Err(_) => template_api,
                    Ok(api) => api,
                },
                model: if e.model.is_empty() {
                    t.model.clone()
                } else {
                    e.model.clone()
                },
                stream: e.stream.unwrap_or(t.stream),
                weight: e.weight,
                input: length(e.input_tokens.as_ref(), need_input, "input")?,
                output: length(e.output_tokens.as_ref(), need_output, "output")?,
                records: e.records.clone(),
                prefix,
                ignore_eos: e.ignore_eos,
                temperature: e.temperature,
            });
        }
        Ok(Self {
            total_weight: entries.iter().map(|e| e.weight).sum(),
            entries,
            seed: w.seed,
            words: t.prompt_words.clone(),
        })
    }

    /// A one-entry generator with the template's lengths and `ignore_eos`
    /// (for replayed traces, whose records give each request's lengths).
    pub fn plain(t: &RequestTemplate) -> Result<Self, String> {
        let fixed = |n: u32| {
            Some(proto::LengthDistribution {
                kind: Some(Kind::Fixed(n.max(1))),
            })
        };
        let entry = proto::WorkloadEntry {
            name: "replay".into(),
            weight: 1.0,
            input_tokens: fixed(t.prompt_tokens_estimate),
            output_tokens: fixed(t.max_tokens),
            ignore_eos: true,
            ..Default::default()
        };
        Self::from_proto(
            &proto::Workload {
                entries: vec![entry],
                seed: 0,
            },
            t,
        )
    }

    /// API and streaming of entry `i`'s requests.
    pub fn route(&self, i: usize) -> Option<(Api, bool)> {
        self.entries.get(i).map(|e| (e.api, e.stream))
    }

    /// Number of entries in the mix.
    pub fn entries(&self) -> usize {
        self.entries.len()
    }

    /// Request `k` of the phase.
    pub fn request(&self, k: u64) -> Generated {
        self.request_with(k, None)
    }

    /// Request `k` of the phase, with (prompt tokens, max_tokens) given
    /// instead of drawn (a replayed trace record's lengths).
    pub fn request_with(&self, k: u64, lengths: Option<(u32, u32)>) -> Generated {
        self.build(k, 0, lengths, &[])
    }

    /// (turns, think time) of entry `i`'s sessions; `None` for single requests.
    pub fn session(&self, i: usize) -> Option<(u32, std::time::Duration)> {
        self.entries
            .get(i)
            .filter(|e| e.turns > 1)
            .map(|e| (e.turns, e.think))
    }

    /// Turn `turn` (0-based) of session `k`: the previous turns' (question,
    /// answer) pairs as history, then a new question from (k, turn)'s stream.
    pub fn request_turn(&self, k: u64, turn: u32, history: &[(String, String)]) -> Generated {
        self.build(k, turn, None, history)
    }

    fn build(
        &self,
        k: u64,
        turn: u32,
        lengths: Option<(u32, u32)>,
        history: &[(String, String)],
    ) -> Generated {
        let mut rng = SmallRng::seed_from_u64(self.seed ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let index = self.pick(&mut rng);
        let e = &self.entries[index];
        if turn > 0 {
            // Same entry as the session's first turn; lengths and words of its own.
            rng = SmallRng::seed_from_u64(
                self.seed
                    ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03)
                    ^ u64::from(turn).wrapping_mul(0xA076_1D64_78BD_642F),
            );
        }
        let record = (!e.records.is_empty() && lengths.is_none())
            .then(|| &e.records[rng.random_range(0..e.records.len())]);
        let input = match (lengths, &e.input) {
            (Some((input, _)), _) => input,
            (None, Some(d)) => d.sample(&mut rng),
            (None, None) => 0,
        };
        let max_tokens = match (lengths, record, &e.output) {
            (Some((_, out)), _, _) => out,
            (None, Some(r), _) if r.max_tokens > 0 => r.max_tokens,
            (None, _, Some(d)) => d.sample(&mut rng),
            // from_proto refuses this case.
            (None, _, None) => 1,
        };
        let mut prefix = String::new();
        if let Some((groups, tokens)) = e.prefix {
            let group = k % u64::from(groups);
            push_words_from(
                &mut prefix,
                tokens,
                self.seed ^ 0x5EED ^ (group + 1).wrapping_mul(0x9E37_79B9),
                &self.words,
            );
        }
        let (messages, question) = self.messages(e, history, record, input, &mut rng);
        Generated {
            body: serde_json::to_vec(&e.body(prefix, &messages, max_tokens))
                .unwrap_or_default()
                .into(),
            max_tokens,
            entry: index,
            question,
        }
    }

    /// The entry a request comes from, drawn by weight.
    fn pick(&self, rng: &mut SmallRng) -> usize {
        let mut pick = rng.random::<f64>() * self.total_weight;
        for (i, e) in self.entries.iter().enumerate() {
            if pick < e.weight {
                return i;
            }
            pick -= e.weight;
        }
        self.entries.len() - 1
    }

    /// A request's messages: the session's `history`, then the record's
    /// prompt or a new question of `input` words. The question comes back
    /// too when `e` runs sessions (the next turn's history needs it).
    fn messages<'a>(
        &self,
        e: &Entry,
        history: &'a [(String, String)],
        record: Option<&'a proto::DatasetRecord>,
        input: u32,
        rng: &mut SmallRng,
    ) -> (Messages<'a>, String) {
        let mut messages: Messages<'a> = history
            .iter()
            .flat_map(|(q, a)| {
                [
                    ("user", q.as_str().into()),
                    ("assistant", a.as_str().into()),
                ]
            })
            .collect();
        let mut kept_question = String::new();
        messages.extend(match record.and_then(|r| r.prompt.as_ref()) {
            Some(Prompt::Text(t)) => vec![("user", t.as_str().into())],
            Some(Prompt::Chat(c)) => c
                .messages
                .iter()
                .map(|m| (m.role.as_str(), m.content.as_str().into()))
                .collect(),
            None => {
                let mut question = String::with_capacity(input as usize * 4);
                push_words_from(&mut question, input, rng.random(), &self.words);
                if e.turns > 1 {
                    kept_question.clone_from(&question);
                }
                vec![("user", question.into())]
            }
        });
        (messages, kept_question)
    }
}

/// (role, content) of a request's messages, borrowed where they can be.
type Messages<'a> = Vec<(&'a str, std::borrow::Cow<'a, str>)>;

impl Entry {
    /// The JSON body of a request of this entry: its API's shape with the
    /// shared `prefix` (as system message or prompt start) and `messages`,
    /// the extra fields, then stampede's own.
    fn body(&self, prefix: String, messages: &Messages<'_>, max_tokens: u32) -> serde_json::Value {
        let mut v = match self.api {
            Api::Completions => {
                let mut prompt = prefix;
                for (_, text) in messages {
                    if !prompt.is_empty() {
                        prompt.push(if messages.len() > 1 { '\n' } else { ' ' });
                    }
                    prompt.push_str(text);
                }
                json!({ "model": self.model, "prompt": prompt })
            }
            Api::Chat | Api::Unspecified => {
                let mut list = Vec::with_capacity(messages.len() + 1);
                if !prefix.is_empty() {
                    list.push(json!({ "role": "system", "content": prefix }));
                }
                for (role, content) in messages {
                    list.push(json!({ "role": role, "content": content }));
                }
                json!({ "model": self.model, "messages": list })
            }
        };
        if let serde_json::Value::Object(body) = &mut v {
            for (key, value) in &self.extra {
                body.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        if !self.stop.is_empty() {
            v["stop"] = json!(self.stop);
        }
        v["max_tokens"] = json!(max_tokens);
        v["stream"] = json!(self.stream);
        if self.stream {
            v["stream_options"] = json!({ "include_usage": true });
        }
        if self.ignore_eos {
            v["ignore_eos"] = json!(true);
        }
        if let Some(t) = self.temperature {
            v["temperature"] = json!(t);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(kind: Kind) -> Option<proto::LengthDistribution> {
        Some(proto::LengthDistribution { kind: Some(kind) })
    }

    fn bounds(min: u32, max: u32) -> Option<proto::LengthBounds> {
        Some(proto::LengthBounds { min, max })
    }

    fn generator(entries: Vec<proto::WorkloadEntry>) -> WorkloadGen {
        let t = RequestTemplate {
            api: Api::Chat as i32,
            model: "m".into(),
            stream: true,
            ..Default::default()
        };
        WorkloadGen::from_proto(&proto::Workload { entries, seed: 9 }, &t).unwrap()
    }

    fn words(body: &Bytes) -> (usize, usize) {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        let m = v["messages"].as_array().unwrap();
        let count = |i: usize| {
            m.get(i).map_or(0, |x| {
                x["content"].as_str().unwrap().split_whitespace().count()
            })
        };
        if m.len() == 2 {
            (count(0), count(1))
        } else {
            (0, count(0))
        }
    }

    #[test]
    fn lognormal_lengths_have_the_requested_mean() {
        let g = generator(vec![proto::WorkloadEntry {
            name: "s".into(),
            weight: 1.0,
            input_tokens: dist(Kind::LogNormal(proto::LengthNormal {
                mean: 1000.0,
                stddev: 300.0,
                bounds: bounds(1, 100_000),
            })),
            output_tokens: dist(Kind::Normal(proto::LengthNormal {
                mean: 200.0,
                stddev: 50.0,
                bounds: bounds(1, 10_000),
            })),
            ..Default::default()
        }]);
        let n = 4000;
        let (mut inp, mut out) = (0.0, 0.0);
        for k in 0..n {
            let r = g.request(k);
            inp += words(&r.body).1 as f64;
            out += f64::from(r.max_tokens);
        }
        assert!(
            (inp / n as f64 / 1000.0 - 1.0).abs() < 0.02,
            "input mean {}",
            inp / n as f64
        );
        assert!(
            (out / n as f64 / 200.0 - 1.0).abs() < 0.02,
            "output mean {}",
            out / n as f64
        );
    }

    #[test]
    fn requests_depend_only_on_their_index() {
        let g = generator(vec![proto::WorkloadEntry {
            name: "u".into(),
            weight: 1.0,
            input_tokens: dist(Kind::Uniform(proto::LengthBounds { min: 5, max: 50 })),
            output_tokens: dist(Kind::Fixed(8)),
            ..Default::default()
        }]);
        assert_eq!(g.request(17).body, g.clone().request(17).body);
        assert_ne!(g.request(17).body, g.request(18).body);
    }

    #[test]
    fn mixes_follow_weights_and_prefix_groups_share_exactly_their_prefix() {
        let g = generator(vec![
            proto::WorkloadEntry {
                name: "a".into(),
                weight: 3.0,
                input_tokens: dist(Kind::Fixed(10)),
                output_tokens: dist(Kind::Fixed(1)),
                shared_prefix: Some(proto::SharedPrefix {
                    groups: 4,
                    prefix_tokens: 64,
                }),
                ..Default::default()
            },
            proto::WorkloadEntry {
                name: "b".into(),
                weight: 1.0,
                input_tokens: dist(Kind::Fixed(10)),
                output_tokens: dist(Kind::Fixed(1)),
                ..Default::default()
            },
        ]);
        let picks: Vec<usize> = (0..4000).map(|k| g.request(k).entry).collect();
        let share_a = picks.iter().filter(|e| **e == 0).count() as f64 / 4000.0;
        assert!((share_a - 0.75).abs() < 0.03, "{share_a}");
        let system = |k: u64| {
            let v: serde_json::Value = serde_json::from_slice(&g.request(k).body).unwrap();
            v["messages"][0]["content"].as_str().map(str::to_string)
        };
        let with_prefix: Vec<u64> = (0..200).filter(|k| g.request(*k).entry == 0).collect();
        let (k0, rest) = with_prefix.split_first().unwrap();
        for k in rest {
            let same_group = k % 4 == k0 % 4;
            assert_eq!(
                system(*k) == system(*k0),
                same_group,
                "requests {k0} and {k}"
            );
        }
        assert_eq!(words(&g.request(*k0).body), (64, 10));
    }

    #[test]
    fn dataset_records_are_sent_as_written() {
        use proto::dataset_record::Prompt as P;
        let text = |t: &str, max_tokens| proto::DatasetRecord {
            prompt: Some(P::Text(t.into())),
            max_tokens,
        };
        let chat = proto::DatasetRecord {
            prompt: Some(P::Chat(proto::ChatMessages {
                messages: vec![
                    proto::ChatMessage {
                        role: "system".into(),
                        content: "Be brief.".into(),
                    },
                    proto::ChatMessage {
                        role: "user".into(),
                        content: "Hi there".into(),
                    },
                ],
            })),
            max_tokens: 0,
        };
        let g = generator(vec![proto::WorkloadEntry {
            name: "d".into(),
            weight: 1.0,
            output_tokens: dist(Kind::Fixed(5)),
            records: vec![text("Name a river.", 9), chat],
            ..Default::default()
        }]);
        let mut seen = std::collections::BTreeSet::new();
        for k in 0..50 {
            let r = g.request(k);
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            let m = v["messages"].as_array().unwrap();
            if m.len() == 1 {
                assert_eq!(m[0]["content"], "Name a river.");
                assert_eq!(r.max_tokens, 9);
            } else {
                assert_eq!(
                    (m[0]["role"].as_str(), m[1]["content"].as_str()),
                    (Some("system"), Some("Hi there"))
                );
                // The record has no max_tokens: the entry's output distribution.
                assert_eq!(r.max_tokens, 5);
            }
            seen.insert(m.len());
        }
        assert_eq!(seen.len(), 2, "both records drawn");
        // Without an output distribution, a record lacking max_tokens is refused.
        let e = proto::WorkloadEntry {
            name: "d".into(),
            weight: 1.0,
            records: vec![text("x", 0)],
            ..Default::default()
        };
        let w = proto::Workload {
            entries: vec![e],
            seed: 0,
        };
        assert!(WorkloadGen::from_proto(&w, &RequestTemplate::default()).is_err());
    }

    #[test]
    fn session_turns_carry_the_history() {
        let g = generator(vec![proto::WorkloadEntry {
            name: "s".into(),
            weight: 1.0,
            input_tokens: dist(Kind::Fixed(4)),
            output_tokens: dist(Kind::Fixed(2)),
            turns: 3,
            ..Default::default()
        }]);
        let first = g.request(7);
        assert_eq!(first.question.split_whitespace().count(), 4);
        let history = vec![(first.question.clone(), "an answer".to_string())];
        let second = g.request_turn(7, 1, &history);
        let v: serde_json::Value = serde_json::from_slice(&second.body).unwrap();
        let m = v["messages"].as_array().unwrap();
        let roles: Vec<&str> = m.iter().map(|x| x["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["user", "assistant", "user"]);
        assert_eq!(m[0]["content"], first.question.as_str());
        assert_eq!(m[1]["content"], "an answer");
        assert_ne!(second.question, first.question);
        assert_eq!(g.session(0), Some((3, std::time::Duration::ZERO)));
    }

    #[test]
    fn bad_distributions_are_errors() {
        for bad in [
            Kind::Fixed(0),
            Kind::Uniform(proto::LengthBounds { min: 5, max: 2 }),
            Kind::Normal(proto::LengthNormal {
                mean: -1.0,
                stddev: 1.0,
                bounds: bounds(1, 10),
            }),
            Kind::Empirical(proto::LengthEmpirical { values: vec![] }),
        ] {
            let e = proto::WorkloadEntry {
                name: "x".into(),
                weight: 1.0,
                input_tokens: dist(bad.clone()),
                output_tokens: dist(Kind::Fixed(1)),
                ..Default::default()
            };
            let t = RequestTemplate::default();
            assert!(
                WorkloadGen::from_proto(
                    &proto::Workload {
                        entries: vec![e],
                        seed: 0
                    },
                    &t
                )
                .is_err(),
                "{bad:?}"
            );
        }
    }
}

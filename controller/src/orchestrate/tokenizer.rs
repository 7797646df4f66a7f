//! Prompt words for a model's own tokenizer: from a local HF `tokenizer.json`,
//! the common English words that are exactly one token each, alone and in a
//! run of words. Agents build prompts from them, so a prompt of N words is N
//! prompt tokens for that model instead of an estimate. Nothing is
//! downloaded: the file is the plan's.

use stampede_plan::PlanError;
use std::path::Path;
use tokenizers::Tokenizer;

/// Candidate words, most common first (each is tried; those the tokenizer
/// does not keep whole are left out).
const CANDIDATES: &str = "the of and to in is that for it as was with be by on not he this are or his from at which but have an had they you were their one all we can her has there been if more when will would who so no she other its may these two also any time new some could than out them only my first very then most over such many even made what after up our just like those well where did because much both before being through people might same while should each under between know own world us way state last great year good long little day see high old man back here never place part small life against used take still without down three off end set show large every hand found point water";

/// Words kept at most.
const MAX_WORDS: usize = 256;

/// Words needed for varied prompts.
const MIN_WORDS: usize = 8;

fn invalid(plan: &Path, path: &Path, reason: String) -> PlanError {
    PlanError::Invalid {
        path: plan.to_path_buf(),
        key: "target.tokenizer".into(),
        value: format!("{:?}", path.display().to_string()),
        reason,
    }
}

/// The one-token words of the tokenizer at `path` (in `CANDIDATES` order);
/// errors name the plan file `plan`, whose `target.tokenizer` it is.
pub fn one_token_words(plan: &Path, path: &Path) -> Result<Vec<String>, PlanError> {
    let tk = Tokenizer::from_file(path)
        .map_err(|e| invalid(plan, path, format!("not a usable tokenizer.json: {e}")))?;
    let tokens = |text: &str| -> Result<Vec<String>, PlanError> {
        tk.encode(text, false)
            .map(|e| e.get_tokens().to_vec())
            .map_err(|e| invalid(plan, path, format!("cannot encode {text:?}: {e}")))
    };
    let count = |text: &str| tokens(text).map(|t| t.len());
    // The token is the word itself (with a byte-level `Ġ` or SentencePiece
    // `▁` space marker), not an unknown-word token.
    let whole = |t: &str, w: &str| t.trim_start_matches(['Ġ', '▁']) == w;
    let mut words = Vec::new();
    for w in CANDIDATES.split_whitespace() {
        // One token at the start of a prompt and one after a space.
        let pair = tokens(&format!("{w} {w}"))?;
        if pair.len() == 2 && pair.iter().all(|t| whole(t, w)) && count(w)? == 1 {
            words.push(w.to_string());
            if words.len() == MAX_WORDS {
                break;
            }
        }
    }
    if words.len() < MIN_WORDS {
        return Err(invalid(
            plan,
            path,
            format!(
                "only {} common English words are one token each (need {MIN_WORDS}): this tokenizer cannot size prompts",
                words.len()
            ),
        ));
    }
    // A run of the words must be exactly one token per word.
    let sample = words.join(" ");
    let n = count(&sample)?;
    if n != words.len() {
        return Err(invalid(
            plan,
            path,
            format!(
                "{} one-token words encode to {n} tokens together: this tokenizer merges across words",
                words.len()
            ),
        ));
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A word-level tokenizer.json: whitespace pre-tokenizer, these words
    /// one token each, everything else `[UNK]`.
    pub(crate) fn word_level(words: &[&str]) -> String {
        let vocab: Vec<String> = std::iter::once("[UNK]")
            .chain(words.iter().copied())
            .enumerate()
            .map(|(i, w)| format!("\"{w}\": {i}"))
            .collect();
        format!(
            r#"{{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
  "pre_tokenizer": {{"type": "Whitespace"}}, "post_processor": null, "decoder": null,
  "model": {{"type": "WordLevel", "vocab": {{{}}}, "unk_token": "[UNK]"}}}}"#,
            vocab.join(", ")
        )
    }

    #[test]
    fn keeps_the_one_token_words() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        let plan = dir.path().join("plan.toml");
        std::fs::write(
            &path,
            word_level(&[
                "the", "of", "and", "to", "in", "is", "that", "for", "water", "xyzzy",
            ]),
        )
        .unwrap();
        let words = one_token_words(&plan, &path).unwrap();
        assert_eq!(
            words,
            ["the", "of", "and", "to", "in", "is", "that", "for", "water"]
        );
        std::fs::write(&path, word_level(&["the", "of"])).unwrap();
        let e = one_token_words(&plan, &path).unwrap_err().to_string();
        assert!(
            e.contains("invalid plan ")
                && e.contains("plan.toml")
                && e.contains("target.tokenizer")
                && e.contains("only 2"),
            "{e}"
        );
        std::fs::write(&path, "{ not json").unwrap();
        let e = one_token_words(&plan, &path).unwrap_err().to_string();
        assert!(
            e.contains("tokenizer.json") && e.contains("not a usable"),
            "{e}"
        );
    }
}

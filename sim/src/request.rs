//! Parsing and validating the bodies of the two generation endpoints.
//!
//! Both `/v1/chat/completions` and `/v1/completions` reduce to one [`GenRequest`], so the
//! response and timing code does not care which endpoint was called. Nothing here panics on
//! client input: every problem becomes a 400 [`ApiError`].

use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;

/// Which OpenAI endpoint a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `POST /v1/chat/completions`
    Chat,
    /// `POST /v1/completions`
    Completions,
}

/// What the simulator needs to know about a valid generation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GenRequest {
    /// The requested model, if the body named one.
    pub model: Option<String>,
    /// The client's cap on output tokens (always ≥ 1 when present).
    pub max_tokens: Option<u32>,
    /// `"stream": true`
    pub stream: bool,
    /// `"stream_options": {"include_usage": true}`
    pub include_usage: bool,
    /// Estimated prompt tokens: whitespace-separated words.
    pub prompt_tokens: u64,
    /// The prompt's token ids: a hash of each word, or the ids given (used by prefix caching).
    pub prompt_ids: Vec<u32>,
}

/// The union of the fields both endpoints understand; unknown fields are ignored.
#[derive(Debug, Deserialize)]
struct RawRequest {
    model: Option<String>,
    messages: Option<Value>,
    prompt: Option<Value>,
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    stream: Option<bool>,
    stream_options: Option<RawStreamOptions>,
}

#[derive(Debug, Deserialize)]
struct RawStreamOptions {
    include_usage: Option<bool>,
}

/// Parses and validates a request body for `endpoint`.
pub(crate) fn parse(endpoint: Endpoint, body: &[u8]) -> Result<GenRequest, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("Request body is not valid JSON: {e}"), None))?;
    if !value.is_object() {
        return Err(ApiError::invalid(
            "Request body must be a JSON object",
            None,
        ));
    }
    let raw: RawRequest = serde_json::from_value(value)
        .map_err(|e| ApiError::invalid(format!("Invalid request: {e}"), None))?;

    let mut ids = Vec::new();
    let max_tokens = match endpoint {
        Endpoint::Chat => {
            // Like vLLM: max_completion_tokens wins over the deprecated max_tokens.
            let max_completion = positive(raw.max_completion_tokens, "max_completion_tokens")?;
            let max = positive(raw.max_tokens, "max_tokens")?;
            chat_prompt_ids(raw.messages, &mut ids)?;
            max_completion.or(max)
        }
        Endpoint::Completions => {
            let max = positive(raw.max_tokens, "max_tokens")?;
            completion_prompt_ids(raw.prompt, &mut ids)?;
            max
        }
    };

    Ok(GenRequest {
        model: raw.model,
        max_tokens,
        stream: raw.stream.unwrap_or(false),
        include_usage: raw
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        prompt_tokens: ids.len() as u64,
        prompt_ids: ids,
    })
}

/// Rejects zero and negative token caps; caps above `u32::MAX` saturate.
fn positive(value: Option<i64>, param: &'static str) -> Result<Option<u32>, ApiError> {
    match value {
        None => Ok(None),
        Some(v) if v < 1 => Err(ApiError::invalid(
            format!("{param} must be at least 1, got {v}."),
            Some(param),
        )),
        Some(v) => Ok(Some(u32::try_from(v).unwrap_or(u32::MAX))),
    }
}

/// The documented tokenizer: one token per whitespace-separated word, its id a hash of the
/// word (FNV-1a), so equal texts give equal ids and prefix caching can match them.
fn push_words(text: &str, ids: &mut Vec<u32>) {
    ids.extend(text.split_whitespace().map(word_id));
}

fn word_id(word: &str) -> u32 {
    word.bytes().fold(0x811C_9DC5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// A token id given as a JSON number: used as is when it fits `u32`, otherwise hashed.
fn number_id(n: &serde_json::Number) -> u32 {
    n.as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or_else(|| word_id(&n.to_string()))
}

fn chat_prompt_ids(messages: Option<Value>, ids: &mut Vec<u32>) -> Result<(), ApiError> {
    let invalid = |msg: &str| ApiError::invalid(msg, Some("messages"));
    let messages = match messages {
        None | Some(Value::Null) => return Err(invalid("Field required: 'messages'")),
        Some(Value::Array(m)) if m.is_empty() => {
            return Err(invalid("'messages' must contain at least one message"));
        }
        Some(Value::Array(m)) => m,
        Some(_) => return Err(invalid("'messages' must be an array")),
    };
    for message in &messages {
        let Value::Object(message) = message else {
            return Err(invalid("each message must be an object"));
        };
        match message.get("content") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => push_words(s, ids),
            // Content parts: count the text ones, ignore images and the like.
            Some(Value::Array(parts)) => {
                for text in parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                {
                    push_words(text, ids);
                }
            }
            Some(_) => return Err(invalid("message 'content' must be a string or an array")),
        }
    }
    Ok(())
}

fn completion_prompt_ids(prompt: Option<Value>, ids: &mut Vec<u32>) -> Result<(), ApiError> {
    let invalid = |msg: &str| ApiError::invalid(msg, Some("prompt"));
    match prompt {
        None | Some(Value::Null) => Err(invalid("Field required: 'prompt'")),
        Some(Value::String(s)) => {
            push_words(&s, ids);
            Ok(())
        }
        // A batch of strings, a list of token ids, or a batch of token-id lists.
        Some(Value::Array(items)) => {
            for item in &items {
                match item {
                    Value::String(s) => push_words(s, ids),
                    Value::Number(n) => ids.push(number_id(n)),
                    Value::Array(inner) => {
                        for id in inner {
                            match id {
                                Value::Number(n) => ids.push(number_id(n)),
                                _ => return Err(invalid("token ids must be numbers")),
                            }
                        }
                    }
                    _ => return Err(invalid("'prompt' has an invalid element")),
                }
            }
            Ok(())
        }
        Some(_) => Err(invalid("'prompt' must be a string or an array")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> Result<GenRequest, ApiError> {
        parse(Endpoint::Chat, body.as_bytes())
    }

    #[test]
    fn chat_counts_words_of_string_and_part_contents() {
        let r = chat(
            r#"{"model":"m","messages":[{"role":"system","content":"be  brief"},
                {"role":"user","content":[{"type":"text","text":"one two three"},
                {"type":"image_url","image_url":{"url":"x"}}]},{"role":"assistant","content":null}],
                "max_tokens":5,"max_completion_tokens":3,"stream":true,
                "stream_options":{"include_usage":true}}"#,
        )
        .expect("valid");
        assert_eq!(r.prompt_tokens, 5);
        assert_eq!(r.max_tokens, Some(3));
        assert!(r.stream && r.include_usage);
        assert_eq!(r.model.as_deref(), Some("m"));
    }

    #[test]
    fn completion_prompt_forms() {
        let p = |b: &str| parse(Endpoint::Completions, b.as_bytes()).map(|r| r.prompt_tokens);
        assert_eq!(p(r#"{"prompt":"a b c"}"#).ok(), Some(3));
        assert_eq!(p(r#"{"prompt":["a b","c"]}"#).ok(), Some(3));
        assert_eq!(p(r#"{"prompt":[1,2,3,4]}"#).ok(), Some(4));
        assert_eq!(p(r#"{"prompt":[[1,2],[3]]}"#).ok(), Some(3));
        assert!(p(r#"{"prompt":7}"#).is_err());
        assert!(p(r#"{"prompt":[[1,"x"]]}"#).is_err());
        assert!(p(r#"{"messages":[]}"#).is_err());
    }

    #[test]
    fn rejects_bad_input() {
        for body in [
            "",
            "not json",
            "[1,2]",
            r#"{"messages":"hi"}"#,
            r#"{"messages":[]}"#,
            r#"{"messages":[1]}"#,
            r#"{"model":"m"}"#,
            r#"{"messages":[{"content":"x"}],"max_tokens":0}"#,
            r#"{"messages":[{"content":"x"}],"max_tokens":-3}"#,
            r#"{"messages":[{"content":"x"}],"max_tokens":1.5}"#,
            r#"{"messages":[{"content":"x"}],"max_completion_tokens":0}"#,
            r#"{"messages":[{"content":"x"}],"stream":"yes"}"#,
            r#"{"messages":[{"content":5}]}"#,
        ] {
            assert!(chat(body).is_err(), "{body:?} should be rejected");
        }
    }

    #[test]
    fn equal_words_get_equal_ids() {
        let r = parse(Endpoint::Completions, br#"{"prompt":["a b a", [7, 8]]}"#).expect("ok");
        assert_eq!(r.prompt_ids.len(), 5);
        assert_eq!(r.prompt_ids[0], r.prompt_ids[2]);
        assert_ne!(r.prompt_ids[0], r.prompt_ids[1]);
        assert_eq!(&r.prompt_ids[3..], &[7, 8]);
    }

    #[test]
    fn huge_max_tokens_saturates() {
        let r = chat(r#"{"messages":[{"content":"x"}],"max_tokens":99999999999}"#).expect("ok");
        assert_eq!(r.max_tokens, Some(u32::MAX));
    }
}

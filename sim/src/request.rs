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

    let (max_tokens, prompt_tokens) = match endpoint {
        Endpoint::Chat => {
            // Like vLLM: max_completion_tokens wins over the deprecated max_tokens.
            let max_completion = positive(raw.max_completion_tokens, "max_completion_tokens")?;
            let max = positive(raw.max_tokens, "max_tokens")?;
            (max_completion.or(max), chat_prompt_tokens(raw.messages)?)
        }
        Endpoint::Completions => (
            positive(raw.max_tokens, "max_tokens")?,
            completion_prompt_tokens(raw.prompt)?,
        ),
    };

    Ok(GenRequest {
        model: raw.model,
        max_tokens,
        stream: raw.stream.unwrap_or(false),
        include_usage: raw
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        prompt_tokens,
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

/// The documented prompt-size estimate: whitespace-separated words.
fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn chat_prompt_tokens(messages: Option<Value>) -> Result<u64, ApiError> {
    let invalid = |msg: &str| ApiError::invalid(msg, Some("messages"));
    let messages = match messages {
        None | Some(Value::Null) => return Err(invalid("Field required: 'messages'")),
        Some(Value::Array(m)) if m.is_empty() => {
            return Err(invalid("'messages' must contain at least one message"));
        }
        Some(Value::Array(m)) => m,
        Some(_) => return Err(invalid("'messages' must be an array")),
    };
    let mut total = 0;
    for message in &messages {
        let Value::Object(message) = message else {
            return Err(invalid("each message must be an object"));
        };
        total += match message.get("content") {
            None | Some(Value::Null) => 0,
            Some(Value::String(s)) => words(s),
            // Content parts: count the text ones, ignore images and the like.
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .map(words)
                .sum(),
            Some(_) => return Err(invalid("message 'content' must be a string or an array")),
        };
    }
    Ok(total)
}

fn completion_prompt_tokens(prompt: Option<Value>) -> Result<u64, ApiError> {
    let invalid = |msg: &str| ApiError::invalid(msg, Some("prompt"));
    match prompt {
        None | Some(Value::Null) => Err(invalid("Field required: 'prompt'")),
        Some(Value::String(s)) => Ok(words(&s)),
        // A batch of strings, a list of token ids, or a batch of token-id lists.
        Some(Value::Array(items)) => {
            let mut total = 0;
            for item in &items {
                total += match item {
                    Value::String(s) => words(s),
                    Value::Number(_) => 1,
                    Value::Array(ids) => ids.len() as u64,
                    _ => return Err(invalid("'prompt' has an invalid element")),
                };
            }
            Ok(total)
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
    fn huge_max_tokens_saturates() {
        let r = chat(r#"{"messages":[{"content":"x"}],"max_tokens":99999999999}"#).expect("ok");
        assert_eq!(r.max_tokens, Some(u32::MAX));
    }
}

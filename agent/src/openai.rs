//! OpenAI-compatible request bodies and response messages.
//!
//! A *token-bearing* message is one whose `choices` carry generated output:
//! non-empty `text` (completions), non-empty `delta.content`,
//! `delta.reasoning_content`/`delta.reasoning`, or `delta.tool_calls` (chat).
//! A role-only first chunk (`delta: {"role": "assistant", "content": ""}`),
//! which vLLM sends as soon as it accepts a request, is not token-bearing, so
//! TTFT measures the first generated output, not the accept.
//!
//! A stream is complete only when a choice has said why it stopped (a non-null
//! `finish_reason`) before `[DONE]`: servers that abandon a generation (e.g.
//! llama.cpp's Python server when a newer request interrupts it) still end the
//! stream with `[DONE]`, and only the missing `finish_reason` tells it apart.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;
use stampede_common::proto::{Api, RequestTemplate};
use std::borrow::Cow;

/// What one streamed message tells the client.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MessageInfo {
    /// The message carries generated output.
    pub token_bearing: bool,
    /// A choice carries a non-null `finish_reason`: generation ended normally.
    pub finished: bool,
    /// `usage.completion_tokens`, when the message has usage.
    pub completion_tokens: Option<u64>,
    /// `usage.prompt_tokens`, when the message has usage.
    pub prompt_tokens: Option<u64>,
    /// The message is an error object (`{"error": ...}`).
    pub error: bool,
    /// Whitespace-separated words of `text` / `message.content`: the output
    /// token estimate of a non-streamed body without `usage`.
    pub output_words: u64,
}

/// A message's choices, as [`push_text`] reads them.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(default, borrow)]
    choices: Vec<Choice<'a>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    message: Option<Delta<'a>>,
    #[serde(default)]
    finish_reason: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

fn non_empty(s: &Option<Cow<'_, str>>) -> bool {
    s.as_deref().is_some_and(|s| !s.is_empty())
}

impl Delta<'_> {
    fn has_output(&self) -> bool {
        non_empty(&self.content)
            || non_empty(&self.reasoning_content)
            || non_empty(&self.reasoning)
            || self.tool_calls.is_some()
    }
}

/// A message as [`parse_message`] reads it: its choices folded as they are
/// parsed, so a streamed token allocates nothing.
#[derive(Deserialize)]
struct Folded {
    #[serde(default)]
    choices: ChoicesFold,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

/// What `choices` says about output.
#[derive(Default)]
struct ChoicesFold {
    token_bearing: bool,
    finished: bool,
    output_words: u64,
}

impl<'de> Deserialize<'de> for ChoicesFold {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fold;
        impl<'de> serde::de::Visitor<'de> for Fold {
            type Value = ChoicesFold;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of choices")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ChoicesFold, A::Error> {
                let words = |s: &Option<Cow<'_, str>>| {
                    s.as_deref()
                        .map_or(0, |s| s.split_whitespace().count() as u64)
                };
                let mut fold = ChoicesFold::default();
                while let Some(c) = seq.next_element::<Choice<'de>>()? {
                    fold.token_bearing |= non_empty(&c.text)
                        || c.delta.as_ref().is_some_and(Delta::has_output)
                        || c.message.as_ref().is_some_and(Delta::has_output);
                    fold.finished |= c.finish_reason.is_some();
                    fold.output_words +=
                        words(&c.text) + c.message.as_ref().map_or(0, |d| words(&d.content));
                }
                Ok(fold)
            }
        }
        d.deserialize_seq(Fold)
    }
}

/// Parse one JSON message (an SSE event's data, or a whole non-streamed body).
pub fn parse_message(data: &str) -> Result<MessageInfo, serde_json::Error> {
    let m: Folded = serde_json::from_str(data)?;
    Ok(MessageInfo {
        token_bearing: m.choices.token_bearing,
        finished: m.choices.finished,
        output_words: m.choices.output_words,
        completion_tokens: m.usage.as_ref().and_then(|u| u.completion_tokens),
        prompt_tokens: m.usage.as_ref().and_then(|u| u.prompt_tokens),
        error: m.error.is_some(),
    })
}

/// Append the generated text of one message (an SSE event's data, or a whole
/// body) to `out`: `text`, `delta.content` or `message.content` of the first
/// choice.
pub fn push_text(data: &str, out: &mut String) {
    let Ok(m) = serde_json::from_str::<Message<'_>>(data) else {
        return;
    };
    if let Some(c) = m.choices.first() {
        let content = |d: &Option<Delta<'_>>| {
            d.as_ref()
                .and_then(|d| d.content.as_deref())
                .map(str::to_string)
        };
        if let Some(t) = c
            .text
            .as_deref()
            .map(str::to_string)
            .or_else(|| content(&c.delta))
            .or_else(|| content(&c.message))
        {
            out.push_str(&t);
        }
    }
}

/// URL path of an API.
pub fn path(api: Api) -> &'static str {
    match api {
        Api::Completions => "/v1/completions",
        Api::Chat | Api::Unspecified => "/v1/chat/completions",
    }
}

/// The JSON body for a request template (serialized once per phase).
pub fn body(t: &RequestTemplate) -> Vec<u8> {
    let api = Api::try_from(t.api).unwrap_or(Api::Chat);
    let mut v = match api {
        Api::Completions => json!({ "model": t.model, "prompt": t.prompt }),
        Api::Chat | Api::Unspecified => json!({
            "model": t.model,
            "messages": [{ "role": "user", "content": t.prompt }],
        }),
    };
    v["max_tokens"] = json!(t.max_tokens);
    v["stream"] = json!(t.stream);
    if t.stream {
        v["stream_options"] = json!({ "include_usage": true });
    }
    serde_json::to_vec(&v).expect("a JSON value always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_only_chunk_is_not_a_token() {
        let m = parse_message(
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
        )
        .unwrap();
        assert!(!m.token_bearing);
    }

    #[test]
    fn content_text_reasoning_and_tools_are_tokens() {
        for s in [
            r#"{"choices":[{"delta":{"content":"hi"}}]}"#,
            r#"{"choices":[{"text":"hi"}]}"#,
            r#"{"choices":[{"delta":{"reasoning_content":"hm"}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0}]}}]}"#,
            r#"{"choices":[{"message":{"content":"full body"}}]}"#,
        ] {
            assert!(parse_message(s).unwrap().token_bearing, "{s}");
        }
    }

    #[test]
    fn finish_reason_is_read_when_not_null() {
        let finished = |s| parse_message(s).unwrap().finished;
        assert!(finished(
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#
        ));
        assert!(finished(
            r#"{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]}"#
        ));
        assert!(!finished(
            r#"{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}"#
        ));
        assert!(!finished(r#"{"choices":[{"delta":{"content":"x"}}]}"#));
        assert!(!finished(
            r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#
        ));
    }

    #[test]
    fn usage_and_errors_are_read() {
        let m =
            parse_message(r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":9}}"#)
                .unwrap();
        assert_eq!(
            (m.prompt_tokens, m.completion_tokens, m.token_bearing),
            (Some(7), Some(9), false)
        );
        assert!(
            parse_message(r#"{"error":{"message":"boom"}}"#)
                .unwrap()
                .error
        );
        assert!(parse_message("not json").is_err());
    }

    #[test]
    fn body_asks_for_usage_when_streaming() {
        let t = RequestTemplate {
            api: Api::Chat as i32,
            model: "m".into(),
            prompt: "p".into(),
            max_tokens: 5,
            stream: true,
            ..Default::default()
        };
        let v: serde_json::Value = serde_json::from_slice(&body(&t)).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["messages"][0]["content"], "p");
        assert_eq!(v["max_tokens"], 5);
    }
}

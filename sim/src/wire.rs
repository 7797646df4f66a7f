//! The OpenAI wire format: SSE chunks and non-streaming JSON bodies.
//!
//! Streaming chunks are spliced from a JSON prefix built once per request (id, object,
//! created, model), so each token costs one small buffer and no JSON serializer run.
//! The layout follows vLLM, including its role-only first chunk for chat streams.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::json;

use crate::request::Endpoint;

/// The SSE event that ends every stream.
pub(crate) const DONE: &[u8] = b"data: [DONE]\n\n";

/// `finish_reason` of the last token: the simulator always stops on length.
const FINISH_REASON: &str = "length";

/// Token counts reported in `usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Estimated prompt tokens.
    pub prompt: u64,
    /// Generated tokens.
    pub completion: u64,
}

/// The per-request identity shared by all chunks of one response.
#[derive(Debug, Clone)]
pub(crate) struct ResponseMeta {
    /// Which endpoint, deciding `object` and the choice layout.
    pub endpoint: Endpoint,
    /// Response id, e.g. `chatcmpl-sim-7`.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// Model name.
    pub model: String,
}

impl ResponseMeta {
    /// Identity for request number `seq` on `endpoint`.
    pub(crate) fn new(endpoint: Endpoint, seq: u64, model: &str) -> Self {
        let prefix = match endpoint {
            Endpoint::Chat => "chatcmpl",
            Endpoint::Completions => "cmpl",
        };
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            endpoint,
            id: format!("{prefix}-sim-{seq}"),
            created,
            model: model.to_owned(),
        }
    }
}

/// Builds the SSE events of one streaming response.
#[derive(Debug)]
pub(crate) struct ChunkWriter {
    endpoint: Endpoint,
    /// `data: {"id":..,"object":..,"created":..,"model":..,"choices":[`
    prefix: Bytes,
}

impl ChunkWriter {
    /// A writer for the response identified by `meta`.
    pub(crate) fn new(meta: &ResponseMeta) -> Self {
        let object = match meta.endpoint {
            Endpoint::Chat => "chat.completion.chunk",
            Endpoint::Completions => "text_completion",
        };
        // Serializing strings cannot fail; the fallback keeps this panic-free anyway.
        let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
        let prefix = format!(
            r#"data: {{"id":{},"object":"{object}","created":{},"model":{},"choices":["#,
            quote(&meta.id),
            meta.created,
            quote(&meta.model),
        );
        Self {
            endpoint: meta.endpoint,
            prefix: Bytes::from(prefix),
        }
    }

    fn event(&self, parts: &[&[u8]]) -> Bytes {
        let len = self.prefix.len() + parts.iter().map(|p| p.len()).sum::<usize>();
        let mut buf = BytesMut::with_capacity(len);
        buf.put_slice(&self.prefix);
        for part in parts {
            buf.put_slice(part);
        }
        buf.freeze()
    }

    /// The role-only chunk that opens a chat stream (vLLM sends it before any token).
    pub(crate) fn role_chunk(&self) -> Bytes {
        self.event(&[
            br#"{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
            b"\n\n",
        ])
    }

    /// One content token. `text` must not need JSON escaping (see `engine::token_text`).
    pub(crate) fn token_chunk(&self, text: &str, last: bool) -> Bytes {
        let open: &[u8] = match self.endpoint {
            Endpoint::Chat => br#"{"index":0,"delta":{"content":""#,
            Endpoint::Completions => br#"{"index":0,"text":""#,
        };
        let close: &[u8] = match self.endpoint {
            Endpoint::Chat => br#""},"logprobs":null,"finish_reason":"#,
            Endpoint::Completions => br#"","logprobs":null,"finish_reason":"#,
        };
        let finish: &[u8] = if last {
            br#""length"}]}"#
        } else {
            br#"null}]}"#
        };
        self.event(&[open, text.as_bytes(), close, finish, b"\n\n"])
    }

    /// A chunk whose JSON is cut off in the middle (the malformed-chunk fault).
    pub(crate) fn malformed_chunk(&self) -> Bytes {
        self.event(&[br#"{"index":0,"delta":{"content":"#, b"\n\n"])
    }

    /// The trailing usage chunk (`"choices": []`), sent when `include_usage` was requested.
    pub(crate) fn usage_chunk(&self, usage: Usage) -> Bytes {
        let tail = format!(
            r#"],"usage":{{"prompt_tokens":{},"completion_tokens":{},"total_tokens":{}}}}}"#,
            usage.prompt,
            usage.completion,
            usage.prompt + usage.completion
        );
        self.event(&[tail.as_bytes(), b"\n\n"])
    }
}

/// The complete non-streaming `chat.completion` / `text_completion` body.
pub(crate) fn full_body(meta: &ResponseMeta, text: String, usage: Usage) -> serde_json::Value {
    let (object, choice) = match meta.endpoint {
        Endpoint::Chat => (
            "chat.completion",
            json!({
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": null,
                "finish_reason": FINISH_REASON,
            }),
        ),
        Endpoint::Completions => (
            "text_completion",
            json!({
                "index": 0,
                "text": text,
                "logprobs": null,
                "finish_reason": FINISH_REASON,
            }),
        ),
    };
    json!({
        "id": meta.id,
        "object": object,
        "created": meta.created,
        "model": meta.model,
        "choices": [choice],
        "usage": {
            "prompt_tokens": usage.prompt,
            "completion_tokens": usage.completion,
            "total_tokens": usage.prompt + usage.completion,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn parse(event: &Bytes) -> Value {
        let text = std::str::from_utf8(event).expect("utf8");
        let json = text
            .strip_prefix("data: ")
            .and_then(|t| t.strip_suffix("\n\n"))
            .expect("SSE framing");
        serde_json::from_str(json).expect("valid JSON")
    }

    #[test]
    fn chat_chunks_are_valid_json_with_escaped_model() {
        let meta = ResponseMeta::new(Endpoint::Chat, 3, "we\"ird\\model");
        let w = ChunkWriter::new(&meta);
        let role = parse(&w.role_chunk());
        assert_eq!(role["id"], "chatcmpl-sim-3");
        assert_eq!(role["model"], "we\"ird\\model");
        assert_eq!(role["object"], "chat.completion.chunk");
        assert_eq!(role["choices"][0]["delta"]["role"], "assistant");
        let tok = parse(&w.token_chunk("fox ", false));
        assert_eq!(tok["choices"][0]["delta"]["content"], "fox ");
        assert!(tok["choices"][0]["finish_reason"].is_null());
        let last = parse(&w.token_chunk("dog ", true));
        assert_eq!(last["choices"][0]["finish_reason"], "length");
        let usage = parse(&w.usage_chunk(Usage {
            prompt: 4,
            completion: 2,
        }));
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["total_tokens"], 6);
        let bad = w.malformed_chunk();
        let text = std::str::from_utf8(&bad).expect("utf8");
        assert!(text.starts_with("data: {") && text.ends_with("\n\n"));
        let json = &text["data: ".len()..text.len() - 2];
        assert!(serde_json::from_str::<Value>(json).is_err());
    }

    #[test]
    fn completion_chunks_carry_text() {
        let meta = ResponseMeta::new(Endpoint::Completions, 0, "m");
        let w = ChunkWriter::new(&meta);
        let tok = parse(&w.token_chunk("a ", true));
        assert_eq!(tok["object"], "text_completion");
        assert_eq!(tok["choices"][0]["text"], "a ");
        assert_eq!(tok["choices"][0]["finish_reason"], "length");
    }
}

//! The body of one streaming response.
//!
//! A single `unfold` state machine per request, polled by hyper as it writes the body: no
//! spawned task, no channel. If the client disconnects, hyper drops the body, which drops
//! the pending timer with it; nothing leaks and the request is never counted as served.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use futures_util::stream;

use crate::engine::Generation;
use crate::request::Endpoint;
use crate::stats::SimStats;
use crate::wire::{ChunkWriter, DONE, ResponseMeta, Usage};

/// The next event a stream will produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Chat only: the role-only chunk, sent at once.
    Role,
    /// Content tokens, on the generation's timeline.
    Tokens,
    /// The usage chunk (only with `include_usage`).
    Usage,
    /// `data: [DONE]`; handing it out counts the request as served.
    Done,
    /// Nothing left.
    End,
}

/// Everything a stream needs between two events.
struct StreamState {
    generation: Generation,
    writer: ChunkWriter,
    stats: Arc<SimStats>,
    include_usage: bool,
    prompt_tokens: u64,
    step: Step,
}

impl StreamState {
    fn after_tokens(&self) -> Step {
        if self.include_usage {
            Step::Usage
        } else {
            Step::Done
        }
    }

    /// Produces the next event, waiting for its deadline; `None` ends the body.
    async fn next_event(&mut self) -> Option<Bytes> {
        loop {
            match self.step {
                Step::Role => {
                    self.step = Step::Tokens;
                    return Some(self.writer.role_chunk());
                }
                Step::Tokens => match self.generation.next_token().await {
                    Some(token) => {
                        self.stats.add_output_tokens(1);
                        if token.last {
                            self.step = self.after_tokens();
                        }
                        return Some(self.writer.token_chunk(token.text, token.last));
                    }
                    None => self.step = self.after_tokens(),
                },
                Step::Usage => {
                    self.step = Step::Done;
                    return Some(self.writer.usage_chunk(Usage {
                        prompt: self.prompt_tokens,
                        completion: u64::from(self.generation.len()),
                    }));
                }
                Step::Done => {
                    self.step = Step::End;
                    self.stats.record_served();
                    return Some(Bytes::from_static(DONE));
                }
                Step::End => return None,
            }
        }
    }
}

/// The SSE body of one streaming response.
pub(crate) fn sse_body(
    meta: &ResponseMeta,
    generation: Generation,
    stats: Arc<SimStats>,
    include_usage: bool,
    prompt_tokens: u64,
) -> Body {
    let state = StreamState {
        generation,
        writer: ChunkWriter::new(meta),
        stats,
        include_usage,
        prompt_tokens,
        step: match meta.endpoint {
            Endpoint::Chat => Step::Role,
            Endpoint::Completions => Step::Tokens,
        },
    };
    let events = stream::unfold(state, |mut state| async move {
        let event = state.next_event().await?;
        Some((Ok::<_, Infallible>(event), state))
    });
    Body::from_stream(events)
}

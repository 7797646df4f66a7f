//! The body of one streaming response, including the injected stream faults.
//!
//! A single `unfold` state machine per request, polled by hyper as it writes the body: no
//! spawned task, no channel. If the client disconnects, hyper drops the body, which drops
//! the pending timer (or engine sequence) with it; nothing leaks and the request is never
//! counted as served. A body that yields an error makes hyper abort the connection without
//! the final chunk, which is exactly what a client sees when a server dies mid-stream.

use axum::body::Body;
use bytes::Bytes;
use futures_util::stream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::faults::Fault;
use crate::request::Endpoint;
use crate::stats::Tally;
use crate::timeline::Generation;
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

/// The error that aborts a response body (the client sees a broken connection).
fn aborted(why: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, why)
}

/// Everything a stream needs between two events.
struct StreamState {
    /// When the request arrived: the origin of the measured first-token latency.
    start: Instant,
    generation: Generation,
    writer: ChunkWriter,
    tally: Tally,
    include_usage: bool,
    prompt_tokens: u64,
    step: Step,
    /// `Cut` or `Malformed` (other faults never reach a stream).
    fault: Option<Fault>,
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
    async fn next_event(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        loop {
            match self.step {
                Step::Role => {
                    self.step = Step::Tokens;
                    return Some(Ok(self.writer.role_chunk()));
                }
                Step::Tokens => match self.generation.next_token().await {
                    Some(token) => {
                        let middle = self.generation.len() / 2;
                        if token.index == middle && self.fault == Some(Fault::Cut) {
                            self.tally.fault(Fault::Cut);
                            self.step = Step::End;
                            // Pending once, so the server flushes the head and the
                            // chunks so far: a cut is mid-stream even when this task
                            // ran late and its deadlines have all passed.
                            tokio::task::yield_now().await;
                            return Some(Err(aborted("injected stream cut")));
                        }
                        self.tally.output_tokens(1);
                        if token.index == 0 {
                            self.tally.first_token(self.start.elapsed());
                        }
                        if token.last {
                            self.step = self.after_tokens();
                        }
                        if token.index == middle && self.fault == Some(Fault::Malformed) {
                            self.tally.fault(Fault::Malformed);
                            return Some(Ok(self.writer.malformed_chunk()));
                        }
                        return Some(Ok(self.writer.token_chunk(token.text, token.last)));
                    }
                    // All tokens out, or the engine gave up on the request.
                    None if self.generation.emitted_all() => self.step = self.after_tokens(),
                    None => {
                        self.step = Step::End;
                        return Some(Err(aborted("generation failed")));
                    }
                },
                Step::Usage => {
                    self.step = Step::Done;
                    return Some(Ok(self.writer.usage_chunk(Usage {
                        prompt: self.prompt_tokens,
                        completion: u64::from(self.generation.len()),
                    })));
                }
                Step::Done => {
                    self.step = Step::End;
                    self.tally.served();
                    return Some(Ok(Bytes::from_static(DONE)));
                }
                Step::End => return None,
            }
        }
    }
}

/// The SSE body of one streaming response. `fault` may be `Cut` or `Malformed`.
pub(crate) fn sse_body(
    meta: &ResponseMeta,
    start: Instant,
    generation: Generation,
    tally: Tally,
    include_usage: bool,
    prompt_tokens: u64,
    fault: Option<Fault>,
) -> Body {
    let state = StreamState {
        start,
        generation,
        writer: ChunkWriter::new(meta),
        tally,
        include_usage,
        prompt_tokens,
        step: match meta.endpoint {
            Endpoint::Chat => Step::Role,
            Endpoint::Completions => Step::Tokens,
        },
        fault,
    };
    let events = stream::unfold(state, |mut state| async move {
        let event = state.next_event().await?;
        Some((event, state))
    });
    Body::from_stream(events)
}

/// The SSE body of a request that hangs before its first token: the role chunk (chat only),
/// then nothing until the client leaves or the server shuts down (then the connection is
/// aborted, so graceful shutdown is not held up).
pub(crate) fn hung_body(meta: &ResponseMeta, shutdown: CancellationToken) -> Body {
    let role = match meta.endpoint {
        Endpoint::Chat => Some(Ok(ChunkWriter::new(meta).role_chunk())),
        Endpoint::Completions => None,
    };
    let hang = stream::once(async move {
        shutdown.cancelled().await;
        Err::<Bytes, _>(aborted("server shutting down"))
    });
    Body::from_stream(futures_util::StreamExt::chain(stream::iter(role), hang))
}

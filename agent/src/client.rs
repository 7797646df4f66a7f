//! One OpenAI-compatible request, timed and classified.
//!
//! The caller passes the request's *intended* send time's deadline; every
//! timestamp is when a network chunk arrived (on the lean HTTP/1.1 path, the
//! kernel's receive time: [`stampede_rxtime`]), and every failure ends as
//! one [`FailureClass`]. ITL gaps go into a caller-owned buffer so the hot
//! path allocates nothing per token.

use crate::failure::FailureClass;
use crate::gate::{Miss, WriteGate};
use crate::openai::{MessageInfo, parse_message};
use crate::sse::SseParser;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Largest non-streamed body read (bytes).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// A successful request's measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct Success {
    /// Arrival of the first token-bearing message.
    pub first_token: Instant,
    /// Arrival of the last token-bearing message.
    pub last_token: Instant,
    /// Output tokens: `usage.completion_tokens`, else the fallback count.
    pub output_tokens: u64,
    /// Whether `output_tokens` came from the server's `usage`.
    pub usage_reported: bool,
    /// `usage.prompt_tokens`, when reported.
    pub prompt_tokens: Option<u64>,
    /// The response's HTTP status (a 2xx).
    pub status: u16,
}

/// Everything needed to send one request of a phase.
#[derive(Debug, Clone)]
pub struct Target {
    /// HTTP client (shared connection pools).
    pub client: crate::http::Client,
    /// Full URL of the endpoint.
    pub url: String,
    /// Serialized JSON body.
    pub body: Bytes,
    /// Whether the response is streamed.
    pub stream: bool,
    /// Headers added to the client's defaults (extras, authorization).
    pub headers: reqwest::header::HeaderMap,
    /// Time allowed from the intended send time to the first token.
    pub first_token_timeout: Option<Duration>,
}

/// What has arrived so far.
#[derive(Default)]
struct Progress {
    first: Option<Instant>,
    last: Option<Instant>,
    messages: u64,
    /// A choice said why generation stopped (`finish_reason`).
    finished: bool,
    usage: Option<MessageInfo>,
    status: u16,
}

/// Send one request intended at `intended` and read its response until the
/// whole-request `deadline` (and the target's first-token timeout).
/// `itl_gaps` receives the gap (µs) between consecutive token-bearing messages.
pub async fn execute(
    target: &Target,
    intended: Instant,
    deadline: Instant,
    itl_gaps: &mut Vec<u64>,
) -> Result<Success, FailureClass> {
    execute_body(target, target.body.clone(), intended, deadline, itl_gaps).await
}

/// [`execute`] with a body of its own instead of the target's.
pub async fn execute_body(
    target: &Target,
    body: Bytes,
    intended: Instant,
    deadline: Instant,
    itl_gaps: &mut Vec<u64>,
) -> Result<Success, FailureClass> {
    execute_until(target, body, intended, deadline, itl_gaps, None, None).await
}

/// How close to a deadline its timer is polled again (see [`execute_until`]).
const TIMER_MARGIN: Duration = Duration::from_millis(2);

/// [`execute_body`], also appending the generated text to `text` when given
/// (a multi-turn session carries the answers in its history), and ending as
/// [`FailureClass::Cancelled`] when `abandon` is cancelled. A request whose
/// deadline has passed before it is written is not written, and ends as
/// [`FailureClass::TimeoutFirstToken`].
pub async fn execute_until(
    target: &Target,
    body: Bytes,
    intended: Instant,
    deadline: Instant,
    itl_gaps: &mut Vec<u64>,
    text: Option<&mut String>,
    abandon: Option<&CancellationToken>,
) -> Result<Success, FailureClass> {
    let gate = WriteGate::new(intended, deadline);
    execute_gated(target, body, &gate, itl_gaps, text, abandon)
        .await
        .map_err(|miss| match miss {
            Miss::Failed(class) => class,
            // Never written: its deadline passed before any token could come.
            Miss::Expired => FailureClass::TimeoutFirstToken,
        })
}

/// [`execute_until`] for a request that passes `gate` (see [`crate::gate`]):
/// [`Miss::Expired`], and not written, when its deadline had passed before it
/// started or passes before its connection is ready; announced as sent
/// through the gate otherwise.
///
/// The deadlines' timers and the cancellation are registered with the task
/// once; afterwards they are polled again only near their deadline (or once
/// cancelled), not at every streamed token. A timer wakes the task no earlier
/// than its deadline, so a wake-up it causes always finds it polled.
pub async fn execute_gated(
    target: &Target,
    body: Bytes,
    gate: &WriteGate<'_>,
    itl_gaps: &mut Vec<u64>,
    text: Option<&mut String>,
    abandon: Option<&CancellationToken>,
) -> Result<Success, Miss> {
    let (intended, deadline) = (gate.intended(), gate.deadline());
    let mut progress = Progress::default();
    let first_seen = AtomicBool::new(false);
    let first_deadline = target
        .first_token_timeout
        .and_then(|t| intended.checked_add(t))
        .map_or(deadline, |d| d.min(deadline));
    let finished = {
        let work = exchange(
            target,
            body,
            gate,
            &mut progress,
            &first_seen,
            itl_gaps,
            text,
        );
        tokio::pin!(work);
        let first_timer = tokio::time::sleep_until(first_deadline);
        tokio::pin!(first_timer);
        let whole = tokio::time::sleep_until(deadline);
        tokio::pin!(whole);
        let cancelled = abandon.map(CancellationToken::cancelled);
        tokio::pin!(cancelled);
        let mut registered = false;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = work.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            let now = registered.then(Instant::now);
            let near = |at: Instant| now.is_none_or(|now| now + TIMER_MARGIN >= at);
            if near(deadline) && whole.as_mut().poll(cx).is_ready() {
                // Past its deadline at its first poll, and unwritten: the
                // agent got to it too late.
                if !registered && !gate.is_sent() {
                    return Poll::Ready(Some(Err(Miss::Expired)));
                }
                return Poll::Ready(None);
            }
            if !first_seen.load(Ordering::Relaxed)
                && near(first_deadline)
                && first_timer.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(None);
            }
            if let Some(c) = cancelled.as_mut().as_pin_mut()
                && (!registered || abandon.is_some_and(CancellationToken::is_cancelled))
                && c.poll(cx).is_ready()
            {
                return Poll::Ready(Some(Err(FailureClass::Cancelled.into())));
            }
            registered = true;
            Poll::Pending
        })
        .await
    };
    let miss = match finished {
        Some(Ok(())) => None,
        Some(Err(miss)) => Some(miss),
        None if progress.first.is_some() => Some(FailureClass::TimeoutMidStream.into()),
        None => Some(FailureClass::TimeoutFirstToken.into()),
    };
    if let Some(miss) = miss {
        if miss != Miss::Expired {
            // Failed before its write (e.g. while connecting): still sent.
            gate.mark_sent();
        }
        return Err(miss);
    }
    let (Some(first_token), Some(last_token)) = (progress.first, progress.last) else {
        return Err(FailureClass::EmptyResponse.into());
    };
    let usage = progress.usage.unwrap_or_default();
    let (output_tokens, usage_reported) = match usage.completion_tokens {
        Some(n) => (n, true),
        None if target.stream => (progress.messages, false),
        None => (usage.output_words.max(1), false),
    };
    Ok(Success {
        first_token,
        last_token,
        output_tokens,
        usage_reported,
        prompt_tokens: usage.prompt_tokens,
        status: progress.status,
    })
}

fn classify_send_error(e: &reqwest::Error) -> FailureClass {
    if e.is_connect() {
        FailureClass::Connect
    } else {
        FailureClass::Transport
    }
}

/// Turns a streamed body, as it arrives, into messages and timestamps.
struct StreamSink<'a> {
    parser: SseParser,
    progress: &'a mut Progress,
    first_seen: &'a AtomicBool,
    itl_gaps: &'a mut Vec<u64>,
    text: Option<&'a mut String>,
    /// `[DONE]` arrived.
    done: bool,
}

impl StreamSink<'_> {
    /// Takes one network chunk that arrived at `now`.
    fn feed(&mut self, chunk: &[u8], now: Instant) -> Result<(), FailureClass> {
        if self.done {
            return Ok(()); // drain to the body's end so the connection is reused
        }
        let (progress, first_seen, itl_gaps) =
            (&mut *self.progress, self.first_seen, &mut *self.itl_gaps);
        let (text, done) = (&mut self.text, &mut self.done);
        let mut failure = None;
        self.parser
            .feed(chunk, |data| {
                if data == "[DONE]" {
                    *done = true;
                    return false;
                }
                match parse_message(data) {
                    Ok(info) if info.error => {
                        failure = Some(FailureClass::StreamError);
                        false
                    }
                    Ok(info) => {
                        if info.token_bearing {
                            if let Some(t) = text.as_deref_mut() {
                                crate::openai::push_text(data, t);
                            }
                            progress.messages += 1;
                            if let Some(prev) = progress.last {
                                itl_gaps.push(micros(now - prev));
                            } else {
                                progress.first = Some(now);
                                first_seen.store(true, Ordering::Relaxed);
                            }
                            progress.last = Some(now);
                        }
                        progress.finished |= info.finished;
                        if info.completion_tokens.is_some() {
                            progress.usage = Some(info);
                        }
                        true
                    }
                    Err(_) => {
                        failure = Some(FailureClass::MalformedBody);
                        false
                    }
                }
            })
            .map_err(|_| FailureClass::MalformedBody)?;
        failure.map_or(Ok(()), Err)
    }

    /// The body ended: complete only if `[DONE]` came after a `finish_reason`
    /// (a stream the server abandoned ends with `[DONE]` but no reason).
    fn finish(self) -> Result<(), FailureClass> {
        if self.done && self.progress.finished {
            Ok(())
        } else {
            Err(FailureClass::StreamEndedEarly)
        }
    }
}

/// A whole (non-streamed) body, bounded by [`MAX_BODY_BYTES`].
#[derive(Default)]
struct WholeBody(Vec<u8>);

impl WholeBody {
    fn push(&mut self, chunk: &[u8]) -> Result<(), FailureClass> {
        if self.0.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(FailureClass::MalformedBody);
        }
        self.0.extend_from_slice(chunk);
        Ok(())
    }

    /// Parses the complete body, which arrived at `now`.
    fn finish(
        self,
        now: Instant,
        progress: &mut Progress,
        text: Option<&mut String>,
    ) -> Result<(), FailureClass> {
        let body_text = std::str::from_utf8(&self.0).map_err(|_| FailureClass::MalformedBody)?;
        let info = parse_message(body_text).map_err(|_| FailureClass::MalformedBody)?;
        if info.error {
            return Err(FailureClass::StreamError);
        }
        if info.token_bearing {
            if let Some(t) = text {
                crate::openai::push_text(body_text, t);
            }
            progress.first = Some(now);
            progress.last = Some(now);
            progress.messages = 1;
        }
        progress.usage = Some(info);
        Ok(())
    }
}

/// Write the request (through `gate`) and read its response into `progress`.
async fn exchange(
    target: &Target,
    body: Bytes,
    gate: &WriteGate<'_>,
    progress: &mut Progress,
    first_seen: &AtomicBool,
    itl_gaps: &mut Vec<u64>,
    text: Option<&mut String>,
) -> Result<(), Miss> {
    if let Some(pool) = target.client.h1()
        && let Some(endpoint) = crate::h1::Endpoint::parse(&target.url)
    {
        let mut resp = pool.post(&endpoint, &target.headers, &body, gate).await?;
        progress.status = resp.status();
        if !target.stream {
            let mut whole = WholeBody::default();
            let mut arrived = None;
            while let Some((chunk, at)) = resp.data().await? {
                whole.push(chunk)?;
                arrived = Some(at);
            }
            return Ok(whole.finish(arrived.unwrap_or_else(Instant::now), progress, text)?);
        }
        let mut sink = StreamSink::new(progress, first_seen, itl_gaps, text);
        while let Some((chunk, arrived)) = resp.data().await? {
            sink.feed(chunk, arrived)?;
        }
        return Ok(sink.finish()?);
    }
    let mut request = target.client.reqwest().post(&target.url).body(body);
    if !target.headers.is_empty() {
        request = request.headers(target.headers.clone());
    }
    // hyper acquires the connection itself: the gate is passed just before.
    gate.pass()?;
    let mut resp = request.send().await.map_err(|e| classify_send_error(&e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(FailureClass::Http(status.as_u16()).into());
    }
    progress.status = status.as_u16();
    let ended = |_| FailureClass::StreamEndedEarly;
    if !target.stream {
        let mut whole = WholeBody::default();
        while let Some(chunk) = resp.chunk().await.map_err(ended)? {
            whole.push(&chunk)?;
        }
        return Ok(whole.finish(Instant::now(), progress, text)?);
    }
    let mut sink = StreamSink::new(progress, first_seen, itl_gaps, text);
    while let Some(chunk) = resp.chunk().await.map_err(ended)? {
        sink.feed(&chunk, Instant::now())?;
    }
    Ok(sink.finish()?)
}

impl<'a> StreamSink<'a> {
    fn new(
        progress: &'a mut Progress,
        first_seen: &'a AtomicBool,
        itl_gaps: &'a mut Vec<u64>,
        text: Option<&'a mut String>,
    ) -> Self {
        Self {
            parser: SseParser::new(),
            progress,
            first_seen,
            itl_gaps,
            text,
            done: false,
        }
    }
}

/// A duration in whole microseconds (saturating).
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

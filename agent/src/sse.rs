//! Incremental Server-Sent Events parser.
//!
//! Network chunks are not events: one chunk may hold several events, and one
//! event may straddle many chunks (even a `\r\n` pair may be split). The
//! parser buffers partial lines and yields an event's `data` exactly when the
//! blank line that ends it arrives, so the same byte stream yields the same
//! events however it is chunked. Lines may end in `\n`, `\r\n` or `\r`;
//! comments (`:` lines) and fields other than `data` are skipped.

/// Largest event (sum of its data lines) or line accepted, in bytes.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

/// The stream broke the SSE framing rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// An event or line is larger than [`MAX_EVENT_BYTES`].
    #[error("SSE event larger than {MAX_EVENT_BYTES} bytes")]
    TooLarge,
    /// An event's data is not UTF-8.
    #[error("SSE event data is not UTF-8")]
    NotUtf8,
}

/// Incremental SSE parser. Feed it chunks; it calls back with each event's data.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    after_cr: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed one chunk; `on_event` receives the data of every event the chunk completes.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        mut on_event: impl FnMut(&str) -> bool,
    ) -> Result<(), SseError> {
        let mut rest = chunk;
        // A `\r` ended the last chunk: a `\n` starting this one belongs to
        // it. An empty chunk says nothing yet, so the flag waits.
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if let [b'\n', tail @ ..] = rest {
                rest = tail;
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (head, tail) = rest.split_at(pos);
            let cr = tail[0] == b'\r';
            rest = &tail[1..];
            if cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
            let keep_going = if self.line.is_empty()
                && !self.has_data
                && let Some(value) = head.strip_prefix(b"data:")
                && let Some(after) = self.blank_line(rest)
            {
                // Fast path: a one-line event whose blank line is in this
                // chunk too, handed over without copying it.
                rest = after;
                let value = value.strip_prefix(b" ").unwrap_or(value);
                if value.len() + 1 > MAX_EVENT_BYTES {
                    return Err(SseError::TooLarge);
                }
                on_event(std::str::from_utf8(value).map_err(|_| SseError::NotUtf8)?)
            } else if self.line.is_empty() {
                self.line_done(head, &mut on_event)?
            } else {
                self.push_line(head)?;
                let line = std::mem::take(&mut self.line);
                let r = self.line_done(&line, &mut on_event);
                self.line = line;
                self.line.clear();
                r?
            };
            if !keep_going {
                return Ok(());
            }
        }
        self.push_line(rest)
    }

    /// `rest` after the blank line it starts with, if it starts with one
    /// (a `\r` ending the chunk counts, its `\n` skipped in the next one).
    fn blank_line<'a>(&mut self, rest: &'a [u8]) -> Option<&'a [u8]> {
        match rest {
            [b'\n', tail @ ..] | [b'\r', b'\n', tail @ ..] => Some(tail),
            [b'\r'] => {
                self.after_cr = true;
                Some(&[])
            }
            [b'\r', tail @ ..] => Some(tail),
            _ => None,
        }
    }

    /// True when bytes of an unfinished event are buffered (the stream ended mid-event).
    pub fn has_partial(&self) -> bool {
        !self.line.is_empty() || self.has_data
    }

    fn push_line(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if self.line.len() + bytes.len() > MAX_EVENT_BYTES {
            return Err(SseError::TooLarge);
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    /// Process one complete line; returns the callback's wish to continue.
    fn line_done(
        &mut self,
        line: &[u8],
        on_event: &mut impl FnMut(&str) -> bool,
    ) -> Result<bool, SseError> {
        if line.is_empty() {
            if !self.has_data {
                return Ok(true);
            }
            self.has_data = false;
            let keep_going = {
                let text = std::str::from_utf8(&self.data).map_err(|_| SseError::NotUtf8)?;
                on_event(text)
            };
            self.data.clear();
            return Ok(keep_going);
        }
        if line[0] == b':' {
            return Ok(true);
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        if field == b"data" {
            if self.data.len() + value.len() + 1 > MAX_EVENT_BYTES {
                return Err(SseError::TooLarge);
            }
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_chunks(chunks: &[&[u8]]) -> Vec<String> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, |d| {
                out.push(d.to_string());
                true
            })
            .unwrap();
        }
        out
    }

    #[test]
    fn basic_events() {
        let s = b"data: {\"a\":1}\n\ndata: [DONE]\n\n";
        assert_eq!(parse_chunks(&[s]), vec!["{\"a\":1}", "[DONE]"]);
    }

    #[test]
    fn crlf_comments_and_multiline() {
        let s = b": keep-alive\r\n\r\nevent: x\r\ndata: a\r\ndata:b\r\nid: 3\r\n\r\ndata: c\r\r";
        assert_eq!(parse_chunks(&[s]), vec!["a\nb", "c"]);
    }

    #[test]
    fn crlf_split_across_chunks() {
        assert_eq!(
            parse_chunks(&[b"data: x\r", b"\n\r", b"\ndata: y\n", b"\n"]),
            vec!["x", "y"]
        );
    }

    #[test]
    fn an_empty_chunk_between_cr_and_lf_changes_nothing() {
        assert_eq!(
            parse_chunks(&[b"data: x\r", b"", b"\ndata: y\n\n"]),
            vec!["x\ny"]
        );
    }

    #[test]
    fn partial_event_is_visible() {
        let mut p = SseParser::new();
        p.feed(b"data: x\n", |_| true).unwrap();
        assert!(p.has_partial());
    }

    #[test]
    fn oversized_line_is_an_error() {
        let mut p = SseParser::new();
        let big = vec![b'a'; MAX_EVENT_BYTES + 1];
        assert_eq!(p.feed(&big, |_| true), Err(SseError::TooLarge));
    }

    fn stream_strategy() -> impl Strategy<Value = Vec<u8>> {
        let event = prop_oneof![
            "[a-z{}\":, ]{0,20}".prop_map(|d| format!("data: {d}\n\n")),
            "[a-z ]{0,10}".prop_map(|d| format!("data:{d}\r\n\r\n")),
            "[a-z]{0,10}".prop_map(|d| format!(": {d}\n")),
            "[a-z]{1,5}".prop_map(|d| format!("data: {d}\ndata: {d}\n\n")),
            Just("data: [DONE]\r\r".to_string()),
            Just("\n".to_string()),
        ];
        proptest::collection::vec(event, 0..20).prop_map(|v| v.concat().into_bytes())
    }

    /// Events (and the first error) of `stream` fed in `chunks`, stopping at an error.
    fn outcome(chunks: &[&[u8]]) -> (Vec<String>, Option<SseError>) {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            if let Err(e) = p.feed(c, |d| {
                out.push(d.to_string());
                true
            }) {
                return (out, Some(e));
            }
        }
        (out, None)
    }

    fn split_at<'a>(stream: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for p in points {
            chunks.push(&stream[last..p]);
            last = p;
        }
        chunks.push(&stream[last..]);
        chunks
    }

    /// Arbitrary bytes, biased towards the bytes SSE framing cares about.
    fn noisy_bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..8),
            Just(b"data:".to_vec()),
            Just(b"data: ".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b":".to_vec()),
            Just(b"[DONE]".to_vec()),
            Just(vec![0xff, 0xfe]),
            Just("é".as_bytes().to_vec()),
        ];
        proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_any_chunking_same_events_and_error(
            stream in noisy_bytes(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..16),
        ) {
            let whole = outcome(&[&stream]);
            prop_assert_eq!(outcome(&split_at(&stream, &cuts)), whole.clone());
            let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
            prop_assert_eq!(outcome(&bytewise), whole);
        }

        #[test]
        fn any_chunking_gives_the_same_events(
            stream in stream_strategy(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let whole = parse_chunks(&[&stream]);
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut last = 0;
            for p in points {
                chunks.push(&stream[last..p]);
                last = p;
            }
            chunks.push(&stream[last..]);
            prop_assert_eq!(parse_chunks(&chunks), whole);
        }
    }
}

//! A lean HTTP/1.1 client for plain-`http://` targets: the agent's hot path.
//!
//! hyper's client runs each connection as a task of its own and hands body
//! chunks to the request through a channel, so every streamed token costs
//! two task wake-ups and a `Bytes` hand-off. The agent's benchmark
//! (`agent/benches/agent_cost.rs`) showed that machinery as most of the
//! agent's user time. Here the request's own task owns its connection: it
//! writes the request in one write, parses the response head with
//! `httparse`, and decodes the body (chunked, content-length or
//! close-delimited) in place in the connection's buffer, so a token costs one
//! wake-up and no copy. Each read also returns when its bytes reached this
//! host ([`stampede_rxtime`]), which is what tokens are timed by.
//!
//! Only plain HTTP/1.1 without a proxy takes this path; TLS, HTTP/2 and
//! proxied targets keep hyper (through reqwest). Connections are kept alive
//! in a pool per authority, like reqwest's with the agent's options: no limit
//! on idle connections; those idle over 90 s are closed the next time the
//! pool is used.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::failure::FailureClass;
use crate::gate::{Miss, WriteGate};

/// Idle connections older than this are closed, not reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Largest response head accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most response headers accepted.
const MAX_HEADERS: usize = 100;
/// Initial size of a connection's read buffer.
const BUF_BYTES: usize = 16 * 1024;
/// Longest chunk-size line (size, extensions) or trailer line accepted.
const MAX_LINE_BYTES: usize = 4096;

/// Environment variables that make reqwest use a proxy: with any of them set
/// the lean path is off, so requests go where the operator pointed them.
const PROXY_VARS: [&str; 6] = [
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "HTTPS_PROXY",
    "https_proxy",
];

/// Whether a proxy is configured in this process's environment.
pub fn proxy_configured() -> bool {
    PROXY_VARS
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// An `http://` URL split for the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port` as written in the URL (the `Host` header).
    pub authority: String,
    /// Where to connect: the authority with the default port 80 added.
    pub connect_to: String,
    /// Path and query (at least `/`).
    pub path: String,
}

impl Endpoint {
    /// Splits an `http://` URL; `None` for any other scheme or a URL with
    /// user information (left to reqwest).
    pub fn parse(url: &str) -> Option<Self> {
        let scheme_len = "http://".len();
        if url.len() < scheme_len || !url[..scheme_len].eq_ignore_ascii_case("http://") {
            return None;
        }
        let rest = &url[scheme_len..];
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        let tail = tail.split('#').next().unwrap_or("");
        let path = if tail.starts_with('/') {
            tail.to_string()
        } else {
            format!("/{tail}")
        };
        // A port is present unless the authority ends in a bracketed IPv6
        // address or has no colon at all.
        let has_port = match authority.rfind(':') {
            Some(i) => !authority[i..].contains(']'),
            None => false,
        };
        let connect_to = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Some(Self {
            authority: authority.to_string(),
            connect_to,
            path,
        })
    }
}

/// A kept-alive connection waiting in the pool, with its read buffer.
#[derive(Debug)]
struct Idle {
    stream: TcpStream,
    buf: Vec<u8>,
    since: Instant,
}

/// Keep-alive connections per authority, and how to open new ones.
#[derive(Debug)]
pub struct Pool {
    /// Per `host:port`, oldest first: taken from the back, expired from the front.
    idle: Mutex<HashMap<String, VecDeque<Idle>>>,
    connect_timeout: Duration,
    user_agent: String,
}

impl Pool {
    /// A pool whose requests carry `user_agent` and whose connects give up
    /// after `connect_timeout`.
    pub fn new(user_agent: &str, connect_timeout: Duration) -> Self {
        // Receive stamping on before the first connection, not a moment after.
        stampede_rxtime::hold_enabled();
        Self {
            idle: Mutex::new(HashMap::new()),
            connect_timeout,
            user_agent: user_agent.to_string(),
        }
    }

    /// An idle connection to `to` that is still open, if any.
    fn checkout(&self, to: &str) -> Option<(TcpStream, Vec<u8>)> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(to)?;
        expire(list);
        while let Some(c) = list.pop_back() {
            // Readable while idle means the server closed it (or sent
            // something unasked): either way it cannot carry a request.
            let mut probe = [0u8; 1];
            match c.stream.try_read(&mut probe) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return Some((c.stream, c.buf));
                }
                _ => continue,
            }
        }
        None
    }

    fn checkin(&self, to: &str, stream: TcpStream, buf: Vec<u8>) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = match idle.get_mut(to) {
            Some(list) => list,
            None => idle.entry(to.to_string()).or_default(),
        };
        expire(list);
        list.push_back(Idle {
            stream,
            buf,
            since: Instant::now(),
        });
    }

    async fn connect(&self, to: &str) -> Result<TcpStream, FailureClass> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(to))
            .await
            .map_err(|_| FailureClass::Connect)?
            .map_err(|_| FailureClass::Connect)?;
        // Small requests must leave at once.
        let _ = stream.set_nodelay(true);
        stampede_rxtime::enable(&stream);
        Ok(stream)
    }

    /// The request's bytes: head (defaults, then `headers`, which override
    /// defaults of the same name) and body, for one write.
    fn request_bytes(&self, ep: &Endpoint, headers: &HeaderMap, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + body.len());
        out.extend_from_slice(b"POST ");
        out.extend_from_slice(ep.path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        out.extend_from_slice(ep.authority.as_bytes());
        out.extend_from_slice(b"\r\n");
        let defaults: [(&str, &[u8]); 3] = [
            ("user-agent", self.user_agent.as_bytes()),
            ("content-type", b"application/json"),
            ("accept", b"*/*"),
        ];
        for (name, value) in defaults {
            if !headers.contains_key(name) {
                push_header(&mut out, name.as_bytes(), value);
            }
        }
        for (name, value) in headers {
            let n = name.as_str();
            if n != "host" && n != "content-length" && n != "transfer-encoding" {
                push_header(&mut out, n.as_bytes(), value.as_bytes());
            }
        }
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(body);
        out
    }

    /// POSTs `body` to `ep` and reads the response head. The request passes
    /// `gate` with its connection in hand, immediately before it is written
    /// ([`Miss::Expired`] past its deadline). A non-2xx status is
    /// [`FailureClass::Http`]; its body is not read and its connection not
    /// reused.
    pub async fn post<'p>(
        &'p self,
        ep: &Endpoint,
        headers: &HeaderMap,
        body: &[u8],
        gate: &WriteGate<'_>,
    ) -> Result<Response<'p>, Miss> {
        let request = self.request_bytes(ep, headers, body);
        let (mut stream, buf) = match self.checkout(&ep.connect_to) {
            Some((mut reused, buf)) => {
                gate.pass()?;
                match reused.write_all(&request).await {
                    Ok(()) => (reused, buf),
                    // The server closed it while idle: a fresh connection is
                    // safe, since a failed write delivered nothing it could act on.
                    Err(_) => {
                        let fresh = self.connect(&ep.connect_to).await?;
                        (write(fresh, &request).await?, buf)
                    }
                }
            }
            None => {
                let fresh = self.connect(&ep.connect_to).await?;
                gate.pass()?;
                (write(fresh, &request).await?, vec![0; BUF_BYTES])
            }
        };
        // Nothing of the response can arrive before the request was sent.
        let mut conn = Conn::new(buf, Instant::now());
        let head = conn.read_head(&mut stream).await?;
        if !(200..300).contains(&head.status) {
            return Err(FailureClass::Http(head.status).into());
        }
        Ok(Response {
            pool: self,
            to: ep.connect_to.clone(),
            stream: Some(stream),
            conn,
            body: head.body,
            keep_alive: head.keep_alive,
            status: head.status,
        })
    }
}

/// Writes a whole request on a fresh connection.
async fn write(mut stream: TcpStream, request: &[u8]) -> Result<TcpStream, FailureClass> {
    stream
        .write_all(request)
        .await
        .map_err(|_| FailureClass::Transport)?;
    Ok(stream)
}

/// Closes the connections idle longer than [`IDLE_TIMEOUT`] (the oldest are
/// at the front).
fn expire(list: &mut VecDeque<Idle>) {
    let now = Instant::now();
    while list
        .front()
        .is_some_and(|c| now.saturating_duration_since(c.since) > IDLE_TIMEOUT)
    {
        list.pop_front();
    }
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// How the response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// `Content-Length` bytes.
    Length(u64),
    /// Until the server closes the connection.
    Close,
}

/// A parsed response head.
struct Head {
    status: u16,
    keep_alive: bool,
    body: Body,
}

/// A connection's read buffer: bytes `start..end` are unread.
struct Conn {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// When the last read's bytes reached this host ([`stampede_rxtime`]).
    arrived: Instant,
    /// Room for the receive timestamp of each read.
    control: Vec<u8>,
}

impl Conn {
    /// A connection's (empty) buffer, new or kept with the connection, for
    /// a response to a request sent at `sent`.
    fn new(mut buf: Vec<u8>, sent: Instant) -> Self {
        if buf.len() < BUF_BYTES {
            buf.resize(BUF_BYTES, 0);
        }
        Self {
            buf,
            start: 0,
            end: 0,
            arrived: sent,
            control: stampede_rxtime::control_buffer(),
        }
    }

    fn unread(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads more bytes after the unread ones; `Ok(0)` at end of stream.
    async fn fill(&mut self, stream: &mut TcpStream) -> std::io::Result<usize> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, self.end - self.start);
            } else {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        let (n, arrived) =
            stampede_rxtime::read(stream, &mut self.buf[self.end..], &mut self.control).await?;
        self.end += n;
        // Reads arrive in order: a wall-clock step cannot put one before the last.
        self.arrived = self.arrived.max(arrived);
        Ok(n)
    }

    /// Reads and parses the response head, skipping interim (1xx) responses.
    async fn read_head(&mut self, stream: &mut TcpStream) -> Result<Head, FailureClass> {
        loop {
            let parsed = {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(self.unread()) {
                    Ok(httparse::Status::Complete(n)) => Some((n, head_of(&resp)?)),
                    Ok(httparse::Status::Partial) => None,
                    Err(_) => return Err(FailureClass::Transport),
                }
            };
            match parsed {
                Some((n, head)) => {
                    self.start += n;
                    if (100..200).contains(&head.status) && head.status != 101 {
                        continue;
                    }
                    return Ok(head);
                }
                None if self.end - self.start >= MAX_HEAD_BYTES => {
                    return Err(FailureClass::Transport);
                }
                None => match self.fill(stream).await {
                    Ok(0) | Err(_) => return Err(FailureClass::Transport),
                    Ok(_) => {}
                },
            }
        }
    }
}

/// Status, framing and reusability of a complete head (RFC 9112 §6.3).
fn head_of(resp: &httparse::Response<'_, '_>) -> Result<Head, FailureClass> {
    let status = resp.code.ok_or(FailureClass::Transport)?;
    let http11 = resp.version == Some(1);
    let (mut chunked, mut length, mut close, mut keep_alive) = (false, None, false, false);
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked must be the last coding; anything else is read to close.
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or(&[]);
            chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
            if !chunked {
                close = true;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or(FailureClass::Transport)?;
            if length.is_some_and(|l| l != n) {
                return Err(FailureClass::Transport);
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else if close && !chunked && length.is_none() {
        Framing::Close
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    Ok(Head {
        status,
        keep_alive: !close && (http11 || keep_alive) && framing != Framing::Close,
        body: Body::new(framing),
    })
}

/// A response whose head has arrived; read its body with [`Response::data`].
/// Dropped before its body ends, its connection is closed, not reused.
pub struct Response<'p> {
    pool: &'p Pool,
    to: String,
    stream: Option<TcpStream>,
    conn: Conn,
    body: Body,
    keep_alive: bool,
    status: u16,
}

impl Response<'_> {
    /// The HTTP status (a 2xx).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The next piece of the body as it arrived, valid until the next call,
    /// with when the read that brought it reached this host
    /// ([`stampede_rxtime`]); `Ok(None)` at its end (the connection then goes
    /// back to the pool). A body cut short or badly framed is
    /// [`FailureClass::StreamEndedEarly`].
    pub async fn data(&mut self) -> Result<Option<(&[u8], Instant)>, FailureClass> {
        loop {
            let Some(stream) = self.stream.as_mut() else {
                return Ok(None);
            };
            let (consumed, data) = self
                .body
                .decode(self.conn.unread())
                .map_err(|_| FailureClass::StreamEndedEarly)?;
            let at = self.conn.start;
            self.conn.start += consumed;
            if let Some(r) = data {
                let bytes = &self.conn.buf[at + r.start..at + r.end];
                return Ok(Some((bytes, self.conn.arrived)));
            }
            if self.body.is_done() {
                let stream = self.stream.take();
                if let Some(s) = stream.filter(|_| self.keep_alive && self.conn.unread().is_empty())
                {
                    self.pool
                        .checkin(&self.to, s, std::mem::take(&mut self.conn.buf));
                }
                return Ok(None);
            }
            match self.conn.fill(stream).await {
                Ok(0) if self.body.framing == Framing::Close => self.body.state = State::Done,
                Ok(0) | Err(_) => return Err(FailureClass::StreamEndedEarly),
                Ok(_) => {}
            }
        }
    }
}

/// A chunked body that breaks the framing rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad chunked framing: {0}")]
pub struct FramingError(&'static str);

/// Where a chunked body's decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line (hex size, optional extensions).
    Size,
    /// Inside a chunk (or a content-length body): bytes left.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last (zero) chunk: trailer lines until an empty one.
    Trailer,
    /// The body is complete.
    Done,
}

/// An incremental body decoder: fed whatever bytes arrived, it returns how
/// many it consumed and the range of body data among them.
#[derive(Debug, Clone)]
pub struct Body {
    framing: Framing,
    state: State,
}

impl Body {
    fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Chunked => State::Size,
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Data(n),
            Framing::Close => State::Data(u64::MAX),
        };
        Self { framing, state }
    }

    /// A decoder for a chunked body.
    pub fn chunked() -> Self {
        Self::new(Framing::Chunked)
    }

    /// Whether the body is complete.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes a prefix of `input`: returns its length and, if it holds body
    /// data, that data's range within `input` (one range per call, so call
    /// again with the rest). Consumes nothing only when `input` holds no
    /// complete line to act on (more bytes are needed) or the body is done.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Option<Range<usize>>), FramingError> {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match self.state {
                State::Done => return Ok((pos, None)),
                State::Data(left) => {
                    if rest.is_empty() {
                        return Ok((pos, None));
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
                    let left = left - n as u64;
                    self.state = match (left, self.framing) {
                        (0, Framing::Chunked) => State::DataEnd,
                        (0, _) => State::Done,
                        (_, Framing::Close) => State::Data(u64::MAX),
                        _ => State::Data(left),
                    };
                    return Ok((pos + n, Some(pos..pos + n)));
                }
                State::Size => {
                    let Some(line) = line(rest)? else {
                        return Ok((pos, None));
                    };
                    let size = chunk_size(&rest[..line.0])?;
                    pos += line.1;
                    self.state = if size == 0 {
                        State::Trailer
                    } else {
                        State::Data(size)
                    };
                }
                State::DataEnd => {
                    let Some(line) = line(rest)? else {
                        return Ok((pos, None));
                    };
                    if line.0 != 0 {
                        return Err(FramingError("chunk data longer than its size"));
                    }
                    pos += line.1;
                    self.state = State::Size;
                }
                State::Trailer => {
                    let Some(line) = line(rest)? else {
                        return Ok((pos, None));
                    };
                    pos += line.1;
                    if line.0 == 0 {
                        self.state = State::Done;
                    }
                }
            }
        }
    }
}

/// The first line of `input`: (length without its end, length with it), or
/// `None` if it has not ended yet. Lines end in CRLF (a bare LF is accepted).
fn line(input: &[u8]) -> Result<Option<(usize, usize)>, FramingError> {
    match input.iter().position(|&b| b == b'\n') {
        Some(i) if i > 0 && input[i - 1] == b'\r' => Ok(Some((i - 1, i + 1))),
        Some(i) => Ok(Some((i, i + 1))),
        None if input.len() > MAX_LINE_BYTES => Err(FramingError("line too long")),
        None => Ok(None),
    }
}

/// The size of a chunk-size line, ignoring extensions.
fn chunk_size(line: &[u8]) -> Result<u64, FramingError> {
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or(&[])
        .trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(FramingError("chunk size missing or too large"));
    }
    let mut n = 0u64;
    for &b in digits {
        let d = (b as char)
            .to_digit(16)
            .ok_or(FramingError("chunk size not hexadecimal"))?;
        n = n * 16 + u64::from(d);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decodes `input` fed in the given piece lengths; the data, or `None` on
    /// a framing error or an unfinished body.
    fn decode_all(input: &[u8], cuts: &[usize]) -> Option<Vec<u8>> {
        let mut body = Body::chunked();
        let (mut pending, mut out, mut fed) = (Vec::new(), Vec::new(), 0);
        let mut pieces: Vec<&[u8]> = Vec::new();
        for &c in cuts {
            let c = c.min(input.len() - fed);
            pieces.push(&input[fed..fed + c]);
            fed += c;
        }
        pieces.push(&input[fed..]);
        for piece in pieces {
            pending.extend_from_slice(piece);
            loop {
                let (used, data) = body.decode(&pending).ok()?;
                if let Some(r) = data {
                    out.extend_from_slice(&pending[r]);
                }
                pending.drain(..used);
                if used == 0 {
                    break;
                }
            }
        }
        body.is_done().then_some(out)
    }

    fn encode(chunks: &[Vec<u8>], ext: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for c in chunks.iter().filter(|c| !c.is_empty()) {
            out.extend_from_slice(format!("{:X}", c.len()).as_bytes());
            if ext {
                out.extend_from_slice(b";name=value");
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(c);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\nx-trailer: 1\r\n\r\n");
        out
    }

    proptest! {
        #[test]
        fn any_split_of_a_chunked_body_decodes_to_its_data(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8),
            cuts in prop::collection::vec(0usize..64, 0..40),
            ext in any::<bool>(),
        ) {
            let wire = encode(&chunks, ext);
            let want: Vec<u8> = chunks.concat();
            prop_assert_eq!(decode_all(&wire, &cuts), Some(want));
        }
    }

    #[test]
    fn bad_framing_is_refused() {
        assert_eq!(decode_all(b"zz\r\nab\r\n0\r\n\r\n", &[]), None);
        assert_eq!(decode_all(b"2\r\nabXX0\r\n\r\n", &[]), None);
        assert_eq!(decode_all(b"2\r\nab\r\n", &[]), None, "unfinished");
        assert_eq!(decode_all(b"fffffffffffffffff\r\n", &[]), None);
        let endless = vec![b'1'; MAX_LINE_BYTES + 1];
        assert_eq!(decode_all(&endless, &[]), None);
    }

    #[test]
    fn urls_split_for_the_wire() {
        let e = Endpoint::parse("http://127.0.0.1:8000/v1/chat/completions").unwrap();
        assert_eq!(e.authority, "127.0.0.1:8000");
        assert_eq!(e.connect_to, "127.0.0.1:8000");
        assert_eq!(e.path, "/v1/chat/completions");
        let e = Endpoint::parse("HTTP://gateway/v1/completions?x=1#f").unwrap();
        assert_eq!(e.connect_to, "gateway:80");
        assert_eq!(e.path, "/v1/completions?x=1");
        let e = Endpoint::parse("http://[::1]/v1").unwrap();
        assert_eq!(e.connect_to, "[::1]:80");
        assert_eq!(
            Endpoint::parse("http://[::1]:9/v1").unwrap().connect_to,
            "[::1]:9"
        );
        assert_eq!(Endpoint::parse("http://h").unwrap().path, "/");
        assert!(Endpoint::parse("https://h/v1").is_none());
        assert!(Endpoint::parse("http://user:pw@h/v1").is_none());
        assert!(Endpoint::parse("http:///v1").is_none());
    }

    fn head(raw: &[u8]) -> Result<Head, FailureClass> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        assert!(resp.parse(raw).unwrap().is_complete());
        head_of(&resp)
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let h = head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").unwrap();
        assert_eq!((h.body.framing, h.keep_alive), (Framing::Chunked, true));
        let h = head(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n").unwrap();
        assert_eq!(h.body.framing, Framing::Length(5));
        let h = head(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\n").unwrap();
        assert_eq!((h.body.framing, h.keep_alive), (Framing::Length(5), false));
        let h = head(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
        assert_eq!((h.body.framing, h.keep_alive), (Framing::Close, false));
        let h = head(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n").unwrap();
        assert!(!h.keep_alive, "HTTP/1.0 closes unless asked to keep alive");
        let h = head(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
        assert!(h.body.is_done());
        let h = head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n").unwrap();
        assert_eq!(h.body.framing, Framing::Close);
        assert!(head(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").is_err());
        assert!(
            head(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n").is_err()
        );
    }
}

//! Why a request failed. A failure is always one class of this enum (never a
//! bool), and its label is the key under which it is counted on the wire and
//! in every report.

use std::fmt;

/// Class of a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureClass {
    /// The TCP/TLS connection could not be established.
    Connect,
    /// The whole-request timeout expired before the first token.
    TimeoutFirstToken,
    /// The whole-request timeout expired after the first token.
    TimeoutMidStream,
    /// The server answered with a non-success HTTP status.
    Http(u16),
    /// The connection closed before the stream's end (`[DONE]` / full body).
    StreamEndedEarly,
    /// The body (or an SSE event) is not what the API promises.
    MalformedBody,
    /// The server reported an error object inside the stream.
    StreamError,
    /// The stream completed without any token.
    EmptyResponse,
    /// The request was abandoned (phase drain ran out, stop order).
    Cancelled,
    /// Any other transport error (e.g. the connection was reset while sending).
    Transport,
}

impl FailureClass {
    /// Label used on the wire and in reports, e.g. `http_5xx:503`.
    pub fn label(self) -> String {
        match self {
            FailureClass::Connect => "connect".into(),
            FailureClass::TimeoutFirstToken => "timeout_first_token".into(),
            FailureClass::TimeoutMidStream => "timeout_mid_stream".into(),
            FailureClass::Http(code) => format!("http_{}xx:{code}", code / 100),
            FailureClass::StreamEndedEarly => "stream_ended_early".into(),
            FailureClass::MalformedBody => "malformed_body".into(),
            FailureClass::StreamError => "stream_error".into(),
            FailureClass::EmptyResponse => "empty_response".into(),
            FailureClass::Cancelled => "cancelled".into(),
            FailureClass::Transport => "transport".into(),
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_carry_status_class_and_code() {
        assert_eq!(FailureClass::Http(429).label(), "http_4xx:429");
        assert_eq!(FailureClass::Http(503).label(), "http_5xx:503");
        assert_eq!(
            FailureClass::TimeoutFirstToken.label(),
            "timeout_first_token"
        );
    }
}

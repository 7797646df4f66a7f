//! Errors: OpenAI-style API errors returned to clients, and the library's own errors.
//!
//! Clients under test (the stampede agent, or real OpenAI SDKs) parse the
//! `{"error": {...}}` body, so its shape matches OpenAI / vLLM.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Errors of the simulator's server task.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The HTTP server failed.
    #[error("simulator server failed: {0}")]
    Io(#[from] std::io::Error),
    /// The server task panicked or was aborted.
    #[error("simulator server task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The config file cannot be read or parsed.
    #[error("config file {path}: {message}")]
    ConfigFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong, with the line and key when known.
        message: String,
    },
}

/// A request the simulator refuses, answered with an OpenAI-style error body.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// 400: malformed JSON, missing or invalid field.
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<&'static str>,
    },
    /// 404: the request names a model this simulator does not serve.
    #[error("The model `{0}` does not exist.")]
    ModelNotFound(String),
    /// 404: no such route.
    #[error("Not found: {0}")]
    RouteNotFound(String),
    /// 400: prompt plus requested output exceeds `max_model_len` (vLLM's message).
    #[error(
        "This model's maximum context length is {max} tokens. However, you requested \
         {} tokens ({prompt} in the messages, {completion} in the completion). Please reduce \
         the length of the messages or completion.",
        prompt + completion
    )]
    ContextLength {
        max: u64,
        prompt: u64,
        completion: u64,
    },
    /// 400: the request needs more KV-cache blocks than the whole cache has.
    #[error(
        "The request needs {needed} KV-cache blocks but the cache has only {capacity}. \
         Please reduce the length of the messages or completion."
    )]
    TooLarge { needed: u64, capacity: u64 },
    /// 429 or 503: the engine's waiting queue is full.
    #[error("The server is overloaded: the waiting queue is full. Please retry later.")]
    QueueFull(u16),
    /// 503: the engine is shutting down.
    #[error("The server is shutting down.")]
    ShuttingDown,
    /// An injected error status (429, 500 or 503).
    #[error("{}", injected_message(*.0))]
    Injected(u16),
}

fn injected_message(status: u16) -> &'static str {
    match status {
        429 => "Rate limit reached for requests (injected by stampede-sim).",
        503 => "The server is overloaded or not ready yet (injected by stampede-sim).",
        _ => "The server had an error while processing your request (injected by stampede-sim).",
    }
}

impl ApiError {
    /// A 400 `invalid_request_error`, optionally naming the offending parameter.
    pub(crate) fn invalid(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self::InvalidRequest {
            message: message.into(),
            param,
        }
    }

    /// Whether this is a client error (counted as rejected) rather than overload or a fault.
    pub(crate) fn is_client_error(&self) -> bool {
        self.status().is_client_error() && !matches!(self, Self::QueueFull(_) | Self::Injected(_))
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest { .. } | Self::ContextLength { .. } | Self::TooLarge { .. } => {
                StatusCode::BAD_REQUEST
            }
            Self::ModelNotFound(_) | Self::RouteNotFound(_) => StatusCode::NOT_FOUND,
            Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::QueueFull(code) | Self::Injected(code) => {
                StatusCode::from_u16(*code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
            }
        }
    }

    fn kind(&self) -> &'static str {
        match self.status().as_u16() {
            429 => "rate_limit_error",
            500..=599 => "server_error",
            _ => "invalid_request_error",
        }
    }

    fn param(&self) -> Option<&'static str> {
        match self {
            Self::InvalidRequest { param, .. } => *param,
            Self::ModelNotFound(_) => Some("model"),
            _ => None,
        }
    }

    fn code(&self) -> Option<&'static str> {
        match self {
            Self::ModelNotFound(_) => Some("model_not_found"),
            Self::ContextLength { .. } | Self::TooLarge { .. } => Some("context_length_exceeded"),
            Self::QueueFull(429) | Self::Injected(429) => Some("rate_limit_exceeded"),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": {
                "message": self.to_string(),
                "type": self.kind(),
                "param": self.param(),
                "code": self.code(),
            }
        });
        (self.status(), axum::Json(body)).into_response()
    }
}

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
}

/// A request the simulator refuses, answered with a 4xx OpenAI-style error body.
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
}

impl ApiError {
    /// A 400 `invalid_request_error`, optionally naming the offending parameter.
    pub(crate) fn invalid(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self::InvalidRequest {
            message: message.into(),
            param,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            Self::ModelNotFound(_) | Self::RouteNotFound(_) => StatusCode::NOT_FOUND,
        }
    }

    fn param(&self) -> Option<&'static str> {
        match self {
            Self::InvalidRequest { param, .. } => *param,
            Self::ModelNotFound(_) => Some("model"),
            Self::RouteNotFound(_) => None,
        }
    }

    fn code(&self) -> Option<&'static str> {
        match self {
            Self::ModelNotFound(_) => Some("model_not_found"),
            Self::InvalidRequest { .. } | Self::RouteNotFound(_) => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": {
                "message": self.to_string(),
                "type": "invalid_request_error",
                "param": self.param(),
                "code": self.code(),
            }
        });
        (self.status(), axum::Json(body)).into_response()
    }
}

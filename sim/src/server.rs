//! HTTP routes and handlers.
//!
//! Thin glue: parse the request ([`crate::request`]), put it on a timeline
//! ([`crate::engine`]), and answer in the OpenAI format ([`crate::wire`], [`crate::stream`]).

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::time::Instant;

use crate::config::SimConfig;
use crate::engine::{Generation, full_text};
use crate::error::ApiError;
use crate::request::{self, Endpoint};
use crate::stats::{SimStats, StatsSnapshot};
use crate::stream::sse_body;
use crate::wire::{ResponseMeta, Usage, full_body};

/// Largest request body accepted (long prompts are fine, runaway uploads are not).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// State shared by all handlers of one simulator.
#[derive(Debug)]
struct AppState {
    cfg: SimConfig,
    stats: Arc<SimStats>,
    /// The `GET /v1/models` body, built once.
    models_body: Bytes,
}

/// The simulator's routes, counting into `stats`. `start` serves this; tests and embedders
/// can also mount it themselves.
pub fn router(cfg: SimConfig, stats: Arc<SimStats>) -> Router {
    let models = serde_json::json!({
        "object": "list",
        "data": [{
            "id": cfg.model,
            "object": "model",
            "created": 0,
            "owned_by": "stampede",
            "root": cfg.model,
            "parent": null,
            "max_model_len": null,
        }],
    });
    let models_body = Bytes::from(models.to_string());
    let state = Arc::new(AppState {
        cfg,
        stats,
        models_body,
    });
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(list_models))
        .route("/health", get(health))
        .route("/sim/stats", get(sim_stats))
        .fallback(not_found)
        .with_state(state)
}

async fn chat_completions(State(state): State<Arc<AppState>>, body: Body) -> Response {
    generate(&state, Endpoint::Chat, body).await
}

async fn completions(State(state): State<Arc<AppState>>, body: Body) -> Response {
    generate(&state, Endpoint::Completions, body).await
}

/// Shared handler of both generation endpoints. The timeline starts here, before the body
/// is read, i.e. as soon as the request headers arrived.
async fn generate(state: &Arc<AppState>, endpoint: Endpoint, body: Body) -> Response {
    let start = Instant::now();
    let seq = state.stats.record_started();
    match respond(state, endpoint, body, start, seq).await {
        Ok(response) => response,
        Err(err) => {
            state.stats.record_rejected();
            tracing::debug!(%err, "rejected request");
            err.into_response()
        }
    }
}

async fn respond(
    state: &Arc<AppState>,
    endpoint: Endpoint,
    body: Body,
    start: Instant,
    seq: u64,
) -> Result<Response, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| ApiError::invalid(format!("Could not read request body: {e}"), None))?;
    let req = request::parse(endpoint, &bytes)?;
    if let Some(model) = req.model.filter(|m| *m != state.cfg.model) {
        return Err(ApiError::ModelNotFound(model));
    }
    state.stats.add_prompt_tokens(req.prompt_tokens);

    let mut generation = Generation::new(&state.cfg, start, req.max_tokens);
    let meta = ResponseMeta::new(endpoint, seq, &state.cfg.model);
    if req.stream {
        let body = sse_body(
            &meta,
            generation,
            Arc::clone(&state.stats),
            req.include_usage,
            req.prompt_tokens,
        );
        let headers = [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ];
        return Ok((headers, body).into_response());
    }

    // If the client leaves during this wait, hyper drops this future: not served.
    generation.finish().await;
    let n = generation.len();
    state.stats.add_output_tokens(u64::from(n));
    let usage = Usage {
        prompt: req.prompt_tokens,
        completion: u64::from(n),
    };
    let response = axum::Json(full_body(&meta, full_text(n), usage)).into_response();
    state.stats.record_served();
    Ok(response)
}

async fn list_models(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.models_body.clone(),
    )
        .into_response()
}

async fn health() -> StatusCode {
    StatusCode::OK
}

async fn sim_stats(State(state): State<Arc<AppState>>) -> axum::Json<StatsSnapshot> {
    axum::Json(state.stats.snapshot())
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::RouteNotFound(uri.path().to_owned())
}

//! HTTP routes and handlers.
//!
//! Thin glue: parse the request ([`crate::request`]), decide its fate ([`crate::faults`]),
//! put it on a timeline ([`crate::timeline`], backed by [`crate::engine`] when batching),
//! and answer in the OpenAI format ([`crate::wire`], [`crate::stream`]), on the model the
//! request names ([`crate::models`]). Also the admin and observability routes: `/metrics`,
//! `/sim/stats`, `/sim/traceparents`, `/sim/faults`.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use futures_util::stream;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::accept::RequestArrival;
use crate::config::{ModelConfig, SimConfig};
use crate::engine::SubmitError;
use crate::error::ApiError;
use crate::faults::{Fault, FaultConfig, Faults};
use crate::latency::LatencySnapshot;
use crate::models::{Models, Served};
use crate::request::{self, Endpoint, GenRequest};
use crate::stats::{SimStats, StatsSnapshot, Tally, Traceparents};
use crate::stream::{hung_body, sse_body};
use crate::timeline::{Fixed, Generation, Job, full_text, output_len};
use crate::wire::{ResponseMeta, Usage, full_body};

/// Largest request body accepted (long prompts are fine, runaway uploads are not).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// State shared by all handlers of one simulator.
#[derive(Debug)]
struct AppState {
    /// The server's counters (every model's requests).
    stats: Arc<SimStats>,
    faults: Arc<Faults>,
    /// The models served, each with its own engine and counters.
    models: Models,
    /// Cancelled when the server shuts down or this state is dropped: ends hung responses
    /// and lets the idle engine tasks exit.
    shutdown: CancellationToken,
    _guard: DropGuard,
}

/// The simulator's routes, counting into `stats`. `start` serves this; tests and embedders
/// can also mount it themselves (validate `cfg` with [`SimConfig::validate`] first).
pub fn router(cfg: SimConfig, stats: Arc<SimStats>) -> Router {
    build(cfg, stats, CancellationToken::new())
}

/// [`router`], with hung responses and the engine also ending when `shutdown` is cancelled.
pub(crate) fn build(cfg: SimConfig, stats: Arc<SimStats>, shutdown: CancellationToken) -> Router {
    let shutdown = shutdown.child_token();
    let faults = Arc::new(Faults::new(cfg.faults.clone(), cfg.seed));
    let models = Models::new(&cfg, &faults, &shutdown);
    let state = Arc::new(AppState {
        stats,
        faults,
        models,
        _guard: shutdown.clone().drop_guard(),
        shutdown,
    });
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(list_models))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/sim/stats", get(sim_stats))
        .route("/sim/traceparents", get(sim_traceparents))
        .route("/sim/faults", get(get_faults).post(set_faults))
        .route("/sim/latency", get(get_latency).delete(reset_latency))
        .fallback(not_found)
        .with_state(state)
}

/// When the request reached the server's socket, if it was accepted by [`crate::start`].
type Arrival = Option<Extension<ConnectInfo<RequestArrival>>>;

async fn chat_completions(
    State(state): State<Arc<AppState>>,
    arrival: Arrival,
    headers: HeaderMap,
    body: Body,
) -> Response {
    generate(&state, Endpoint::Chat, arrival, &headers, body).await
}

async fn completions(
    State(state): State<Arc<AppState>>,
    arrival: Arrival,
    headers: HeaderMap,
    body: Body,
) -> Response {
    generate(&state, Endpoint::Completions, arrival, &headers, body).await
}

/// Shared handler of both generation endpoints. The timeline starts when the request
/// head reached the server ([`crate::accept`]); mounted without that, when this handler
/// starts. Either way, before the body is read.
async fn generate(
    state: &Arc<AppState>,
    endpoint: Endpoint,
    arrival: Arrival,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let now = Instant::now();
    let start = arrival.map_or(now, |Extension(ConnectInfo(a))| a.at_most(now));
    let seq = state.stats.record_started();
    if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        state.stats.record_traceparent(tp);
    }
    match respond(state, endpoint, body, start, seq).await {
        Ok(response) => response,
        Err(err) => {
            if err.is_client_error() {
                state.stats.record_rejected();
            }
            tracing::debug!(%err, "refused request");
            err.into_response()
        }
    }
}

/// Checks the context length like vLLM: prompt plus the requested output must fit
/// `max_model_len`. Returns the number of tokens to generate.
fn fit_context(cfg: &ModelConfig, req: &GenRequest) -> Result<u32, ApiError> {
    let len = output_len(cfg, req.max_tokens);
    let Some(max) = cfg.max_model_len.map(u64::from) else {
        return Ok(len);
    };
    let prompt = req.prompt_tokens;
    // Without max_tokens vLLM generates into whatever room is left (at least one token).
    let requested = req.max_tokens.map_or(1, u64::from);
    if prompt + requested > max {
        return Err(ApiError::ContextLength {
            max,
            prompt,
            completion: requested,
        });
    }
    let room = u32::try_from(max - prompt).unwrap_or(u32::MAX);
    Ok(len.min(room).max(1))
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
    let model = state.models.route(req.model.as_deref())?;
    let tally = Tally {
        server: Arc::clone(&state.stats),
        model: Arc::clone(&model.stats),
    };
    tally.routed();
    let meta = ResponseMeta::new(endpoint, seq, &model.cfg.name);
    let routed = Routed {
        model,
        tally,
        meta,
        start,
        seq,
    };
    serve(state, routed, req).await.inspect_err(|e| {
        // The server counts it in `generate`.
        if e.is_client_error() {
            model.stats.counts.record_rejected();
        }
    })
}

/// A request on its way to a model.
struct Routed<'a> {
    model: &'a Served,
    tally: Tally,
    meta: ResponseMeta,
    start: Instant,
    seq: u64,
}

/// Serves `req` on the model it was routed to: its context check, the fault draw, then its
/// timeline.
async fn serve(state: &AppState, r: Routed<'_>, req: GenRequest) -> Result<Response, ApiError> {
    let Routed {
        model,
        tally,
        meta,
        start,
        seq,
    } = r;
    let len = fit_context(&model.cfg, &req)?;

    let fault = state.faults.draw(seq);
    match fault {
        Some(f @ Fault::Status(code)) => {
            tally.fault(f);
            return Err(ApiError::Injected(code));
        }
        Some(Fault::Hang) => {
            tally.fault(Fault::Hang);
            if req.stream {
                return Ok(sse_response(hung_body(&meta, state.shutdown.clone())));
            }
            state.shutdown.cancelled().await;
            return Err(ApiError::ShuttingDown);
        }
        _ => {}
    }

    let job = Job {
        start,
        len,
        seq,
        prompt_tokens: req.prompt_tokens,
        max_tokens: req.max_tokens,
    };
    let mut generation = start_generation(state, model, &tally, &req, &job)?;
    tally.prompt_tokens(req.prompt_tokens);

    if req.stream {
        let body = sse_body(
            &meta,
            start,
            generation,
            tally,
            req.include_usage,
            req.prompt_tokens,
            fault,
        );
        return Ok(sse_response(body));
    }

    // If the client leaves during this wait, hyper drops this future: not served.
    if !generation.finish().await {
        return Err(ApiError::ShuttingDown);
    }
    let n = generation.len();
    tally.output_tokens(u64::from(n));
    let usage = Usage {
        prompt: req.prompt_tokens,
        completion: u64::from(n),
    };
    let json = full_body(&meta, full_text(n), usage).to_string();
    Ok(full_response(&tally, json, fault))
}

/// Put `job` on its timeline: a fixed one of its own, or a sequence in the model's
/// batching engine (whose queue may refuse it).
fn start_generation(
    state: &AppState,
    model: &Served,
    tally: &Tally,
    req: &GenRequest,
    job: &Job,
) -> Result<Generation, ApiError> {
    let Some(engine) = &model.engine else {
        let slowdown = state.faults.slowdown(job.start);
        let stats = (Arc::clone(&model.stats), Arc::clone(&tally.server));
        return Ok(Generation::Fixed(Fixed::new(
            &model.timing,
            job,
            slowdown,
            stats,
        )));
    };
    match engine.submit(&req.prompt_ids, job.len, job.start, req.max_tokens) {
        Ok(handle) => Ok(Generation::Engine(handle)),
        Err(SubmitError::QueueFull) => {
            tally.queue_full();
            let code = model
                .cfg
                .engine
                .as_ref()
                .map_or(429, |e| e.queue_full_status.code());
            Err(ApiError::QueueFull(code))
        }
        Err(SubmitError::TooLarge { needed, capacity }) => {
            Err(ApiError::TooLarge { needed, capacity })
        }
        Err(SubmitError::Closed) => Err(ApiError::ShuttingDown),
    }
}

/// The whole (non-streamed) answer `json`, or the part of it a `Cut` or
/// `Malformed` fault leaves.
fn full_response(tally: &Tally, json: String, fault: Option<Fault>) -> Response {
    let json_headers = [(header::CONTENT_TYPE, "application/json")];
    match fault {
        Some(Fault::Cut) => {
            tally.fault(Fault::Cut);
            // Half the body, then an aborted connection.
            let json = Bytes::from(json);
            let half = json.slice(..json.len() / 2);
            let body = stream::iter([
                Ok(half),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "injected stream cut",
                )),
            ]);
            (json_headers, Body::from_stream(body)).into_response()
        }
        Some(Fault::Malformed) => {
            tally.fault(Fault::Malformed);
            let cut = json.len() / 2;
            let truncated = json.get(..cut).unwrap_or("{").to_owned();
            tally.served();
            (json_headers, truncated).into_response()
        }
        _ => {
            tally.served();
            (json_headers, json).into_response()
        }
    }
}

fn sse_response(body: Body) -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/event-stream"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    (headers, body).into_response()
}

async fn list_models(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.models.list_body.clone(),
    )
        .into_response()
}

async fn health() -> StatusCode {
    StatusCode::OK
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let scopes: Vec<_> = state.models.iter().map(Served::scope).collect();
    let text = crate::metrics::render(&scopes);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `GET /sim/stats?model=NAME`: one model's counters instead of the server's.
#[derive(Debug, serde::Deserialize)]
struct StatsQuery {
    model: Option<String>,
}

/// The server's counters (every model's requests), or with `?model=NAME` that model's:
/// the requests routed to it.
async fn sim_stats(
    State(state): State<Arc<AppState>>,
    Query(q): Query<StatsQuery>,
) -> Result<axum::Json<StatsSnapshot>, ApiError> {
    match q.model {
        None => Ok(axum::Json(state.stats.snapshot())),
        Some(name) => match state.models.get(&name) {
            Some(m) => Ok(axum::Json(m.stats.counts.snapshot())),
            None => Err(ApiError::ModelNotFound(name)),
        },
    }
}

async fn get_latency(State(state): State<Arc<AppState>>) -> axum::Json<LatencySnapshot> {
    axum::Json(state.stats.latency())
}

/// Starts a new latency measurement interval.
async fn reset_latency(State(state): State<Arc<AppState>>) -> StatusCode {
    state.stats.reset_latency();
    StatusCode::NO_CONTENT
}

async fn sim_traceparents(State(state): State<Arc<AppState>>) -> axum::Json<Traceparents> {
    axum::Json(state.stats.traceparents())
}

async fn get_faults(State(state): State<Arc<AppState>>) -> axum::Json<FaultConfig> {
    axum::Json(state.faults.get())
}

/// Replaces the fault settings (fields left out take their defaults) and restarts the
/// warm-up period; answers with the new settings.
async fn set_faults(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let cfg: FaultConfig = match serde_json::from_slice(&body) {
        Ok(cfg) => cfg,
        Err(e) => {
            return ApiError::invalid(format!("Invalid fault settings: {e}"), None).into_response();
        }
    };
    if let Err(e) = cfg.validate() {
        return ApiError::invalid(e.to_string(), Some(e.key)).into_response();
    }
    tracing::info!(?cfg, "fault settings replaced");
    state.faults.set(cfg.clone());
    axum::Json(cfg).into_response()
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::RouteNotFound(uri.path().to_owned())
}

//! The HTTP side of the serving lifecycle: wait until a server answers
//! `/health` and `/v1/models`, and describe what an endpoint serves (model
//! ids, `max_model_len`, health status, `Server` header, `/metrics`).
//!
//! A Deployment whose pod is Ready is not yet a server that answers: vLLM
//! loads weights for minutes, and a gateway routes only once its pool has
//! endpoints. So readiness is asked over HTTP at the address the load will
//! use, and the base URL is a parameter so tests probe a loopback server.

use crate::model::{EndpointInfo, ModelInfo};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Timeout of a single probe request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest body read from a probed endpoint (bytes).
const MAX_BODY: usize = 256 * 1024;

/// The endpoint did not become ready in time.
#[derive(Debug, Clone)]
pub enum NotReady {
    /// Waited the whole timeout; `last` is the last answer seen.
    TimedOut {
        /// Time waited.
        waited: Duration,
        /// Last probe outcome.
        last: String,
    },
    /// The wait was cancelled.
    Cancelled,
}

/// A client for probes (no proxy surprises: plain reqwest, short timeout).
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    // Idempotent; the library may be used without the binary's startup code.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build()
}

async fn get(
    client: &reqwest::Client,
    url: &str,
) -> Result<(u16, Option<String>, Vec<u8>), String> {
    let resp = client.get(url).send().await.map_err(|e| {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg = format!("{msg}: {s}");
            src = s.source();
        }
        msg
    })?;
    let status = resp.status().as_u16();
    let server = resp
        .headers()
        .get(reqwest::header::SERVER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = Vec::new();
    let mut resp = resp;
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("body longer than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, server, body))
}

fn parse_models(body: &[u8]) -> Result<Vec<ModelInfo>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let data = v
        .get("data")
        .and_then(serde_json::Value::as_array)
        .ok_or("no `data` list in the body")?;
    Ok(data
        .iter()
        .filter_map(|m| {
            Some(ModelInfo {
                id: m.get("id")?.as_str()?.to_string(),
                max_model_len: m.get("max_model_len").and_then(serde_json::Value::as_u64),
            })
        })
        .collect())
}

/// One readiness check: `/health` answers 200 and `/v1/models` answers 200
/// with a non-empty model list. Err: what is not there yet.
pub async fn check_once(client: &reqwest::Client, base_url: &str) -> Result<(), String> {
    match get(client, &format!("{base_url}/health")).await {
        Ok((200, ..)) => {}
        Ok((status, ..)) => return Err(format!("/health: HTTP {status}")),
        Err(e) => return Err(format!("/health: {e}")),
    }
    match get(client, &format!("{base_url}/v1/models")).await {
        Ok((200, _, body)) => match parse_models(&body) {
            Ok(models) if !models.is_empty() => Ok(()),
            Ok(_) => Err("/v1/models: no models listed yet".to_string()),
            Err(e) => Err(format!("/v1/models: {e}")),
        },
        Ok((status, ..)) => Err(format!("/v1/models: HTTP {status}")),
        Err(e) => Err(format!("/v1/models: {e}")),
    }
}

/// Poll [`check_once`] every `interval` until it passes, `timeout` passes
/// or `cancel` fires. Returns the time it took.
pub async fn wait_ready(
    client: &reqwest::Client,
    base_url: &str,
    timeout: Duration,
    interval: Duration,
    cancel: &CancellationToken,
) -> Result<Duration, NotReady> {
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = "no answer yet".to_string();
    loop {
        let attempt = tokio::time::timeout_at(deadline, check_once(client, base_url));
        tokio::select! {
            () = cancel.cancelled() => return Err(NotReady::Cancelled),
            r = attempt => match r {
                Ok(Ok(())) => return Ok(start.elapsed()),
                Ok(Err(e)) => last = e,
                Err(_) => break,
            },
        }
        tokio::select! {
            () = cancel.cancelled() => return Err(NotReady::Cancelled),
            () = tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + interval)) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
    }
    Err(NotReady::TimedOut {
        waited: timeout,
        last,
    })
}

/// What `base_url` serves: `/health` status, `/v1/models` (ids,
/// `max_model_len`, `Server` header) and whether `/metrics` answers.
/// Never fails: what cannot be read is listed in `errors`.
pub async fn inspect(client: &reqwest::Client, base_url: &str) -> EndpointInfo {
    let mut info = EndpointInfo {
        url: base_url.to_string(),
        ..Default::default()
    };
    match get(client, &format!("{base_url}/health")).await {
        Ok((status, ..)) => info.health_status = Some(status),
        Err(e) => info.errors.push(format!("/health: {e}")),
    }
    match get(client, &format!("{base_url}/v1/models")).await {
        Ok((200, server, body)) => {
            info.server = server;
            match parse_models(&body) {
                Ok(m) => info.models = m,
                Err(e) => info.errors.push(format!("/v1/models: {e}")),
            }
        }
        Ok((status, server, _)) => {
            info.server = server;
            info.errors.push(format!("/v1/models: HTTP {status}"));
        }
        Err(e) => info.errors.push(format!("/v1/models: {e}")),
    }
    match get(client, &format!("{base_url}/metrics")).await {
        Ok((status, ..)) => info.metrics = status == 200,
        Err(e) => info.errors.push(format!("/metrics: {e}")),
    }
    info
}

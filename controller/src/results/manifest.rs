//! `manifest.json`: what is needed to reproduce and interpret a run —
//! versions, git revision, host, agents (node, cores, clock offsets), the
//! target and what its `/v1/models` said, start/end times, the environment
//! with anything that looks secret redacted, and on Kubernetes the agents'
//! node labels and the gateway's address.
//!
//! Written when the run starts and rewritten (atomically: temporary file,
//! then rename) whenever it learns more, so a killed controller leaves a
//! manifest as complete as it was at the last phase boundary.

use crate::model::{AgentInfo, TargetInfo};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// File name of the manifest inside a run directory.
pub const FILE_NAME: &str = "manifest.json";

/// Git revision the controller was built from ("unknown" outside a checkout).
pub const GIT_REVISION: &str = env!("STAMPEDE_GIT_REVISION");

/// Substrings of environment variable names whose values are never recorded.
const SECRET_MARKERS: [&str; 9] = [
    "KEY",
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "CREDENTIAL",
    "AUTH",
    "COOKIE",
    // OTEL_EXPORTER_OTLP_HEADERS and the like carry authorization headers.
    "HEADERS",
];

/// Environment variables recorded in manifest.json: those that shape a run.
/// Proxy names match in any case; everything else is left out.
const KEPT_NAMES: [&str; 12] = [
    "RUST_LOG",
    "RUST_BACKTRACE",
    "RUST_MIN_STACK",
    "TOKIO_WORKER_THREADS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "KUBECONFIG",
    "TZ",
];

/// Prefixes of recorded environment variable names.
const KEPT_PREFIXES: [&str; 2] = ["STAMPEDE_", "OTEL_"];

/// What replaces a secret value.
pub const REDACTED: &str = "<redacted>";

/// How long the `/v1/models` lookup may take.
const MODELS_TIMEOUT: Duration = Duration::from_secs(3);

/// Largest `/v1/models` body kept (bytes).
const MODELS_MAX_BYTES: usize = 64 * 1024;

/// The reproducibility manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// stampede version of the controller.
    pub stampede_version: String,
    /// Git revision the controller was built from.
    pub git_revision: String,
    /// Run identifier.
    pub run_id: String,
    /// Host the controller ran on.
    pub host: String,
    /// Start (RFC 3339, UTC).
    pub started_at: String,
    /// End (RFC 3339, UTC); `None` while running or after a crash.
    pub finished_at: Option<String>,
    /// The run was cut short by a stop signal.
    pub interrupted: bool,
    /// Endpoint under test.
    pub target: TargetInfo,
    /// The target's `GET /v1/models` response, or why it is missing.
    pub target_models: serde_json::Value,
    /// Agents that joined, with their clock estimates.
    pub agents: Vec<AgentInfo>,
    /// Environment of the controller, secrets redacted.
    pub environment: BTreeMap<String, String>,
    /// Datasets the run read, with the records it skipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<crate::model::DatasetInfo>,
    /// Traces the run replayed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traces: Vec<crate::model::TraceInfo>,
    /// Cluster details (node labels, gateway address) when the plan has `[kubernetes]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<crate::model::KubernetesInfo>,
    /// The built-in simulator's own counters at the end of the run (requests
    /// served, faults injected by kind), when the run started one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulator_stats: Option<stampede_sim::StatsSnapshot>,
    /// The serving stack deployed (or inspected) for the run, when the plan has `[serving]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<crate::model::ServingRecord>,
}

/// Errors reading a manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The manifest.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not a valid manifest.
    #[error("{path}: invalid manifest: {message}")]
    Invalid {
        /// The manifest.
        path: PathBuf,
        /// Parser message (with line and column).
        message: String,
    },
}

/// Whether an environment variable's name suggests a secret.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_MARKERS.iter().any(|m| upper.contains(m))
}

/// The environment as manifest.json records it: only the variables that
/// shape a run (`KEPT_NAMES`, `KEPT_PREFIXES`), with secret-looking names and
/// any value holding one of `secrets` (the values of variables the plan names:
/// API key, join token) redacted, and credentials stripped from URLs.
pub fn recorded_environment(
    vars: impl Iterator<Item = (String, String)>,
    secrets: &[Vec<u8>],
) -> BTreeMap<String, String> {
    let kept = |name: &str| {
        let upper = name.to_ascii_uppercase();
        KEPT_NAMES.contains(&upper.as_str()) || KEPT_PREFIXES.iter().any(|p| name.starts_with(p))
    };
    let holds_secret = |v: &str| {
        secrets
            .iter()
            .filter(|s| !s.is_empty())
            .any(|s| v.as_bytes().windows(s.len()).any(|w| w == s.as_slice()))
    };
    vars.filter(|(k, _)| kept(k))
        .map(|(k, v)| {
            let v = if looks_secret(&k) || holds_secret(&v) {
                REDACTED.to_string()
            } else {
                redact_url_credentials(&v)
            };
            (k, v)
        })
        .collect()
}

/// `text` with the user information of every URL in it (`user:password@`)
/// replaced by `<redacted>@`.
pub fn redact_url_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>') || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(userinfo_end) => {
                out.push_str(REDACTED);
                out.push_str(&authority[userinfo_end..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

/// `GET {base_url}/v1/models`, best effort: the parsed body, or an object
/// saying why there is none.
pub async fn fetch_models(base_url: &str) -> serde_json::Value {
    let url = format!("{base_url}/v1/models");
    // Idempotent; the library may be used without the binary's startup code.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let attempt = async {
        let client = reqwest::Client::builder()
            .timeout(MODELS_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        let resp = client.get(&url).send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        if body.len() > MODELS_MAX_BYTES {
            return Err(format!("body of {} bytes not kept", body.len()));
        }
        serde_json::from_slice::<serde_json::Value>(&body).map_err(|e| format!("not JSON: {e}"))
    };
    match tokio::time::timeout(MODELS_TIMEOUT, attempt).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => serde_json::json!({
            "error": redact_url_credentials(&e),
            "url": redact_url_credentials(&url),
        }),
        Err(_) => serde_json::json!({ "error": "timed out", "url": redact_url_credentials(&url) }),
    }
}

/// Write `manifest.json` into `dir` atomically.
pub fn write(dir: &Path, m: &Manifest) -> Result<(), ManifestError> {
    let path = dir.join(FILE_NAME);
    let tmp = dir.join(format!(".{FILE_NAME}.tmp"));
    let io = |source| ManifestError::Io {
        path: path.clone(),
        source,
    };
    let text = serde_json::to_string_pretty(m).map_err(|e| ManifestError::Invalid {
        path: path.clone(),
        message: e.to_string(),
    })?;
    std::fs::write(&tmp, text + "\n").map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)
}

/// Read `manifest.json` from `dir`.
pub fn read(dir: &Path) -> Result<Manifest, ManifestError> {
    let path = dir.join(FILE_NAME);
    let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| ManifestError::Invalid {
        path,
        message: e.to_string(),
    })
}

/// A minimal manifest for tests.
#[cfg(test)]
pub(crate) fn sample() -> Manifest {
    Manifest {
        stampede_version: "0".into(),
        git_revision: "x".into(),
        run_id: "r".into(),
        host: "h".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        finished_at: None,
        interrupted: false,
        target: TargetInfo {
            url: "http://127.0.0.1:1".into(),
            model: "m".into(),
            api: stampede_plan::Api::Chat,
            simulator: true,
        },
        target_models: serde_json::Value::Null,
        agents: Vec::new(),
        environment: BTreeMap::new(),
        datasets: Vec::new(),
        traces: Vec::new(),
        kubernetes: None,
        simulator_stats: None,
        serving: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_by_name() {
        let env = recorded_environment(
            [
                ("STAMPEDE_HF_TOKEN", "hf_abc"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer x"),
                ("STAMPEDE_db_password", "pw"),
                ("RUST_LOG", "info"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
            &[],
        );
        assert_eq!(env["STAMPEDE_HF_TOKEN"], REDACTED);
        assert_eq!(env["OTEL_EXPORTER_OTLP_HEADERS"], REDACTED);
        assert_eq!(env["STAMPEDE_db_password"], REDACTED);
        assert_eq!(env["RUST_LOG"], "info");
    }

    #[test]
    fn only_what_shapes_a_run_is_recorded_and_named_secrets_never() {
        let env = recorded_environment(
            [
                ("DATABASE_URL", "postgres://app:db-pass@db/app"),
                ("PATH", "/usr/bin"),
                ("LLM_BEARER", "sk-live-1"),
                ("STAMPEDE_JOIN", "join-secret-2"),
                ("https_proxy", "http://me:proxy-pass@proxy:3128"),
                ("NO_PROXY", "localhost,127.0.0.1"),
                ("STAMPEDE_NOTE", "uses sk-live-1 inside"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
            &[b"sk-live-1".to_vec(), b"join-secret-2".to_vec()],
        );
        let names: Vec<&str> = env.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["NO_PROXY", "STAMPEDE_JOIN", "STAMPEDE_NOTE", "https_proxy"]
        );
        assert_eq!(env["STAMPEDE_JOIN"], REDACTED);
        assert_eq!(env["STAMPEDE_NOTE"], REDACTED);
        assert_eq!(env["https_proxy"], "http://<redacted>@proxy:3128");
        assert_eq!(env["NO_PROXY"], "localhost,127.0.0.1");
    }

    #[test]
    fn url_credentials_are_redacted_wherever_they_appear() {
        assert_eq!(
            redact_url_credentials("url = \"https://u:p@gw.example:443/v1\" # and http://h/x"),
            "url = \"https://<redacted>@gw.example:443/v1\" # and http://h/x"
        );
        assert_eq!(
            redact_url_credentials("a://x@y b://plain c://u@v@w/p"),
            "a://<redacted>@y b://plain c://<redacted>@w/p"
        );
        assert_eq!(redact_url_credentials("no url here"), "no url here");
    }

    #[tokio::test]
    async fn unreachable_target_is_recorded_not_fatal() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // A port nothing listens on: bind, take the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let v = fetch_models(&format!("http://127.0.0.1:{port}")).await;
        assert!(v.get("error").is_some(), "{v}");
    }
}

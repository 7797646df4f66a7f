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
const SECRET_MARKERS: [&str; 8] = [
    "KEY",
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "CREDENTIAL",
    "AUTH",
    "COOKIE",
];

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

/// The environment with secret-looking values replaced.
pub fn redacted_environment(
    vars: impl Iterator<Item = (String, String)>,
) -> BTreeMap<String, String> {
    vars.map(|(k, v)| {
        let v = if looks_secret(&k) {
            REDACTED.to_string()
        } else {
            v
        };
        (k, v)
    })
    .collect()
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
        Ok(Err(e)) => serde_json::json!({ "error": e, "url": url }),
        Err(_) => serde_json::json!({ "error": "timed out", "url": url }),
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
        let env = redacted_environment(
            [
                ("HF_TOKEN", "hf_abc"),
                ("OPENAI_API_KEY", "sk-1"),
                ("db_password", "pw"),
                ("PATH", "/usr/bin"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        assert_eq!(env["HF_TOKEN"], REDACTED);
        assert_eq!(env["OPENAI_API_KEY"], REDACTED);
        assert_eq!(env["db_password"], REDACTED);
        assert_eq!(env["PATH"], "/usr/bin");
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

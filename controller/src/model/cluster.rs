//! Where a run ran: the Kubernetes nodes and gateway it found, and the
//! serving stack it deployed.

use serde::{Deserialize, Serialize};
use stampede_plan::serving::{SecretRef, ServerKind};
use std::collections::BTreeMap;

/// Cluster details recorded in manifest.json.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct KubernetesInfo {
    /// kubeconfig context (`None`: current or in-cluster).
    pub context: Option<String>,
    /// Namespace of the agents.
    pub namespace: String,
    /// Nodes the agents ran on, with their labels.
    pub nodes: Vec<NodeInfo>,
    /// The gateway Service, when the plan names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayInfo>,
    /// Lookups that failed (the rest of the record stands).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// One node and the labels that matter for comparing runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// `nvidia.com/gpu.product`.
    pub gpu_product: Option<String>,
    /// `topology.kubernetes.io/zone`.
    pub zone: Option<String>,
    /// `node.kubernetes.io/instance-type`.
    pub instance_type: Option<String>,
    /// Agents that ran on it.
    pub agents: Vec<String>,
}

/// Where the gateway Service answers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct GatewayInfo {
    /// Service namespace.
    pub namespace: String,
    /// Service name.
    pub name: String,
    /// Service type (ClusterIP, LoadBalancer, ...).
    pub service_type: String,
    /// `spec.clusterIP`.
    pub cluster_ip: Option<String>,
    /// Load-balancer ingress IPs or host names.
    pub ingress: Vec<String>,
    /// Ports: "name port/protocol".
    pub ports: Vec<String>,
    /// The address to reach it by: first ingress (else the cluster IP) and
    /// the first port.
    pub address: Option<String>,
}

/// What was deployed, as recorded in `manifest.json` under `serving`.
/// Secrets appear only as references.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingRecord {
    /// "standalone", "helm" or "existing".
    pub method: String,
    /// Namespace of the stack.
    pub namespace: String,
    /// Base URL that was probed (the target's unless the plan set one).
    pub url: String,
    /// What was created: "Deployment ns/name", "helm release ns/name".
    pub deployed: Vec<String>,
    /// The standalone server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerRecord>,
    /// The Helm releases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charts: Vec<ChartRecord>,
    /// Seconds from deploy to the first successful readiness check.
    pub ready_after_seconds: f64,
    /// What the endpoint answered once ready.
    pub endpoint: EndpointInfo,
    /// Left up after the run (`keep = true`).
    pub keep: bool,
}

/// The standalone server as deployed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRecord {
    /// Deployment and Service name.
    pub name: String,
    /// Server kind.
    pub kind: ServerKind,
    /// Image.
    pub image: String,
    /// Model.
    pub model: String,
    /// Full container arguments.
    pub args: Vec<String>,
    /// GPUs per pod.
    pub gpus: u32,
    /// Node selector.
    pub node_selector: BTreeMap<String, String>,
    /// Names of the plain environment variables (values may be long; see the plan).
    pub env: Vec<String>,
    /// The Hugging Face token's Secret reference (never its value).
    pub hf_token_secret: Option<SecretRef>,
    /// Model cache, e.g. "pvc hf-cache at /root/.cache/huggingface".
    pub model_cache: Option<String>,
}

/// A Helm release as installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChartRecord {
    /// Release.
    pub release: String,
    /// Chart.
    pub chart: String,
    /// Repository.
    pub repo: Option<String>,
    /// Version.
    pub version: Option<String>,
    /// Values files.
    pub values: Vec<String>,
    /// `--set` values.
    pub set: BTreeMap<String, String>,
}

/// What an endpoint answered, as recorded in the run manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointInfo {
    /// Base URL probed.
    pub url: String,
    /// HTTP status of `GET /health` (absent when it did not answer).
    pub health_status: Option<u16>,
    /// The `Server` response header of `/v1/models`, if any.
    pub server: Option<String>,
    /// Models listed by `/v1/models`.
    pub models: Vec<ModelInfo>,
    /// Whether `GET /metrics` answered 200.
    pub metrics: bool,
    /// What could not be read, e.g. "/v1/models: HTTP 503".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// One entry of `/v1/models`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Model id.
    pub id: String,
    /// vLLM's `max_model_len`, when given.
    pub max_model_len: Option<u64>,
}

//! `[serving]`: the inference stack a run stands up before its phases and
//! tears down after — a vLLM Deployment + Service applied by the controller
//! (`method = "standalone"`), Helm releases such as llm-d's charts
//! (`method = "helm"`), or a gateway that is already there
//! (`method = "existing"`, only inspected and recorded).
//!
//! Kept apart from the plan's own validation because a sweep compares the
//! validated [`ServingSpec`] of consecutive cells: only a change of what
//! defines the stack (model, image, hardware, arguments, charts) means a
//! redeploy, and [`stack_changed`] is that comparison. Secrets never appear here: the
//! Hugging Face token is a reference to a Kubernetes Secret key, and plain
//! `env` refuses names that look secret.

use crate::PlanError;
use crate::duration::HumanDuration;
use crate::kubernetes::{
    is_dns_label, is_dns_subdomain, is_label_key, is_label_value, is_quantity,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Name of the Deployment and Service of the standalone method, by default.
pub const DEFAULT_NAME: &str = "stampede-serving";
/// Port the server listens on, by default (vLLM's).
pub const DEFAULT_PORT: u16 = 8000;
/// How long the server may take to answer `/health` and `/v1/models`.
pub const DEFAULT_READINESS_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// Node label with the GPU product (NVIDIA GPU feature discovery).
pub const GPU_PRODUCT_LABEL: &str = "nvidia.com/gpu.product";
/// Extended resource of an NVIDIA GPU.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// Where the model cache is mounted by default (the Hugging Face cache of
/// the vLLM image, which runs as root).
pub const DEFAULT_CACHE_MOUNT: &str = "/root/.cache/huggingface";
/// The environment variable the Hugging Face token is given in.
pub const HF_TOKEN_ENV: &str = "HF_TOKEN";

/// Substrings of environment variable names that must come from a Secret.
const SECRET_MARKERS: [&str; 5] = ["TOKEN", "SECRET", "PASSWORD", "KEY", "CREDENTIAL"];

/// `[serving]` as written in the plan.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawServing {
    /// "standalone" (a vLLM Deployment + Service), "helm" (Helm charts,
    /// e.g. llm-d) or "existing" (a running gateway, only recorded). Required.
    pub method: Option<String>,
    /// Namespace of what is deployed. Default: `kubernetes.namespace`, else "stampede".
    pub namespace: Option<String>,
    /// How long to wait for `/health` and `/v1/models`. Default "20m".
    pub readiness_timeout: Option<HumanDuration>,
    /// Leave the stack up after the run. Default false.
    pub keep: Option<bool>,
    /// standalone: what the container runs, "vllm" (default) or "simulator"
    /// (the `stampede/sim` image, a stand-in without GPUs).
    pub server: Option<String>,
    /// standalone: name of the Deployment and Service. Default "stampede-serving".
    pub name: Option<String>,
    /// standalone: container image, e.g. "vllm/vllm-openai:v0.11.0". Required.
    pub image: Option<String>,
    /// standalone: model to serve (Hugging Face id). Required; also the
    /// target's model unless `target.model` is set.
    pub model: Option<String>,
    /// standalone: extra server arguments after the model and port.
    pub args: Option<Vec<String>>,
    /// standalone: port the server listens on and the Service exposes. Default 8000.
    pub port: Option<u16>,
    /// standalone: GPUs per pod (`nvidia.com/gpu` request and limit). Default 0.
    pub gpus: Option<u32>,
    /// standalone: GPU product the pod needs, as the node label
    /// `nvidia.com/gpu.product` says, e.g. "NVIDIA-H100-80GB-HBM3".
    pub gpu_product: Option<String>,
    /// standalone: more node labels the pod needs, e.g.
    /// `{ "cloud.google.com/gke-accelerator" = "nvidia-tesla-a100" }`.
    pub node_selector: Option<BTreeMap<String, String>>,
    /// standalone: plain environment variables (no secrets).
    pub env: Option<BTreeMap<String, String>>,
    /// standalone: Secret key holding the Hugging Face token, given to the
    /// server as `HF_TOKEN` through `valueFrom.secretKeyRef`.
    pub hf_token_secret: Option<RawSecretRef>,
    /// standalone: where downloaded weights are kept.
    pub model_cache: Option<RawModelCache>,
    /// standalone: CPU request, a Kubernetes quantity.
    pub cpu: Option<String>,
    /// standalone: memory request, a Kubernetes quantity.
    pub memory: Option<String>,
    /// helm / existing: base URL of the gateway to wait for and record.
    pub url: Option<String>,
    /// helm: the releases to install, in order.
    pub chart: Option<Vec<RawChart>>,
}

/// A key of a Kubernetes Secret: `{ name, key }`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecretRef {
    /// Secret name (in the serving namespace).
    pub name: Option<String>,
    /// Key inside the Secret.
    pub key: Option<String>,
}

/// `[serving.model_cache]`: one of `pvc`, `empty_dir` or `host_path`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawModelCache {
    /// An existing PersistentVolumeClaim (weights survive redeploys).
    pub pvc: Option<String>,
    /// A pod-local emptyDir of at most this size, e.g. "200Gi".
    pub empty_dir: Option<String>,
    /// A directory on the node.
    pub host_path: Option<String>,
    /// Mount path. Default "/root/.cache/huggingface".
    pub mount_path: Option<String>,
}

/// `[[serving.chart]]`: one `helm upgrade --install`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawChart {
    /// Release name. Required.
    pub release: Option<String>,
    /// Chart: a name in `repo`, an `oci://` reference or a local path. Required.
    pub chart: Option<String>,
    /// Chart repository URL (`--repo`).
    pub repo: Option<String>,
    /// Chart version (`--version`).
    pub version: Option<String>,
    /// Values files (`--values`), relative to the plan file.
    pub values: Option<Vec<PathBuf>>,
    /// Single values (`--set key=value`); never secrets.
    pub set: Option<BTreeMap<String, String>>,
}

/// Validated `[serving]`: what defines the serving stack of a run (or of a
/// sweep cell).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingSpec {
    /// Namespace of the stack.
    pub namespace: String,
    /// Readiness wait.
    pub readiness_timeout: Duration,
    /// Leave the stack up after the run.
    pub keep: bool,
    /// What is deployed.
    pub method: Method,
}

/// How the stack comes to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// A Deployment + Service applied through the Kubernetes API.
    Standalone(Box<Standalone>),
    /// Helm releases, then the gateway at `url`.
    Helm {
        /// Releases in install order.
        charts: Vec<Chart>,
        /// Gateway base URL.
        url: String,
    },
    /// A running gateway: inspected and recorded, never changed.
    Existing {
        /// Gateway base URL.
        url: String,
    },
}

/// What the container runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// `vllm serve`-style arguments: `--model M --port P`.
    Vllm,
    /// The stampede simulator: `--listen 0.0.0.0:P --model M`.
    Simulator,
}

/// Validated standalone settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standalone {
    /// Deployment and Service name.
    pub name: String,
    /// Server kind.
    pub server: ServerKind,
    /// Container image.
    pub image: String,
    /// Model served.
    pub model: String,
    /// Extra arguments.
    pub args: Vec<String>,
    /// Port.
    pub port: u16,
    /// GPUs per pod.
    pub gpus: u32,
    /// Node selector (includes `nvidia.com/gpu.product` from `gpu_product`).
    pub node_selector: BTreeMap<String, String>,
    /// Plain environment.
    pub env: BTreeMap<String, String>,
    /// Hugging Face token reference.
    pub hf_token_secret: Option<SecretRef>,
    /// Model cache volume.
    pub model_cache: Option<ModelCache>,
    /// CPU request.
    pub cpu: Option<String>,
    /// Memory request.
    pub memory: Option<String>,
}

/// A key of a Secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRef {
    /// Secret name.
    pub name: String,
    /// Key.
    pub key: String,
}

/// Where weights are cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelCache {
    /// The volume.
    pub source: CacheSource,
    /// Mount path in the container.
    pub mount_path: String,
}

/// Volume kind of the model cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheSource {
    /// PersistentVolumeClaim name.
    Pvc(String),
    /// emptyDir with a size limit.
    EmptyDir(String),
    /// hostPath directory.
    HostPath(String),
}

/// A validated Helm release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    /// Release name.
    pub release: String,
    /// Chart reference.
    pub chart: String,
    /// Repository URL.
    pub repo: Option<String>,
    /// Version.
    pub version: Option<String>,
    /// Values files, resolved against the plan's directory.
    pub values: Vec<PathBuf>,
    /// `--set` values.
    pub set: BTreeMap<String, String>,
}

impl ServingSpec {
    /// Base URL of the server: the standalone Service's cluster DNS name,
    /// or the gateway URL.
    pub fn base_url(&self) -> String {
        match &self.method {
            Method::Standalone(s) => format!("http://{}.{}.svc:{}", s.name, self.namespace, s.port),
            Method::Helm { url, .. } | Method::Existing { url } => url.clone(),
        }
    }

    /// The model a standalone server serves (the target's default model).
    pub fn model(&self) -> Option<&str> {
        match &self.method {
            Method::Standalone(s) => Some(&s.model),
            _ => None,
        }
    }

    /// The method's name as written in plans.
    pub fn method_name(&self) -> &'static str {
        match self.method {
            Method::Standalone(_) => "standalone",
            Method::Helm { .. } => "helm",
            Method::Existing { .. } => "existing",
        }
    }
}

/// Whether going from `prev` to `next` needs the stack torn down and deployed
/// again: true when a stack axis differs — the method, namespace, model,
/// image, server kind, arguments, port, GPUs, node selector, environment,
/// cache or charts. Readiness timeout and `keep` are not stack axes, and
/// load levels are not part of a [`ServingSpec`] at all.
pub fn stack_changed(prev: &ServingSpec, next: &ServingSpec) -> bool {
    prev.namespace != next.namespace || prev.method != next.method
}

fn invalid(path: &Path, key: &str, value: impl std::fmt::Debug, reason: &str) -> PlanError {
    invalid_shown(path, key, format!("{value:?}"), reason)
}

/// `[[serving.chart]]` in an error: their releases only (`set` values may
/// be secrets).
fn charts_shown(charts: Option<&[RawChart]>) -> String {
    let releases: Vec<String> = charts
        .unwrap_or_default()
        .iter()
        .map(|c| format!("{:?}", c.release.as_deref().unwrap_or("")))
        .collect();
    crate::quote::excerpt(&format!("(releases {})", releases.join(", "))).into_owned()
}

/// [`invalid`] for a value already shown as written.
fn invalid_shown(path: &Path, key: &str, value: String, reason: &str) -> PlanError {
    PlanError::Invalid {
        path: path.to_path_buf(),
        key: format!("serving.{key}"),
        value,
        reason: reason.to_string(),
    }
}

fn missing(path: &Path, key: &str, reason: &str) -> PlanError {
    PlanError::Invalid {
        path: path.to_path_buf(),
        key: format!("serving.{key}"),
        value: "(missing)".to_string(),
        reason: reason.to_string(),
    }
}

fn no_space(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn http_url(
    path: &Path,
    key: &str,
    url: Option<&String>,
    method: &str,
) -> Result<String, PlanError> {
    let Some(url) = url else {
        return Err(missing(
            path,
            key,
            &format!("method \"{method}\" needs the gateway's base URL"),
        ));
    };
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() > "https://".len()
        && no_space(url);
    if !ok {
        return Err(invalid(
            path,
            key,
            url,
            "expected an http:// or https:// URL",
        ));
    }
    if let Some(reason) = crate::base_url::v1_problem(url) {
        return Err(invalid(path, key, url, &reason));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Check `[serving]`; `default_namespace` is `kubernetes.namespace` (or
/// "stampede"), `path` names the plan in errors and anchors values files.
pub fn validate(
    path: &Path,
    raw: &RawServing,
    default_namespace: &str,
) -> Result<ServingSpec, PlanError> {
    let namespace = raw
        .namespace
        .clone()
        .unwrap_or_else(|| default_namespace.to_string());
    if !is_dns_label(&namespace) {
        return Err(invalid(
            path,
            "namespace",
            &namespace,
            "not a namespace name",
        ));
    }
    let readiness_timeout = raw
        .readiness_timeout
        .as_ref()
        .map_or(DEFAULT_READINESS_TIMEOUT, HumanDuration::get);
    if let (true, Some(written)) = (readiness_timeout.is_zero(), &raw.readiness_timeout) {
        return Err(invalid_shown(
            path,
            "readiness_timeout",
            written.shown(),
            "must be longer than zero",
        ));
    }
    let method = method(path, raw)?;
    Ok(ServingSpec {
        namespace,
        readiness_timeout,
        keep: raw.keep.unwrap_or(false),
        method,
    })
}

/// `method` and the keys that belong to it; keys of another method are refused.
fn method(path: &Path, raw: &RawServing) -> Result<Method, PlanError> {
    let method_name = raw.method.as_deref();
    let standalone_only: [(&str, bool); 14] = [
        ("server", raw.server.is_some()),
        ("name", raw.name.is_some()),
        ("image", raw.image.is_some()),
        ("model", raw.model.is_some()),
        ("args", raw.args.is_some()),
        ("port", raw.port.is_some()),
        ("gpus", raw.gpus.is_some()),
        ("gpu_product", raw.gpu_product.is_some()),
        ("node_selector", raw.node_selector.is_some()),
        ("env", raw.env.is_some()),
        ("hf_token_secret", raw.hf_token_secret.is_some()),
        ("model_cache", raw.model_cache.is_some()),
        ("cpu", raw.cpu.is_some()),
        ("memory", raw.memory.is_some()),
    ];
    let refuse_standalone_keys = |method: &str| -> Result<(), PlanError> {
        match standalone_only.iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(invalid_shown(
                path,
                key,
                // Environment values may be secrets.
                if *key == "env" {
                    "(values not shown)".to_string()
                } else {
                    crate::quote::written_key(raw, key)
                },
                &format!("only method \"standalone\" uses it, not \"{method}\""),
            )),
            None => Ok(()),
        }
    };
    match method_name {
        Some("standalone") => {
            if raw.url.is_some() || raw.chart.is_some() {
                let (key, value) = match (&raw.url, &raw.chart) {
                    (Some(url), _) => ("url", crate::quote::written(url)),
                    (None, charts) => ("chart", charts_shown(charts.as_deref())),
                };
                return Err(invalid_shown(
                    path,
                    key,
                    value,
                    "method \"standalone\" deploys its own Service; `url` and `chart` belong to \"helm\" / \"existing\"",
                ));
            }
            Ok(Method::Standalone(Box::new(validate_standalone(
                path, raw,
            )?)))
        }
        Some("helm") => {
            refuse_standalone_keys("helm")?;
            let charts = raw.chart.as_deref().unwrap_or_default();
            if charts.is_empty() {
                return Err(missing(
                    path,
                    "chart",
                    "method \"helm\" needs at least one [[serving.chart]]",
                ));
            }
            let charts = charts
                .iter()
                .enumerate()
                .map(|(i, c)| validate_chart(path, i, c))
                .collect::<Result<Vec<_>, _>>()?;
            let url = http_url(path, "url", raw.url.as_ref(), "helm")?;
            Ok(Method::Helm { charts, url })
        }
        Some("existing") => {
            refuse_standalone_keys("existing")?;
            if raw.chart.is_some() {
                return Err(invalid_shown(
                    path,
                    "chart",
                    charts_shown(raw.chart.as_deref()),
                    "only method \"helm\" installs charts",
                ));
            }
            Ok(Method::Existing {
                url: http_url(path, "url", raw.url.as_ref(), "existing")?,
            })
        }
        Some(other) => Err(invalid(
            path,
            "method",
            other,
            "expected \"standalone\", \"helm\" or \"existing\"",
        )),
        None => Err(missing(
            path,
            "method",
            "give \"standalone\", \"helm\" or \"existing\"",
        )),
    }
}

fn validate_standalone(path: &Path, raw: &RawServing) -> Result<Standalone, PlanError> {
    let name = raw.name.clone().unwrap_or_else(|| DEFAULT_NAME.to_string());
    if !is_dns_label(&name) {
        return Err(invalid(
            path,
            "name",
            &name,
            "not a Deployment/Service name (DNS label)",
        ));
    }
    let server = match raw.server.as_deref().unwrap_or("vllm") {
        "vllm" => ServerKind::Vllm,
        "simulator" => ServerKind::Simulator,
        other => {
            return Err(invalid(
                path,
                "server",
                other,
                "expected \"vllm\" or \"simulator\"",
            ));
        }
    };
    let image = raw.image.clone().ok_or_else(|| {
        missing(
            path,
            "image",
            "method \"standalone\" needs the server's container image",
        )
    })?;
    if !no_space(&image) {
        return Err(invalid(
            path,
            "image",
            &image,
            "must be an image reference without spaces",
        ));
    }
    let model = raw.model.clone().ok_or_else(|| {
        missing(
            path,
            "model",
            "method \"standalone\" needs the model to serve",
        )
    })?;
    if !no_space(&model) {
        return Err(invalid(
            path,
            "model",
            &model,
            "must be a model id without spaces",
        ));
    }
    let args = raw.args.clone().unwrap_or_default();
    check_args(path, server, &args)?;
    let port = raw.port.unwrap_or(DEFAULT_PORT);
    if port == 0 {
        return Err(invalid(path, "port", 0, "must be a port number (1-65535)"));
    }
    let gpus = raw.gpus.unwrap_or(0);
    let node_selector = node_selector(path, raw, gpus)?;
    let env = raw.env.clone().unwrap_or_default();
    check_env(path, &env)?;
    let hf_token_secret = raw
        .hf_token_secret
        .as_ref()
        .map(|s| secret_ref(path, s))
        .transpose()?;
    let model_cache = raw
        .model_cache
        .as_ref()
        .map(|c| validate_cache(path, c))
        .transpose()?;
    for (key, q) in [("cpu", &raw.cpu), ("memory", &raw.memory)] {
        if let Some(q) = q
            && !is_quantity(q)
        {
            return Err(invalid(
                path,
                key,
                q,
                "not a Kubernetes quantity (e.g. \"8\", \"32Gi\")",
            ));
        }
    }
    Ok(Standalone {
        name,
        server,
        image,
        model,
        args,
        port,
        gpus,
        node_selector,
        env,
        hf_token_secret,
        model_cache,
        cpu: raw.cpu.clone(),
        memory: raw.memory.clone(),
    })
}

/// Extra server arguments: none that stampede sets itself, no control characters.
fn check_args(path: &Path, server: ServerKind, args: &[String]) -> Result<(), PlanError> {
    for (i, a) in args.iter().enumerate() {
        let reserved = match server {
            ServerKind::Vllm => ["--model", "--port"],
            ServerKind::Simulator => ["--model", "--listen"],
        };
        if reserved
            .iter()
            .any(|r| a == r || a.starts_with(&format!("{r}=")))
        {
            return Err(invalid(
                path,
                &format!("args[{i}]"),
                a,
                "set by stampede from `model` and `port`; remove it",
            ));
        }
        if a.chars().any(char::is_control) {
            return Err(invalid(
                path,
                &format!("args[{i}]"),
                a,
                "contains a control character",
            ));
        }
    }
    Ok(())
}

/// `node_selector`, with `gpu_product` added as the GPU product label.
fn node_selector(
    path: &Path,
    raw: &RawServing,
    gpus: u32,
) -> Result<BTreeMap<String, String>, PlanError> {
    let mut node_selector = raw.node_selector.clone().unwrap_or_default();
    for (k, v) in &node_selector {
        if !is_label_key(k) || !is_label_value(v) {
            return Err(invalid(
                path,
                &format!("node_selector.{k:?}"),
                format!("{k}={v}"),
                "not a label key and value",
            ));
        }
    }
    if let Some(product) = &raw.gpu_product {
        if !is_label_value(product) || product.is_empty() {
            return Err(invalid(
                path,
                "gpu_product",
                product,
                "not a label value, e.g. \"NVIDIA-H100-80GB-HBM3\"",
            ));
        }
        if gpus == 0 {
            return Err(invalid(
                path,
                "gpu_product",
                product,
                "names a GPU type, so set `gpus` too",
            ));
        }
        node_selector.insert(GPU_PRODUCT_LABEL.to_string(), product.clone());
    }
    Ok(node_selector)
}

/// Plain environment variables: valid names, none that looks secret.
fn check_env(path: &Path, env: &BTreeMap<String, String>) -> Result<(), PlanError> {
    for name in env.keys() {
        if !crate::validate::is_env_name(name) {
            return Err(invalid(
                path,
                &format!("env.{name}"),
                name,
                "not an environment variable name",
            ));
        }
        let upper = name.to_ascii_uppercase();
        if name == HF_TOKEN_ENV || SECRET_MARKERS.iter().any(|m| upper.contains(m)) {
            return Err(invalid(
                path,
                &format!("env.{name}"),
                "(value not shown)",
                "looks like a secret: plans hold no secret values; put it in a Secret and use `hf_token_secret = { name, key }`",
            ));
        }
    }
    Ok(())
}

/// `hf_token_secret = { name, key }`: a Secret key, never a token.
fn secret_ref(path: &Path, s: &RawSecretRef) -> Result<SecretRef, PlanError> {
    let name = s
        .name
        .clone()
        .ok_or_else(|| missing(path, "hf_token_secret.name", "the Secret's name"))?;
    if !is_dns_subdomain(&name) || name.is_empty() {
        return Err(invalid(
            path,
            "hf_token_secret.name",
            &name,
            "not a Secret name",
        ));
    }
    let key = s
        .key
        .clone()
        .ok_or_else(|| missing(path, "hf_token_secret.key", "the key inside the Secret"))?;
    let key_ok = !key.is_empty()
        && key.len() <= 253
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !key_ok {
        return Err(invalid(
            path,
            "hf_token_secret.key",
            &key,
            "not a Secret key",
        ));
    }
    Ok(SecretRef { name, key })
}

fn validate_cache(path: &Path, c: &RawModelCache) -> Result<ModelCache, PlanError> {
    let source = match (&c.pvc, &c.empty_dir, &c.host_path) {
        (Some(p), None, None) if is_dns_subdomain(p) && !p.is_empty() => {
            CacheSource::Pvc(p.clone())
        }
        (Some(p), None, None) => {
            return Err(invalid(
                path,
                "model_cache.pvc",
                p,
                "not a PersistentVolumeClaim name",
            ));
        }
        (None, Some(size), None) if is_quantity(size) => CacheSource::EmptyDir(size.clone()),
        (None, Some(size), None) => {
            return Err(invalid(
                path,
                "model_cache.empty_dir",
                size,
                "give the size limit as a quantity, e.g. \"200Gi\"",
            ));
        }
        (None, None, Some(dir)) if dir.starts_with('/') && no_space(dir) => {
            CacheSource::HostPath(dir.clone())
        }
        (None, None, Some(dir)) => {
            return Err(invalid(
                path,
                "model_cache.host_path",
                dir,
                "must be an absolute path",
            ));
        }
        _ => {
            return Err(invalid_shown(
                path,
                "model_cache",
                crate::quote::written(c),
                "give exactly one of `pvc`, `empty_dir` or `host_path`",
            ));
        }
    };
    let mount_path = c
        .mount_path
        .clone()
        .unwrap_or_else(|| DEFAULT_CACHE_MOUNT.to_string());
    if !mount_path.starts_with('/') || !no_space(&mount_path) {
        return Err(invalid(
            path,
            "model_cache.mount_path",
            &mount_path,
            "must be an absolute path",
        ));
    }
    Ok(ModelCache { source, mount_path })
}

fn validate_chart(path: &Path, i: usize, c: &RawChart) -> Result<Chart, PlanError> {
    let key = |k: &str| format!("chart[{i}].{k}");
    let release = c
        .release
        .clone()
        .ok_or_else(|| missing(path, &key("release"), "the Helm release name"))?;
    if !is_dns_label(&release) || release.len() > 53 {
        return Err(invalid(
            path,
            &key("release"),
            &release,
            "not a Helm release name (DNS label, at most 53)",
        ));
    }
    let chart = c.chart.clone().ok_or_else(|| {
        missing(
            path,
            &key("chart"),
            "a chart name, oci:// reference or path",
        )
    })?;
    // Every value becomes one argv entry; none may start like a flag.
    for (k, v) in [
        ("chart", Some(&chart)),
        ("repo", c.repo.as_ref()),
        ("version", c.version.as_ref()),
    ] {
        if let Some(v) = v
            && (!no_space(v) || v.starts_with('-'))
        {
            return Err(invalid(
                path,
                &key(k),
                v,
                "must be non-empty, without spaces, not starting with '-'",
            ));
        }
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let values = c
        .values
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|v| if v.is_absolute() { v } else { base.join(v) })
        .collect();
    let set = c.set.clone().unwrap_or_default();
    for k in set.keys() {
        if k.is_empty() || k.starts_with('-') || k.contains(['=', ' ', ',']) {
            return Err(invalid(
                path,
                &key(&format!("set.{k}")),
                k,
                "not a Helm value path",
            ));
        }
        let upper = k.to_ascii_uppercase();
        if SECRET_MARKERS.iter().any(|m| upper.contains(m)) {
            return Err(invalid(
                path,
                &key(&format!("set.{k}")),
                "(value not shown)",
                "looks like a secret: command lines are visible to every process on the host; reference a Secret from a values file instead",
            ));
        }
    }
    Ok(Chart {
        release,
        chart,
        repo: c.repo.clone(),
        version: c.version.clone(),
        values,
        set,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<ServingSpec, String> {
        let raw: RawServing = toml::from_str(text).map_err(|e| e.to_string())?;
        validate(Path::new("dir/p.toml"), &raw, "bench").map_err(|e| e.to_string())
    }

    const VLLM: &str = r#"
method = "standalone"
image = "vllm/vllm-openai:v0.11.0"
model = "meta-llama/Llama-3.1-8B-Instruct"
args = ["--max-model-len", "8192"]
gpus = 1
gpu_product = "NVIDIA-A100-SXM4-80GB"
hf_token_secret = { name = "hf", key = "token" }
model_cache = { pvc = "hf-cache" }
"#;

    #[test]
    fn standalone_defaults_and_selector() {
        let s = check(VLLM).unwrap();
        assert_eq!(s.namespace, "bench");
        assert_eq!(s.base_url(), "http://stampede-serving.bench.svc:8000");
        assert_eq!(s.readiness_timeout, DEFAULT_READINESS_TIMEOUT);
        let Method::Standalone(st) = &s.method else {
            panic!("standalone")
        };
        assert_eq!(st.server, ServerKind::Vllm);
        assert_eq!(st.node_selector[GPU_PRODUCT_LABEL], "NVIDIA-A100-SXM4-80GB");
        assert_eq!(
            st.model_cache,
            Some(ModelCache {
                source: CacheSource::Pvc("hf-cache".into()),
                mount_path: DEFAULT_CACHE_MOUNT.into()
            })
        );
        assert_eq!(s.model(), Some("meta-llama/Llama-3.1-8B-Instruct"));
    }

    #[test]
    fn stack_axes_decide_a_redeploy() {
        let a = check(VLLM).unwrap();
        let mut same = check(&format!("{VLLM}readiness_timeout = \"5m\"\nkeep = true\n")).unwrap();
        assert!(
            !stack_changed(&a, &same),
            "timeout and keep are not stack axes"
        );
        same.keep = false;
        for (from, to) in [
            (
                "meta-llama/Llama-3.1-8B-Instruct",
                "meta-llama/Llama-3.2-3B-Instruct",
            ),
            ("v0.11.0", "v0.10.2"),
            ("\"8192\"", "\"4096\""),
            ("gpus = 1", "gpus = 2"),
            ("NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3"),
        ] {
            let b = check(&VLLM.replace(from, to)).unwrap();
            assert!(stack_changed(&a, &b), "{from} -> {to}");
        }
    }

    #[test]
    fn helm_and_existing() {
        let s = check(
            r#"
method = "helm"
url = "http://gw.llm-d.svc:80/"
[[chart]]
release = "infra"
chart = "llm-d-infra"
repo = "https://example.invalid/charts"
version = "1.3.0"
values = ["values/infra.yaml"]
set = { "gateway.className" = "istio" }
"#,
        )
        .unwrap();
        let Method::Helm { charts, url } = &s.method else {
            panic!("helm")
        };
        assert_eq!(url, "http://gw.llm-d.svc:80");
        assert_eq!(charts[0].values, [PathBuf::from("dir/values/infra.yaml")]);
        let s = check("method = \"existing\"\nurl = \"http://10.0.0.1:8000\"").unwrap();
        assert_eq!(s.base_url(), "http://10.0.0.1:8000");
    }

    #[test]
    fn the_target_defaults_to_the_stack() {
        let p = Path::new("p.toml");
        let plan = |extra: &str| {
            let text = format!(
                "[serving]\n{VLLM}{extra}\n[[phase]]\nkind = \"baseline\"\nduration = \"1s\"\n"
            );
            crate::parse(&text, p)
                .and_then(|r| r.validate_without_files(p))
                .unwrap()
        };
        let t = plan("").target;
        assert_eq!(
            t.endpoint,
            crate::Endpoint::Url("http://stampede-serving.stampede.svc:8000".into())
        );
        assert_eq!(t.model, "meta-llama/Llama-3.1-8B-Instruct");
        let t = plan("[target]\nurl = \"http://127.0.0.1:8000\"\nmodel = \"alias\"").target;
        assert_eq!(
            t.endpoint,
            crate::Endpoint::Url("http://127.0.0.1:8000".into())
        );
        assert_eq!(t.model, "alias", "the plan's own target wins");
    }

    #[test]
    fn errors_name_the_key_and_value() {
        for (text, key, value) in [
            ("method = \"k8s\"", "serving.method", "k8s"),
            ("", "serving.method", "(missing)"),
            (
                "method = \"standalone\"\nmodel = \"m\"",
                "serving.image",
                "(missing)",
            ),
            (
                "method = \"standalone\"\nimage = \"i\"",
                "serving.model",
                "(missing)",
            ),
            (
                "method = \"standalone\"\nimage = \"i\"\nmodel = \"m\"\nenv = { HF_TOKEN = \"hf_abc\" }",
                "serving.env.HF_TOKEN",
                "(value not shown)",
            ),
            (
                "method = \"standalone\"\nimage = \"i\"\nmodel = \"m\"\nargs = [\"--port\", \"9\"]",
                "serving.args[0]",
                "--port",
            ),
            (
                "method = \"standalone\"\nimage = \"i\"\nmodel = \"m\"\ngpu_product = \"X\"",
                "serving.gpu_product",
                "X",
            ),
            (
                "method = \"standalone\"\nimage = \"i\"\nmodel = \"m\"\nmodel_cache = { pvc = \"a\", empty_dir = \"1Gi\" }",
                "serving.model_cache",
                "empty_dir = \"1Gi\", pvc = \"a\" }:",
            ),
            (
                "method = \"standalone\"\nimage = \"i\"\nmodel = \"m\"\nserver = \"tgi\"",
                "serving.server",
                "tgi",
            ),
            ("method = \"existing\"", "serving.url", "(missing)"),
            (
                "method = \"existing\"\nurl = \"gw:80\"",
                "serving.url",
                "gw:80",
            ),
            (
                "method = \"existing\"\nurl = \"http://gw\"\nimage = \"i\"",
                "serving.image",
                "= \"i\":",
            ),
            (
                "method = \"existing\"\nurl = \"http://gw:80/v1/\"",
                "serving.url",
                "must not end in /v1 — stampede appends /v1/chat/completions; use \"http://gw:80\"",
            ),
            (
                "method = \"helm\"\nurl = \"http://gw\"",
                "serving.chart",
                "(missing)",
            ),
            (
                "method = \"helm\"\nurl = \"http://gw\"\n[[chart]]\nrelease = \"r\"\nchart = \"c\"\nset = { \"hf.token\" = \"x\" }",
                "serving.chart[0].set.hf.token",
                "(value not shown)",
            ),
            (
                "method = \"helm\"\nurl = \"http://gw\"\n[[chart]]\nrelease = \"R\"\nchart = \"c\"",
                "serving.chart[0].release",
                "R",
            ),
        ] {
            let e = check(text).unwrap_err();
            assert!(e.contains(key) && e.contains(value), "{text}: {e}");
            assert!(!e.contains("hf_abc"), "no secret value in errors: {e}");
        }
    }
}

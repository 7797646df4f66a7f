//! `[kubernetes]`: where and how the controller deploys agents through the
//! Kubernetes API, and what it looks up there for the run manifest.
//!
//! Kept apart from the plan's own validation because the same settings are
//! used without a plan (`controller deploy` / `teardown` with flags only),
//! and because the Kubernetes naming rules (DNS labels, label keys, quantities) are checked
//! here once, with errors naming the key and the value.

use crate::PlanError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Namespace used when none is given.
pub const DEFAULT_NAMESPACE: &str = "stampede";
/// Secret holding the agents' mTLS files and join token, by default.
pub const DEFAULT_TLS_SECRET: &str = "stampede-mtls-agent";
/// Node label that selects agent nodes by default.
pub const DEFAULT_NODE_LABEL: (&str, &str) = ("stampede.dev/agent", "true");
/// Default CPU request of an agent container.
pub const DEFAULT_CPU: &str = "500m";
/// Default memory request of an agent container.
pub const DEFAULT_MEMORY: &str = "256Mi";

/// `[kubernetes]` as written in the plan.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawKubernetes {
    /// kubeconfig context to use. Default: the current context, or the
    /// in-cluster configuration when the controller runs in a pod.
    pub context: Option<String>,
    /// Namespace of the agent DaemonSet, the controller Service and the plan
    /// ConfigMap. Default "stampede".
    pub namespace: Option<String>,
    /// `controller run` deploys the agent DaemonSet first and waits until one
    /// agent per eligible node has joined. Default false.
    pub deploy: Option<bool>,
    /// Agent container image. Default "stampede/agent:<controller version>".
    pub agent_image: Option<String>,
    /// Labels a node must carry to run an agent. Default
    /// `{ "stampede.dev/agent" = "true" }`.
    pub node_selector: Option<BTreeMap<String, String>>,
    /// URL the agents dial. Default
    /// "https://stampede-controller.<namespace>.svc:<agents.listen port>".
    pub controller_address: Option<String>,
    /// Secret (in `namespace`) with the agents' `ca.pem`, `agent.pem`,
    /// `agent.key` and `join-token`. Default "stampede-mtls-agent".
    pub tls_secret: Option<String>,
    /// Service of the inference gateway, "name" or "namespace/name": its
    /// address and ports are recorded in manifest.json.
    pub gateway_service: Option<String>,
    /// Resources of each agent container.
    pub resources: Option<RawResources>,
    /// Run agents as the image's user id 65532 (`runAsUser`/`runAsGroup`/`fsGroup`).
    /// Default true; false leaves the ids to the cluster, as OpenShift's `restricted-v2`
    /// SCC requires (it refuses pods that pin ids outside the namespace's range).
    pub fixed_user: Option<bool>,
}

/// `[kubernetes.resources]`: requests (and optional limits) of an agent container.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawResources {
    /// CPU request, a Kubernetes quantity. Default "500m".
    pub cpu: Option<String>,
    /// Memory request, a Kubernetes quantity. Default "256Mi".
    pub memory: Option<String>,
    /// CPU limit. Default: none.
    pub cpu_limit: Option<String>,
    /// Memory limit. Default: none.
    pub memory_limit: Option<String>,
}

/// Validated `[kubernetes]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kubernetes {
    /// kubeconfig context (`None`: current context or in-cluster).
    pub context: Option<String>,
    /// Namespace of everything stampede creates.
    pub namespace: String,
    /// Deploy agents before `controller run` and wait for them.
    pub deploy: bool,
    /// Agent container image.
    pub agent_image: String,
    /// Node labels that select agent nodes (never empty).
    pub node_selector: BTreeMap<String, String>,
    /// URL the agents dial (`None`: the controller Service's DNS name).
    pub controller_address: Option<String>,
    /// Secret with the agents' TLS files and join token.
    pub tls_secret: String,
    /// Gateway Service to record: (namespace, name).
    pub gateway_service: Option<(String, String)>,
    /// Agent container resources.
    pub resources: Resources,
    /// Pin the agents' user, group and fs-group ids (false on OpenShift).
    pub fixed_user: bool,
}

/// Validated agent container resources (Kubernetes quantities).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    /// CPU request.
    pub cpu: String,
    /// Memory request.
    pub memory: String,
    /// CPU limit.
    pub cpu_limit: Option<String>,
    /// Memory limit.
    pub memory_limit: Option<String>,
}

impl Default for Kubernetes {
    /// The settings `controller deploy` uses when neither a plan nor a flag says otherwise.
    fn default() -> Self {
        Kubernetes {
            context: None,
            namespace: DEFAULT_NAMESPACE.to_string(),
            deploy: false,
            agent_image: default_image(),
            node_selector: BTreeMap::from([(
                DEFAULT_NODE_LABEL.0.to_string(),
                DEFAULT_NODE_LABEL.1.to_string(),
            )]),
            controller_address: None,
            tls_secret: DEFAULT_TLS_SECRET.to_string(),
            gateway_service: None,
            fixed_user: true,
            resources: Resources {
                cpu: DEFAULT_CPU.to_string(),
                memory: DEFAULT_MEMORY.to_string(),
                cpu_limit: None,
                memory_limit: None,
            },
        }
    }
}

impl Kubernetes {
    /// The URL agents dial: the configured one, or the controller Service's
    /// cluster DNS name on `port`.
    pub fn controller_url(&self, service: &str, port: u16) -> String {
        self.controller_address
            .clone()
            .unwrap_or_else(|| format!("https://{service}.{}.svc:{port}", self.namespace))
    }
}

/// The agent image of this build.
pub fn default_image() -> String {
    format!("stampede/agent:{}", stampede_common::VERSION)
}

/// Whether `s` is a DNS-1123 label (namespaces, Service names): lowercase
/// letters, digits and '-', 1 to 63 characters, starting and ending alphanumeric.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` is a DNS-1123 subdomain (Secret names, label-key prefixes).
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Name part of a label key or a label value (non-empty): alphanumerics,
/// '-', '_' and '.', at most 63, starting and ending alphanumeric.
fn is_label_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Whether `s` is a label key (`[prefix/]name`).
pub fn is_label_key(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name(name),
        None => is_label_name(s),
    }
}

/// Whether `s` is a label value (may be empty).
pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_label_name(s)
}

/// Whether `s` is a Kubernetes quantity such as "500m", "1", "0.5", "256Mi", "1G".
pub fn is_quantity(s: &str) -> bool {
    const SUFFIXES: [&str; 14] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k", "M", "G", "T", "P", "E", "",
    ];
    SUFFIXES.iter().any(|suffix| {
        s.strip_suffix(suffix).is_some_and(|num| {
            let mut parts = num.splitn(2, '.');
            let whole = parts.next().unwrap_or("");
            let frac = parts.next();
            let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
            digits(whole)
                && frac.is_none_or(|f| !f.is_empty() && digits(f))
                && (!whole.is_empty() || frac.is_some())
        })
    })
}

fn invalid(path: &Path, key: &str, value: &str, reason: &str) -> PlanError {
    PlanError::Invalid {
        path: path.to_path_buf(),
        key: key.to_string(),
        value: format!("{value:?}"),
        reason: reason.to_string(),
    }
}

/// Check `[kubernetes]` (`path` names the plan in errors).
pub fn validate(path: &Path, raw: &RawKubernetes) -> Result<Kubernetes, PlanError> {
    let defaults = Kubernetes::default();
    if let Some(c) = &raw.context
        && (c.is_empty() || c.chars().any(char::is_control))
    {
        return Err(invalid(
            path,
            "kubernetes.context",
            c,
            "must name a kubeconfig context",
        ));
    }
    let namespace = raw.namespace.clone().unwrap_or(defaults.namespace);
    if !is_dns_label(&namespace) {
        return Err(invalid(
            path,
            "kubernetes.namespace",
            &namespace,
            "not a namespace name (lowercase letters, digits and '-', at most 63)",
        ));
    }
    let agent_image = raw.agent_image.clone().unwrap_or(defaults.agent_image);
    if agent_image.is_empty()
        || agent_image
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid(
            path,
            "kubernetes.agent_image",
            &agent_image,
            "must be an image reference without spaces",
        ));
    }
    let node_selector = raw.node_selector.clone().unwrap_or(defaults.node_selector);
    if node_selector.is_empty() {
        return Err(invalid(
            path,
            "kubernetes.node_selector",
            "{}",
            "must name at least one label: agents go only on selected nodes",
        ));
    }
    check_node_selector(path, &node_selector)?;
    if let Some(url) = &raw.controller_address {
        let host = url.strip_prefix("https://").unwrap_or("");
        if host.is_empty() || host.starts_with([':', '/']) || url.chars().any(char::is_whitespace) {
            return Err(invalid(
                path,
                "kubernetes.controller_address",
                url,
                "must be an https:// URL with a host (agents on a cluster dial over mTLS)",
            ));
        }
    }
    let tls_secret = raw.tls_secret.clone().unwrap_or(defaults.tls_secret);
    if !is_dns_subdomain(&tls_secret) {
        return Err(invalid(
            path,
            "kubernetes.tls_secret",
            &tls_secret,
            "not a Secret name",
        ));
    }
    let gateway_service = match &raw.gateway_service {
        None => None,
        Some(g) => {
            let (ns, name) = g.split_once('/').unwrap_or((&namespace, g));
            if !is_dns_label(ns) || !is_dns_label(name) {
                return Err(invalid(
                    path,
                    "kubernetes.gateway_service",
                    g,
                    "write \"name\" or \"namespace/name\" of a Service",
                ));
            }
            Some((ns.to_string(), name.to_string()))
        }
    };
    let resources = resources(path, raw.resources.clone().unwrap_or_default())?;
    Ok(Kubernetes {
        context: raw.context.clone(),
        namespace,
        deploy: raw.deploy.unwrap_or(false),
        agent_image,
        node_selector,
        controller_address: raw.controller_address.clone(),
        tls_secret,
        gateway_service,
        resources,
        fixed_user: raw.fixed_user.unwrap_or(true),
    })
}

/// `node_selector`: label keys and values.
fn check_node_selector(
    path: &Path,
    node_selector: &BTreeMap<String, String>,
) -> Result<(), PlanError> {
    for (k, v) in node_selector {
        if !is_label_key(k) {
            return Err(invalid(
                path,
                &format!("kubernetes.node_selector.{k:?}"),
                k,
                "not a label key ([prefix/]name, name at most 63 alphanumerics, '-', '_', '.')",
            ));
        }
        if !is_label_value(v) {
            return Err(invalid(
                path,
                &format!("kubernetes.node_selector.{k:?}"),
                v,
                "not a label value (at most 63 alphanumerics, '-', '_', '.')",
            ));
        }
    }
    Ok(())
}

/// `[kubernetes.resources]` of the agent pods, with the defaults.
fn resources(path: &Path, r: RawResources) -> Result<Resources, PlanError> {
    let defaults = Kubernetes::default().resources;
    let quantity = |key: &str, v: Option<String>| -> Result<Option<String>, PlanError> {
        match v {
            Some(q) if !is_quantity(&q) => Err(invalid(
                path,
                &format!("kubernetes.resources.{key}"),
                &q,
                "not a Kubernetes quantity (e.g. \"500m\", \"2\", \"256Mi\", \"1Gi\")",
            )),
            v => Ok(v),
        }
    };
    Ok(Resources {
        cpu: quantity("cpu", r.cpu)?.unwrap_or(defaults.cpu),
        memory: quantity("memory", r.memory)?.unwrap_or(defaults.memory),
        cpu_limit: quantity("cpu_limit", r.cpu_limit)?,
        memory_limit: quantity("memory_limit", r.memory_limit)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Kubernetes, String> {
        let raw: RawKubernetes = toml::from_str(text).map_err(|e| e.to_string())?;
        validate(Path::new("p.toml"), &raw).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_the_shared_names() {
        let k = check("").unwrap();
        assert_eq!(k, Kubernetes::default());
        assert_eq!(k.namespace, "stampede");
        assert_eq!(k.tls_secret, "stampede-mtls-agent");
        assert_eq!(k.node_selector["stampede.dev/agent"], "true");
        assert_eq!(
            k.controller_url("stampede-controller", 7600),
            "https://stampede-controller.stampede.svc:7600"
        );
        assert!(!k.deploy);
    }

    #[test]
    fn gateway_service_takes_an_optional_namespace() {
        let k = check("namespace = \"bench\"\ngateway_service = \"gw\"").unwrap();
        assert_eq!(k.gateway_service, Some(("bench".into(), "gw".into())));
        let k = check("gateway_service = \"llm-d/infra-gateway\"").unwrap();
        assert_eq!(
            k.gateway_service,
            Some(("llm-d".into(), "infra-gateway".into()))
        );
    }

    #[test]
    fn errors_name_the_key_and_value() {
        for (text, key, value) in [
            ("namespace = \"Bench\"", "kubernetes.namespace", "Bench"),
            (
                "node_selector = { \"bad key!\" = \"x\" }",
                "kubernetes.node_selector",
                "bad key!",
            ),
            (
                "node_selector = { \"pool\" = \"a b\" }",
                "kubernetes.node_selector",
                "a b",
            ),
            ("node_selector = {}", "kubernetes.node_selector", "{}"),
            (
                "controller_address = \"http://c:7600\"",
                "kubernetes.controller_address",
                "http://c:7600",
            ),
            (
                "resources = { cpu = \"lots\" }",
                "kubernetes.resources.cpu",
                "lots",
            ),
            (
                "resources = { memory_limit = \"1.5.2Gi\" }",
                "kubernetes.resources.memory_limit",
                "1.5.2Gi",
            ),
            (
                "gateway_service = \"a/b/c\"",
                "kubernetes.gateway_service",
                "a/b/c",
            ),
            ("tls_secret = \"\"", "kubernetes.tls_secret", ""),
            ("agent_image = \"a b\"", "kubernetes.agent_image", "a b"),
            ("context = \"\"", "kubernetes.context", ""),
        ] {
            let e = check(text).unwrap_err();
            assert!(e.contains(key) && e.contains(value), "{text}: {e}");
        }
        assert!(check("namespaces = \"x\"").is_err(), "unknown keys refused");
    }

    #[test]
    fn deploy_needs_remote_agents_over_mtls() {
        let plan = |agents: &str| {
            let text = format!(
                "[agents]\n{agents}\n[kubernetes]\ndeploy = true\n[target]\nurl = \"http://gw:80\"\nmodel = \"m\"\n[[phase]]\nkind = \"baseline\"\nduration = \"1s\"\n"
            );
            let p = Path::new("p.toml");
            crate::parse(&text, p)
                .and_then(|r| r.validate_without_files(p))
                .map_err(|e| e.to_string())
        };
        let e = plan("local = 2").unwrap_err();
        assert!(e.contains("`agents.local` = 2"), "{e}");
        let e = plan("").unwrap_err();
        assert!(e.contains("`agents.tls` = (missing)"), "{e}");
    }

    #[test]
    fn quantities() {
        for ok in ["1", "500m", "0.5", "256Mi", "1Gi", "2G", ".5"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "m", "1.", "1.2.3", "-1", "1 Gi", "1gi", "Mi"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn label_keys_and_values() {
        assert!(is_label_key("nvidia.com/gpu.product"));
        assert!(is_label_key("pool"));
        assert!(!is_label_key("Bad_Prefix/x"));
        assert!(!is_label_key("/x"));
        assert!(is_label_value(""));
        assert!(is_label_value("NVIDIA-H100-80GB-HBM3"));
        assert!(!is_label_value("-x"));
    }
}

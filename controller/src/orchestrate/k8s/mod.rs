//! The controller's side of the Kubernetes API: deploy and tear down the
//! agent DaemonSet (with the controller Service and the plan ConfigMap), find
//! the nodes that should run an agent and wait for each to join, and look up
//! node labels and the gateway's address for the run manifest.
//!
//! The controller is the only component with API credentials: agents get no
//! token and no RBAC, and the mTLS Secret is referenced by name, never read.
//! The object names and labels here are the ones `manifests/` uses, so
//! objects from either source are the same objects.

pub mod deploy;
pub mod discovery;
pub mod join;
pub mod objects;

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
#[cfg(test)]
pub(crate) mod tests;

use stampede_plan::kubernetes::Kubernetes;

/// Name of the agent DaemonSet.
pub const AGENT_DAEMONSET: &str = "stampede-agent";
/// Name of the Service agents dial.
pub const CONTROLLER_SERVICE: &str = "stampede-controller";
/// Name of the ConfigMap holding the plan.
pub const PLAN_CONFIGMAP: &str = "stampede-plan";
/// Key of the plan inside [`PLAN_CONFIGMAP`].
pub const PLAN_KEY: &str = "plan.toml";
/// ServiceAccount of the agent pods (no token mounted, no Role).
pub const AGENT_SERVICE_ACCOUNT: &str = "stampede-agent";
/// Field manager of server-side apply.
pub const FIELD_MANAGER: &str = "stampede-controller";

/// `app.kubernetes.io/name` of everything stampede runs.
pub const LABEL_NAME: (&str, &str) = ("app.kubernetes.io/name", "stampede");
/// Label key telling agents from the controller.
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
/// The label teardown requires before deleting an object.
pub const LABEL_MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "stampede");

/// Node label: GPU product (NVIDIA GPU feature discovery).
pub const NODE_GPU_PRODUCT: &str = "nvidia.com/gpu.product";
/// Node label: zone.
pub const NODE_ZONE: &str = "topology.kubernetes.io/zone";
/// Node label: instance type.
pub const NODE_INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";

/// Errors talking to the Kubernetes API.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    /// The kubeconfig or the named context could not be loaded.
    #[error("kubeconfig context {context}: {source}")]
    Kubeconfig {
        /// The context asked for, or "(current)".
        context: String,
        /// Cause.
        source: kube::config::KubeconfigError,
    },
    /// Neither a kubeconfig nor an in-cluster configuration was found.
    #[error("no Kubernetes configuration: {0}")]
    NoConfig(#[source] kube::config::InferConfigError),
    /// The client could not be built from the configuration.
    #[error("cannot build the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// An API call failed.
    #[error("cannot {action} {kind} {name:?} in namespace {namespace:?}: {source}")]
    Api {
        /// "apply", "get", "delete", "list".
        action: &'static str,
        /// Object kind.
        kind: &'static str,
        /// Namespace ("" for cluster objects).
        namespace: String,
        /// Object name (or the selector of a list).
        name: String,
        /// Cause.
        source: kube::Error,
    },
    /// The mTLS Secret the agents mount does not exist.
    #[error(
        "Secret {name:?} not found in namespace {namespace:?}: create it with the agents' ca.pem, agent.pem, agent.key and join-token (`controller certs`, then `kubectl create secret generic {name} --from-file=...`), or set kubernetes.tls_secret"
    )]
    MissingSecret {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
    },
    /// Fewer eligible nodes than the plan asks for.
    #[error(
        "{} eligible node(s) match {selector} (Ready, schedulable, no NoSchedule taint){}, but agents.remote asks for at least {wanted}",
        found.len(),
        if found.is_empty() { String::new() } else { format!(": {}", found.join(", ")) }
    )]
    TooFewNodes {
        /// The node selector.
        selector: String,
        /// Eligible nodes found.
        found: Vec<String>,
        /// Fewest accepted.
        wanted: u32,
    },
}

impl K8sError {
    /// Whether the error comes from the user's configuration (kubeconfig,
    /// context, a missing Secret, too few nodes) rather than a failed call.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            K8sError::Kubeconfig { .. }
                | K8sError::NoConfig(_)
                | K8sError::MissingSecret { .. }
                | K8sError::TooFewNodes { .. }
        )
    }
}

pub(crate) fn api_err(
    action: &'static str,
    kind: &'static str,
    namespace: &str,
    name: &str,
) -> impl FnOnce(kube::Error) -> K8sError {
    let (namespace, name) = (namespace.to_string(), name.to_string());
    move |source| K8sError::Api {
        action,
        kind,
        namespace,
        name,
        source,
    }
}

/// A Kubernetes client handed to a run (tests pass one over a fake API).
#[derive(Clone)]
pub struct KubeClient(pub kube::Client);

impl std::fmt::Debug for KubeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubeClient")
    }
}

/// A client for `k.context` (from the kubeconfig), or — with no context —
/// the current kubeconfig context, falling back to the in-cluster
/// configuration inside a pod. Must run inside a Tokio runtime.
pub async fn connect(k: &Kubernetes) -> Result<kube::Client, K8sError> {
    let mut config = match &k.context {
        Some(context) => {
            let opts = kube::config::KubeConfigOptions {
                context: Some(context.clone()),
                ..Default::default()
            };
            kube::Config::from_kubeconfig(&opts)
                .await
                .map_err(|source| K8sError::Kubeconfig {
                    context: context.clone(),
                    source,
                })?
        }
        None => kube::Config::infer().await.map_err(K8sError::NoConfig)?,
    };
    config.default_namespace = k.namespace.clone();
    kube::Client::try_from(config).map_err(K8sError::Client)
}

/// The node selector as a label selector string (`k=v,k2=v2`).
pub fn selector_string(k: &Kubernetes) -> String {
    k.node_selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

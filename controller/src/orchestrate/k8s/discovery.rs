//! What the controller learns from the cluster: which nodes should run an
//! agent (so the join check knows whom to wait for), and — for the run
//! manifest — the labels of the nodes the agents ran on (GPU product, zone,
//! instance type) and the address of the inference gateway's Service.
//!
//! Eligibility mirrors where the DaemonSet's pods can run and be useful:
//! the node matches the selector, is `Ready`, is not cordoned, and has no
//! `NoSchedule`/`NoExecute` taint (the agent pods tolerate none).
//! Manifest lookups are best effort: a node or Service that cannot be read
//! is recorded as an error in the manifest, not a failed run.

use super::{K8sError, NODE_GPU_PRODUCT, NODE_INSTANCE_TYPE, NODE_ZONE, api_err, selector_string};
use crate::model::AgentInfo;
use crate::model::{GatewayInfo, KubernetesInfo, NodeInfo};
use k8s_openapi::api::core::v1::{Node, Service};
use kube::Client;
use kube::api::{Api, ListParams};
use stampede_plan::kubernetes::Kubernetes;
use std::collections::{BTreeMap, BTreeSet};

/// Why a node is not expected to run an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ineligible {
    /// Its labels do not match the node selector.
    NotSelected,
    /// Its `Ready` condition is not `True`.
    NotReady,
    /// `spec.unschedulable` (cordoned).
    Unschedulable,
    /// A `NoSchedule` or `NoExecute` taint.
    Tainted,
}

/// Whether `node` should run an agent under `selector`.
pub fn eligibility(node: &Node, selector: &BTreeMap<String, String>) -> Result<(), Ineligible> {
    let labels = node.metadata.labels.as_ref();
    if !selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
    {
        return Err(Ineligible::NotSelected);
    }
    let spec = node.spec.as_ref();
    if spec.and_then(|s| s.unschedulable) == Some(true) {
        return Err(Ineligible::Unschedulable);
    }
    if spec.and_then(|s| s.taints.as_ref()).is_some_and(|t| {
        t.iter()
            .any(|t| matches!(t.effect.as_str(), "NoSchedule" | "NoExecute"))
    }) {
        return Err(Ineligible::Tainted);
    }
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    if !ready {
        return Err(Ineligible::NotReady);
    }
    Ok(())
}

/// Names of the nodes that should each run one agent.
pub async fn eligible_nodes(client: &Client, k: &Kubernetes) -> Result<BTreeSet<String>, K8sError> {
    let selector = selector_string(k);
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(api_err("list", "Node", "", &selector))?;
    Ok(list
        .items
        .iter()
        .filter(|n| eligibility(n, &k.node_selector).is_ok())
        .filter_map(|n| n.metadata.name.clone())
        .collect())
}

/// The labels of `node` recorded in the manifest.
pub fn node_info(node: &Node, agents: Vec<String>) -> NodeInfo {
    let label = |k: &str| {
        node.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(k))
            .cloned()
    };
    NodeInfo {
        name: node.metadata.name.clone().unwrap_or_default(),
        gpu_product: label(NODE_GPU_PRODUCT),
        zone: label(NODE_ZONE),
        instance_type: label(NODE_INSTANCE_TYPE),
        agents,
    }
}

/// The recorded address of a gateway Service.
pub fn gateway_info(svc: &Service) -> GatewayInfo {
    let spec = svc.spec.clone().unwrap_or_default();
    let ingress: Vec<String> = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|i| {
            i.iter()
                .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
                .collect()
        })
        .unwrap_or_default();
    let cluster_ip = spec.cluster_ip.clone().filter(|ip| ip != "None");
    let ports = spec.ports.clone().unwrap_or_default();
    let host = ingress.first().cloned().or_else(|| cluster_ip.clone());
    let address = match (host, ports.first()) {
        (Some(h), Some(p)) if h.contains(':') => Some(format!("[{h}]:{}", p.port)),
        (Some(h), Some(p)) => Some(format!("{h}:{}", p.port)),
        (h, None) => h,
        (None, _) => None,
    };
    GatewayInfo {
        namespace: svc.metadata.namespace.clone().unwrap_or_default(),
        name: svc.metadata.name.clone().unwrap_or_default(),
        service_type: spec
            .type_
            .clone()
            .unwrap_or_else(|| "ClusterIP".to_string()),
        cluster_ip,
        ingress,
        ports: ports
            .iter()
            .map(|p| {
                format!(
                    "{} {}/{}",
                    p.name.as_deref().unwrap_or("-"),
                    p.port,
                    p.protocol.as_deref().unwrap_or("TCP")
                )
            })
            .collect(),
        address,
    }
}

/// Look up the nodes `agents` ran on and the gateway Service of `k`.
pub async fn describe(client: &Client, k: &Kubernetes, agents: &[AgentInfo]) -> KubernetesInfo {
    let mut by_node: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for a in agents {
        by_node
            .entry(a.node.as_str())
            .or_default()
            .push(a.id.clone());
    }
    let mut info = KubernetesInfo {
        context: k.context.clone(),
        namespace: k.namespace.clone(),
        ..Default::default()
    };
    let nodes: Api<Node> = Api::all(client.clone());
    for (name, ids) in by_node {
        match nodes.get_opt(name).await {
            Ok(Some(n)) => info.nodes.push(node_info(&n, ids)),
            Ok(None) => info.errors.push(format!(
                "node {name:?} (of agents {}) is not a node of the cluster",
                ids.join(", ")
            )),
            Err(e) => info.errors.push(format!("node {name:?}: {e}")),
        }
    }
    if let Some((ns, name)) = &k.gateway_service {
        let services: Api<Service> = Api::namespaced(client.clone(), ns);
        match services.get_opt(name).await {
            Ok(Some(s)) => info.gateway = Some(gateway_info(&s)),
            Ok(None) => info
                .errors
                .push(format!("gateway Service {ns}/{name} not found")),
            Err(e) => info
                .errors
                .push(format!("gateway Service {ns}/{name}: {e}")),
        }
    }
    info
}

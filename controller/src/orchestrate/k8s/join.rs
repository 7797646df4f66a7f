//! Agents joining from Kubernetes: before `controller run` starts its first
//! phase it deploys the agent DaemonSet and waits until every eligible node
//! has an agent connected. Agents take their node's name as their id, so the
//! check is a set difference, and a timeout names the nodes still missing.

use super::{K8sError, deploy, discovery};
use kube::Client;
use stampede_plan::kubernetes::Kubernetes;
use std::collections::BTreeSet;

/// Eligible nodes with no agent among `joined` (agent ids), in name order.
pub fn missing(eligible: &BTreeSet<String>, joined: &[String]) -> Vec<String> {
    let joined: BTreeSet<&str> = joined.iter().map(String::as_str).collect();
    eligible
        .iter()
        .filter(|n| !joined.contains(n.as_str()))
        .cloned()
        .collect()
}

/// A cluster the run deployed agents into.
pub struct Deployment {
    /// The API client, for the manifest lookups later.
    pub client: Client,
    /// What was applied.
    pub applied: deploy::Applied,
    /// Nodes that should each run one agent.
    pub eligible: BTreeSet<String>,
}

/// Deploy agents for a run through `client`: apply the objects (agents dial
/// gRPC `port`), then find the eligible nodes, failing when there are fewer
/// than `min_nodes`.
pub async fn deploy_with(
    client: Client,
    k: &Kubernetes,
    port: u16,
    plan_text: &str,
    min_nodes: u32,
) -> Result<Deployment, K8sError> {
    let applied = deploy::deploy(&client, k, port, Some(plan_text)).await?;
    let eligible = discovery::eligible_nodes(&client, k).await?;
    if eligible.len() < min_nodes as usize {
        return Err(K8sError::TooFewNodes {
            selector: super::selector_string(k),
            found: eligible.into_iter().collect(),
            wanted: min_nodes,
        });
    }
    Ok(Deployment {
        client,
        applied,
        eligible,
    })
}

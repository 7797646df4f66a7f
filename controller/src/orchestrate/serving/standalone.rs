//! The standalone method against the Kubernetes API: apply the server's
//! Deployment and Service, explain a server that never became ready (its
//! pods' events and last log lines), and delete exactly what was applied.
//!
//! Diagnostics are read through the API — events by
//! `involvedObject.name`, logs with `tailLines` — because "not ready after
//! 20 minutes" alone sends the user to `kubectl` for what the controller
//! could have said: no node with the GPU, an image that does not pull, a
//! model that does not fit.

use super::objects;
use crate::orchestrate::k8s::deploy::{Removal, apply, remove_if_ours};
use crate::orchestrate::k8s::{K8sError, api_err};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod, Service};
use kube::Client;
use kube::api::{Api, ListParams, LogParams};
use stampede_plan::serving::Standalone;

/// Log lines of each pod put into a readiness error.
pub const LOG_LINES: i64 = 20;
/// Events of each pod put into a readiness error.
const MAX_EVENTS: usize = 10;
/// Pods described in a readiness error.
const MAX_PODS: usize = 3;

/// Apply the Deployment and Service of `s` in `namespace`.
pub async fn deploy(
    client: &Client,
    s: &Standalone,
    namespace: &str,
) -> Result<Vec<String>, K8sError> {
    Ok(vec![
        apply(
            client,
            namespace,
            "Deployment",
            &objects::deployment(s, namespace),
        )
        .await?,
        apply(
            client,
            namespace,
            "Service",
            &objects::service(s, namespace),
        )
        .await?,
    ])
}

/// Delete the Deployment and Service named `name`, each only when it
/// carries the managed-by label.
pub async fn teardown(
    client: &Client,
    name: &str,
    namespace: &str,
) -> Result<Vec<(&'static str, String, Removal)>, K8sError> {
    Ok(vec![
        (
            "Deployment",
            name.to_string(),
            remove_if_ours::<Deployment>(client, namespace, "Deployment", name).await?,
        ),
        (
            "Service",
            name.to_string(),
            remove_if_ours::<Service>(client, namespace, "Service", name).await?,
        ),
    ])
}

/// Delete every Deployment and Service in `namespace` labelled as a
/// stampede serving object (`controller teardown`).
pub async fn teardown_all(
    client: &Client,
    namespace: &str,
) -> Result<Vec<(&'static str, String, Removal)>, K8sError> {
    let selector = objects::managed_selector();
    let lp = ListParams::default().labels(&selector);
    let mut done = Vec::new();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    for d in deployments.list_metadata(&lp).await.map_err(api_err(
        "list",
        "Deployment",
        namespace,
        &selector,
    ))? {
        let name = d.metadata.name.unwrap_or_default();
        let r = remove_if_ours::<Deployment>(client, namespace, "Deployment", &name).await?;
        done.push(("Deployment", name, r));
    }
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    for s in services
        .list_metadata(&lp)
        .await
        .map_err(api_err("list", "Service", namespace, &selector))?
    {
        let name = s.metadata.name.unwrap_or_default();
        let r = remove_if_ours::<Service>(client, namespace, "Service", &name).await?;
        done.push(("Service", name, r));
    }
    Ok(done)
}

/// What the serving pods of `name` say: per pod, its phase, its recent
/// events and its last log lines. Never fails: what cannot be read is said.
pub async fn diagnose(client: &Client, name: &str, namespace: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = objects::selector_string(name);
    let list = match pods.list(&ListParams::default().labels(&selector)).await {
        Ok(l) => l.items,
        Err(e) => return format!("cannot list the serving pods ({selector}): {e}"),
    };
    if list.is_empty() {
        return format!(
            "no pod matches {selector} (is the Deployment there, and may it create pods?)"
        );
    }
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let mut out = String::new();
    for pod in list.iter().take(MAX_PODS) {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Unknown".to_string());
        out.push_str(&format!("pod {pod_name} ({phase})\n"));
        let fields = format!("involvedObject.name={pod_name}");
        match events.list(&ListParams::default().fields(&fields)).await {
            Ok(l) if l.items.is_empty() => out.push_str("  events: none\n"),
            Ok(l) => {
                out.push_str("  events:\n");
                let skip = l.items.len().saturating_sub(MAX_EVENTS);
                for e in l.items.iter().skip(skip) {
                    out.push_str(&format!(
                        "    {} {}: {}\n",
                        e.type_.as_deref().unwrap_or("-"),
                        e.reason.as_deref().unwrap_or("-"),
                        e.message.as_deref().unwrap_or("").trim()
                    ));
                }
            }
            Err(e) => out.push_str(&format!("  events: cannot list: {e}\n")),
        }
        let lp = LogParams {
            container: Some(objects::CONTAINER.to_string()),
            tail_lines: Some(LOG_LINES),
            ..Default::default()
        };
        match pods.logs(&pod_name, &lp).await {
            Ok(text) if text.trim().is_empty() => out.push_str("  log: empty\n"),
            Ok(text) => {
                out.push_str(&format!("  last {LOG_LINES} log lines:\n"));
                for line in text.lines() {
                    out.push_str(&format!("    {line}\n"));
                }
            }
            Err(e) => out.push_str(&format!("  log: cannot read: {e}\n")),
        }
    }
    if list.len() > MAX_PODS {
        out.push_str(&format!(
            "({} more pods not shown)\n",
            list.len() - MAX_PODS
        ));
    }
    out
}

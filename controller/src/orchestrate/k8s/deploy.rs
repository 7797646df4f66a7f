//! `controller deploy` and `controller teardown`: server-side apply of the
//! objects in [`super::objects`], and deletion of exactly those objects.
//!
//! Apply is idempotent (a second deploy changes nothing) and takes ownership
//! of the fields it sets, also on objects first created from `manifests/`.
//! Teardown deletes an object only when it has one of stampede's names *and*
//! the `app.kubernetes.io/managed-by=stampede` label, so a same-named object
//! someone else made, the mTLS Secret and the ServiceAccounts stay.

use super::{
    AGENT_DAEMONSET, CONTROLLER_SERVICE, FIELD_MANAGER, K8sError, LABEL_MANAGED_BY, PLAN_CONFIGMAP,
    api_err, objects,
};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use stampede_plan::kubernetes::Kubernetes;
use std::fmt::Debug;

/// What `deploy` applied, for the user: "DaemonSet stampede/stampede-agent".
pub type Applied = Vec<String>;

pub(crate) async fn apply<K>(
    client: &Client,
    ns: &str,
    kind: &'static str,
    obj: &K,
) -> Result<String, K8sError>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Serialize + Debug,
    K::DynamicType: Default,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(obj))
        .await
        .map_err(api_err("apply", kind, ns, &name))?;
    Ok(format!("{kind} {ns}/{name}"))
}

/// Apply the agent DaemonSet, the controller Service (gRPC on `port`) and,
/// given a plan, the plan ConfigMap into `k.namespace`. The mTLS Secret must
/// exist already; only its metadata is read.
pub async fn deploy(
    client: &Client,
    k: &Kubernetes,
    port: u16,
    plan_text: Option<&str>,
) -> Result<Applied, K8sError> {
    let ns = k.namespace.as_str();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    if secrets
        .get_metadata_opt(&k.tls_secret)
        .await
        .map_err(api_err("get", "Secret", ns, &k.tls_secret))?
        .is_none()
    {
        return Err(K8sError::MissingSecret {
            namespace: ns.to_string(),
            name: k.tls_secret.clone(),
        });
    }
    let url = k.controller_url(CONTROLLER_SERVICE, port);
    let mut applied = Vec::new();
    if let Some(text) = plan_text {
        applied.push(apply(client, ns, "ConfigMap", &objects::plan_configmap(k, text)).await?);
    }
    applied.push(apply(client, ns, "Service", &objects::service(k, port)).await?);
    applied.push(apply(client, ns, "DaemonSet", &objects::daemonset(k, &url)).await?);
    Ok(applied)
}

/// What teardown did with one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// Deleted.
    Deleted,
    /// Not there.
    Absent,
    /// There, but without `app.kubernetes.io/managed-by=stampede`: left alone.
    NotOurs,
}

impl Removal {
    /// What teardown says about the object.
    pub fn describe(&self) -> &'static str {
        match self {
            Removal::Deleted => "deleted",
            Removal::Absent => "not found",
            Removal::NotOurs => "kept (not labelled app.kubernetes.io/managed-by=stampede)",
        }
    }
}

/// One line of a teardown: kind, name and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornDown {
    /// Object kind.
    pub kind: &'static str,
    /// Object name.
    pub name: &'static str,
    /// Outcome.
    pub removal: Removal,
}

async fn delete_ours<K>(
    client: &Client,
    ns: &str,
    kind: &'static str,
    name: &'static str,
) -> Result<TornDown, K8sError>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    Ok(TornDown {
        kind,
        name,
        removal: remove_if_ours::<K>(client, ns, kind, name).await?,
    })
}

/// Delete the object `kind` `name` in `ns` only when it carries
/// `app.kubernetes.io/managed-by=stampede`.
pub(crate) async fn remove_if_ours<K>(
    client: &Client,
    ns: &str,
    kind: &'static str,
    name: &str,
) -> Result<Removal, K8sError>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    Ok(
        match api
            .get_metadata_opt(name)
            .await
            .map_err(api_err("get", kind, ns, name))?
        {
            None => Removal::Absent,
            Some(m)
                if m.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_MANAGED_BY.0))
                    .map(String::as_str)
                    != Some(LABEL_MANAGED_BY.1) =>
            {
                Removal::NotOurs
            }
            Some(_) => match api.delete(name, &DeleteParams::background()).await {
                Ok(_) => Removal::Deleted,
                // Deleted by someone else in between: the goal is reached.
                Err(kube::Error::Api(s)) if s.is_not_found() => Removal::Absent,
                Err(e) => return Err(api_err("delete", kind, ns, name)(e)),
            },
        },
    )
}

/// Delete the DaemonSet, Service and ConfigMap that `deploy` creates in
/// `namespace`, each only if it carries stampede's managed-by label.
pub async fn teardown(client: &Client, namespace: &str) -> Result<Vec<TornDown>, K8sError> {
    Ok(vec![
        delete_ours::<DaemonSet>(client, namespace, "DaemonSet", AGENT_DAEMONSET).await?,
        delete_ours::<Service>(client, namespace, "Service", CONTROLLER_SERVICE).await?,
        delete_ours::<ConfigMap>(client, namespace, "ConfigMap", PLAN_CONFIGMAP).await?,
    ])
}

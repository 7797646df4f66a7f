//! The typed objects `controller deploy` applies: the agent DaemonSet, the
//! controller Service and the plan ConfigMap. Built from k8s-openapi types,
//! so a misspelt field does not compile, and kept free of API calls so tests
//! can read them directly.
//!
//! Least privilege is decided here: agent pods run under the
//! `stampede-agent` ServiceAccount with no API token mounted, as a non-root
//! user on a read-only root filesystem, with every capability dropped and no
//! privilege escalation. They mount only the agent's files of the mTLS
//! Secret — the Secret is referenced by name, its values never pass through
//! the controller.

use super::{
    AGENT_DAEMONSET, AGENT_SERVICE_ACCOUNT, CONTROLLER_SERVICE, LABEL_COMPONENT, LABEL_MANAGED_BY,
    LABEL_NAME, PLAN_CONFIGMAP, PLAN_KEY,
};
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, Container, EnvVar, EnvVarSource, KeyToPath, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile,
    SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use stampede_plan::kubernetes::Kubernetes;
use std::collections::BTreeMap;

/// Where the agent's TLS files and join token are mounted.
pub const TLS_DIR: &str = "/etc/stampede/tls";
/// Keys of the mTLS Secret the agents mount (the files `controller certs` writes).
pub const AGENT_SECRET_KEYS: [&str; 4] = ["ca.pem", "agent.pem", "agent.key", "join-token"];
/// User and group the agent runs as (the conventional "nonroot" id).
pub const AGENT_UID: i64 = 65532;
/// Name of the gRPC port on the controller Service.
pub const GRPC_PORT_NAME: &str = "grpc";

/// The labels of a stampede object of `component` ("agent" or "controller").
pub fn labels(component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.0.to_string(), LABEL_NAME.1.to_string()),
        (LABEL_COMPONENT.to_string(), component.to_string()),
        (
            LABEL_MANAGED_BY.0.to_string(),
            LABEL_MANAGED_BY.1.to_string(),
        ),
    ])
}

/// The pod selector of `component` (name + component, not managed-by: pods
/// from `manifests/` match too).
fn selector(component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.0.to_string(), LABEL_NAME.1.to_string()),
        (LABEL_COMPONENT.to_string(), component.to_string()),
    ])
}

fn meta(k: &Kubernetes, name: &str, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(k.namespace.clone()),
        labels: Some(labels(component)),
        ..Default::default()
    }
}

/// The agent's command line (after the image's `agent` entrypoint): dial
/// `controller_url` with the mounted mTLS files and join token.
pub fn agent_args(controller_url: &str) -> Vec<String> {
    let file = |f: &str| format!("{TLS_DIR}/{f}");
    [
        "--controller",
        controller_url,
        "--ca",
        &file("ca.pem"),
        "--cert",
        &file("agent.pem"),
        "--key",
        &file("agent.key"),
        "--join-token-file",
        &file("join-token"),
        "--log-format",
        "json",
    ]
    .map(str::to_string)
    .to_vec()
}

/// An environment variable from a pod field (the downward API).
fn field_env(name: &str, field: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn quantities(pairs: [(&str, Option<&String>); 2]) -> Option<BTreeMap<String, Quantity>> {
    let map: BTreeMap<String, Quantity> = pairs
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_string(), Quantity(v?.clone()))))
        .collect();
    (!map.is_empty()).then_some(map)
}

/// The agent DaemonSet: one agent per node matching `k.node_selector`,
/// dialing `controller_url`, with its id and node name set to the node's name.
pub fn daemonset(k: &Kubernetes, controller_url: &str) -> DaemonSet {
    // Pinned ids unless the cluster assigns them (OpenShift's restricted-v2 SCC).
    let uid = k.fixed_user.then_some(AGENT_UID);
    let r = &k.resources;
    let container = Container {
        name: "agent".to_string(),
        image: Some(k.agent_image.clone()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        args: Some(agent_args(controller_url)),
        env: Some(vec![
            // One agent per node: the node's name is a unique agent id, and
            // the join check compares agent ids with node names.
            field_env("STAMPEDE_AGENT_ID", "spec.nodeName"),
            field_env("NODE_NAME", "spec.nodeName"),
        ]),
        resources: Some(ResourceRequirements {
            requests: quantities([("cpu", Some(&r.cpu)), ("memory", Some(&r.memory))]),
            limits: quantities([
                ("cpu", r.cpu_limit.as_ref()),
                ("memory", r.memory_limit.as_ref()),
            ]),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: uid,
            run_as_group: uid,
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                add: None,
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "tls".to_string(),
            mount_path: TLS_DIR.to_string(),
            read_only: Some(true),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let pod = PodSpec {
        service_account_name: Some(AGENT_SERVICE_ACCOUNT.to_string()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        node_selector: Some(k.node_selector.clone()),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: uid,
            run_as_group: uid,
            fs_group: uid,
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        containers: vec![container],
        volumes: Some(vec![Volume {
            name: "tls".to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(k.tls_secret.clone()),
                // Only the agent's files: a Secret that also holds the
                // controller's key does not hand it to agents.
                items: Some(
                    AGENT_SECRET_KEYS
                        .iter()
                        .map(|key| KeyToPath {
                            key: (*key).to_string(),
                            path: (*key).to_string(),
                            mode: None,
                        })
                        .collect(),
                ),
                default_mode: Some(0o440),
                optional: Some(false),
            }),
            ..Default::default()
        }]),
        ..Default::default()
    };
    DaemonSet {
        metadata: meta(k, AGENT_DAEMONSET, "agent"),
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(selector("agent")),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels("agent")),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Service agents dial: the controller pod's gRPC `port`.
pub fn service(k: &Kubernetes, port: u16) -> Service {
    Service {
        metadata: meta(k, CONTROLLER_SERVICE, "controller"),
        spec: Some(ServiceSpec {
            selector: Some(selector("controller")),
            ports: Some(vec![ServicePort {
                name: Some(GRPC_PORT_NAME.to_string()),
                port: i32::from(port),
                target_port: Some(IntOrString::Int(i32::from(port))),
                protocol: Some("TCP".to_string()),
                app_protocol: Some("grpc".to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The plan as a ConfigMap (key `plan.toml`), for a controller running in the cluster.
pub fn plan_configmap(k: &Kubernetes, plan_text: &str) -> ConfigMap {
    ConfigMap {
        metadata: meta(k, PLAN_CONFIGMAP, "controller"),
        data: Some(BTreeMap::from([(
            PLAN_KEY.to_string(),
            plan_text.to_string(),
        )])),
        ..Default::default()
    }
}

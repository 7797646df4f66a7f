//! The Deployment and Service of the standalone method, built from
//! k8s-openapi types and free of API calls so tests read them directly.
//!
//! One replica with the `Recreate` strategy: a rolling update would need a
//! second set of GPUs while the old pod still holds the first. The Hugging
//! Face token is a `secretKeyRef` — the value stays in the cluster. More
//! than one GPU gets a memory-backed `/dev/shm` (tensor parallelism shares
//! tensors through it), and a GPU pod tolerates the usual
//! `nvidia.com/gpu:NoSchedule` taint of GPU node pools.

use crate::orchestrate::k8s::{LABEL_COMPONENT, LABEL_MANAGED_BY, LABEL_NAME};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction,
    HostPathVolumeSource, PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SecretKeySelector, Service, ServicePort, ServiceSpec, Toleration, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use stampede_plan::serving::{CacheSource, GPU_RESOURCE, HF_TOKEN_ENV, ServerKind, Standalone};
use std::collections::BTreeMap;

/// `app.kubernetes.io/component` of serving objects.
pub const COMPONENT: &str = "serving";
/// Label naming which serving stack a pod belongs to.
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
/// Name of the server container.
pub const CONTAINER: &str = "server";
/// Name of the HTTP port.
pub const PORT_NAME: &str = "http";

/// Labels of the serving objects and pods named `name`.
pub fn labels(name: &str) -> BTreeMap<String, String> {
    let mut l = selector(name);
    l.insert(
        LABEL_MANAGED_BY.0.to_string(),
        LABEL_MANAGED_BY.1.to_string(),
    );
    l
}

/// Pod selector of the stack `name`.
pub fn selector(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.0.to_string(), LABEL_NAME.1.to_string()),
        (LABEL_COMPONENT.to_string(), COMPONENT.to_string()),
        (LABEL_INSTANCE.to_string(), name.to_string()),
    ])
}

/// The selector as a label-selector string.
pub fn selector_string(name: &str) -> String {
    selector(name)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The label selector of everything stampede deployed for serving (any name).
pub fn managed_selector() -> String {
    format!(
        "{}={COMPONENT},{}={}",
        LABEL_COMPONENT, LABEL_MANAGED_BY.0, LABEL_MANAGED_BY.1
    )
}

/// The container's arguments: model and port the way the server kind
/// takes them, then the plan's `args`.
pub fn server_args(s: &Standalone) -> Vec<String> {
    let mut args = match s.server {
        ServerKind::Vllm => vec![
            "--model".to_string(),
            s.model.clone(),
            "--port".to_string(),
            s.port.to_string(),
        ],
        ServerKind::Simulator => vec![
            "--listen".to_string(),
            format!("0.0.0.0:{}", s.port),
            "--model".to_string(),
            s.model.clone(),
        ],
    };
    args.extend(s.args.iter().cloned());
    args
}

fn meta(s: &Standalone, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(s.name.clone()),
        namespace: Some(namespace.to_string()),
        labels: Some(labels(&s.name)),
        ..Default::default()
    }
}

fn env(s: &Standalone) -> Vec<EnvVar> {
    let mut env: Vec<EnvVar> = s
        .env
        .iter()
        .map(|(k, v)| EnvVar {
            name: k.clone(),
            value: Some(v.clone()),
            ..Default::default()
        })
        .collect();
    if let Some(r) = &s.hf_token_secret {
        env.push(EnvVar {
            name: HF_TOKEN_ENV.to_string(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: r.name.clone(),
                    key: r.key.clone(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    env
}

fn volumes(s: &Standalone) -> (Vec<Volume>, Vec<VolumeMount>) {
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    if let Some(c) = &s.model_cache {
        let mut v = Volume {
            name: "model-cache".to_string(),
            ..Default::default()
        };
        match &c.source {
            CacheSource::Pvc(claim) => {
                v.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.clone(),
                    read_only: Some(false),
                });
            }
            CacheSource::EmptyDir(size) => {
                v.empty_dir = Some(EmptyDirVolumeSource {
                    size_limit: Some(Quantity(size.clone())),
                    ..Default::default()
                });
            }
            CacheSource::HostPath(dir) => {
                v.host_path = Some(HostPathVolumeSource {
                    path: dir.clone(),
                    type_: Some("DirectoryOrCreate".to_string()),
                });
            }
        }
        volumes.push(v);
        mounts.push(VolumeMount {
            name: "model-cache".to_string(),
            mount_path: c.mount_path.clone(),
            ..Default::default()
        });
    }
    if s.gpus > 1 {
        volumes.push(Volume {
            name: "shm".to_string(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: "shm".to_string(),
            mount_path: "/dev/shm".to_string(),
            ..Default::default()
        });
    }
    (volumes, mounts)
}

fn resources(s: &Standalone) -> ResourceRequirements {
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    if s.gpus > 0 {
        let n = Quantity(s.gpus.to_string());
        requests.insert(GPU_RESOURCE.to_string(), n.clone());
        limits.insert(GPU_RESOURCE.to_string(), n);
    }
    for (k, v) in [("cpu", &s.cpu), ("memory", &s.memory)] {
        if let Some(q) = v {
            requests.insert(k.to_string(), Quantity(q.clone()));
        }
    }
    ResourceRequirements {
        requests: (!requests.is_empty()).then_some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        ..Default::default()
    }
}

/// The server Deployment in `namespace`.
pub fn deployment(s: &Standalone, namespace: &str) -> Deployment {
    let (volumes, mounts) = volumes(s);
    let container = Container {
        name: CONTAINER.to_string(),
        image: Some(s.image.clone()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        args: Some(server_args(s)),
        env: Some(env(s)),
        ports: Some(vec![ContainerPort {
            name: Some(PORT_NAME.to_string()),
            container_port: i32::from(s.port),
            protocol: Some("TCP".to_string()),
            ..Default::default()
        }]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/health".to_string()),
                port: IntOrString::String(PORT_NAME.to_string()),
                ..Default::default()
            }),
            period_seconds: Some(5),
            ..Default::default()
        }),
        resources: Some(resources(s)),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        ..Default::default()
    };
    let tolerations = (s.gpus > 0).then(|| {
        vec![Toleration {
            key: Some(GPU_RESOURCE.to_string()),
            operator: Some("Exists".to_string()),
            effect: Some("NoSchedule".to_string()),
            ..Default::default()
        }]
    });
    Deployment {
        metadata: meta(s, namespace),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".to_string()),
                ..Default::default()
            }),
            selector: LabelSelector {
                match_labels: Some(selector(&s.name)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&s.name)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    node_selector: (!s.node_selector.is_empty()).then(|| s.node_selector.clone()),
                    tolerations,
                    volumes: (!volumes.is_empty()).then_some(volumes),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The ClusterIP Service in front of the server.
pub fn service(s: &Standalone, namespace: &str) -> Service {
    Service {
        metadata: meta(s, namespace),
        spec: Some(ServiceSpec {
            selector: Some(selector(&s.name)),
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.to_string()),
                port: i32::from(s.port),
                target_port: Some(IntOrString::String(PORT_NAME.to_string())),
                protocol: Some("TCP".to_string()),
                app_protocol: Some("http".to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

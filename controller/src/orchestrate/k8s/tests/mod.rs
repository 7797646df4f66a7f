//! Deploy, teardown, node eligibility and the manifest
//! record, against the in-memory API server in [`super::fake`].

use super::fake::{self, FakeApi};
use super::{deploy, discovery, join};
use crate::model::AgentInfo;
use serde_json::{Value, json};
use stampede_plan::kubernetes::Kubernetes;
use std::collections::BTreeSet;

pub(crate) const NS: &str = "stampede";
pub(crate) const DS: &str = "/apis/apps/v1/namespaces/stampede/daemonsets";
pub(crate) const SVC: &str = "/api/v1/namespaces/stampede/services";
pub(crate) const CM: &str = "/api/v1/namespaces/stampede/configmaps";
pub(crate) const SECRETS: &str = "/api/v1/namespaces/stampede/secrets";
pub(crate) const NODES: &str = "/api/v1/nodes";
pub(crate) const PLAN: &str = "[agents]\nremote = 2\n";

/// A fake cluster holding the mTLS Secret (with values that must never be
/// copied anywhere).
pub(crate) fn cluster() -> FakeApi {
    let api = FakeApi::new();
    api.insert(
        SECRETS,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "stampede-mtls-agent", "namespace": NS },
            "data": { "agent.key": "c2VjcmV0LWtleQ==", "join-token": "dG9rZW4tdmFsdWU=" },
        }),
    );
    api
}

pub(crate) fn settings() -> Kubernetes {
    Kubernetes {
        resources: stampede_plan::kubernetes::Resources {
            memory_limit: Some("1Gi".into()),
            ..Kubernetes::default().resources
        },
        ..Kubernetes::default()
    }
}

#[test]
fn openshift_agents_leave_user_ids_to_the_cluster() {
    let k = Kubernetes {
        fixed_user: false,
        ..settings()
    };
    let ds = serde_json::to_value(super::objects::daemonset(&k, "https://c:7600")).unwrap();
    let pod = &ds["spec"]["template"]["spec"];
    let c = &pod["containers"][0]["securityContext"];
    for sc in [&pod["securityContext"], c] {
        assert_eq!(sc["runAsNonRoot"], true, "{sc}");
        for id in ["runAsUser", "runAsGroup", "fsGroup"] {
            assert_eq!(sc.get(id), None, "{id} pinned: {sc}");
        }
    }
    assert_eq!(c["readOnlyRootFilesystem"], true);
}

#[tokio::test]
async fn deploy_creates_least_privilege_objects() {
    let api = cluster();
    let client = api.client(NS);
    let applied = deploy::deploy(&client, &settings(), 7600, Some(PLAN))
        .await
        .unwrap();
    assert_eq!(
        applied,
        [
            "ConfigMap stampede/stampede-plan",
            "Service stampede/stampede-controller",
            "DaemonSet stampede/stampede-agent"
        ]
    );

    let ds = api.get(DS, "stampede-agent").expect("DaemonSet applied");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "stampede-agent");
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["nodeSelector"], json!({ "stampede.dev/agent": "true" }));
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    let c = &pod["containers"][0];
    assert_eq!(
        c["image"],
        format!("stampede/agent:{}", stampede_common::VERSION)
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["capabilities"].get("add"), None);
    assert_eq!(
        c["resources"]["requests"],
        json!({ "cpu": "500m", "memory": "256Mi" })
    );
    assert_eq!(c["resources"]["limits"], json!({ "memory": "1Gi" }));
    // The agent's real flags; id and node name from the downward API.
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args[..2],
        [
            "--controller",
            "https://stampede-controller.stampede.svc:7600"
        ]
    );
    for (flag, file) in [
        ("--ca", "ca.pem"),
        ("--cert", "agent.pem"),
        ("--key", "agent.key"),
        ("--join-token-file", "join-token"),
    ] {
        let i = args.iter().position(|a| *a == flag).expect(flag);
        assert_eq!(args[i + 1], format!("/etc/stampede/tls/{file}"));
    }
    for env in ["STAMPEDE_AGENT_ID", "NODE_NAME"] {
        let e = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == env)
            .expect(env);
        assert_eq!(e["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");
    }
    // The Secret is referenced, mounted read-only, and only the agent's keys.
    let vol = &pod["volumes"][0]["secret"];
    assert_eq!(vol["secretName"], "stampede-mtls-agent");
    let keys: Vec<&str> = vol["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["ca.pem", "agent.pem", "agent.key", "join-token"]);
    assert_eq!(c["volumeMounts"][0]["readOnly"], true);
    let everything = api
        .all()
        .iter()
        .filter(|(c, _)| c != SECRETS)
        .map(|(c, n)| api.get(c, n).unwrap().to_string())
        .collect::<String>();
    for secret_value in [
        "c2VjcmV0LWtleQ==",
        "dG9rZW4tdmFsdWU=",
        "secret-key",
        "token-value",
    ] {
        assert!(!everything.contains(secret_value), "{secret_value} copied");
    }
    // The Secret's data was never asked for: metadata-only reads, no writes.
    for r in api.requests().iter().filter(|r| r.contains("/secrets")) {
        assert!(r.starts_with("GET "), "{r}");
    }
    // Server-side apply with stampede's field manager.
    let patches: Vec<String> = api
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("PATCH "))
        .collect();
    assert_eq!(patches.len(), 3, "{patches:?}");
    for p in &patches {
        assert!(
            p.contains("fieldManager=stampede-controller") && p.contains("force=true"),
            "{p}"
        );
    }
    // No RBAC object and no ServiceAccount is created: manifests own them.
    assert_eq!(
        api.all().len(),
        4,
        "Secret + 3 applied objects: {:?}",
        api.all()
    );
    for (coll, name) in [
        (DS, "stampede-agent"),
        (SVC, "stampede-controller"),
        (CM, "stampede-plan"),
    ] {
        let labels = &api.get(coll, name).unwrap()["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/managed-by"], "stampede", "{name}");
        assert_eq!(labels["app.kubernetes.io/name"], "stampede", "{name}");
    }
    assert_eq!(
        api.get(DS, "stampede-agent").unwrap()["metadata"]["labels"]["app.kubernetes.io/component"],
        "agent"
    );
    let svc = api.get(SVC, "stampede-controller").unwrap();
    assert_eq!(svc["spec"]["ports"][0]["port"], 7600);
    assert_eq!(
        svc["spec"]["selector"]["app.kubernetes.io/component"],
        "controller"
    );
    assert_eq!(
        api.get(CM, "stampede-plan").unwrap()["data"]["plan.toml"],
        PLAN
    );
}

#[tokio::test]
async fn deploy_twice_changes_nothing() {
    let api = cluster();
    let client = api.client(NS);
    let k = settings();
    deploy::deploy(&client, &k, 7600, Some(PLAN)).await.unwrap();
    let first: Vec<Value> = api
        .all()
        .iter()
        .map(|(c, n)| api.get(c, n).unwrap())
        .collect();
    deploy::deploy(&client, &k, 7600, Some(PLAN)).await.unwrap();
    let second: Vec<Value> = api
        .all()
        .iter()
        .map(|(c, n)| api.get(c, n).unwrap())
        .collect();
    assert_eq!(first, second, "same objects, same resourceVersions");
    // A changed setting updates the object in place.
    let k2 = Kubernetes {
        agent_image: "registry.example/stampede/agent:dev".into(),
        ..k
    };
    deploy::deploy(&client, &k2, 7600, Some(PLAN))
        .await
        .unwrap();
    let ds = api.get(DS, "stampede-agent").unwrap();
    assert_eq!(
        ds["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/stampede/agent:dev"
    );
    assert_eq!(ds["metadata"]["generation"], 2);
    assert_eq!(api.names(DS), ["stampede-agent"]);
}

#[tokio::test]
async fn deploy_without_the_secret_names_it() {
    let api = FakeApi::new();
    let e = deploy::deploy(&api.client(NS), &settings(), 7600, None)
        .await
        .unwrap_err();
    assert!(matches!(e, super::K8sError::MissingSecret { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("\"stampede-mtls-agent\"") && text.contains("\"stampede\""),
        "{text}"
    );
    assert!(api.all().is_empty(), "nothing applied: {:?}", api.all());
}

#[tokio::test]
async fn teardown_removes_exactly_what_deploy_created() {
    let api = cluster();
    let client = api.client(NS);
    // Neighbours: an unrelated ConfigMap, and a Service in another namespace
    // with stampede's name and labels.
    api.insert(
        CM,
        json!({ "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "name": "other-app", "namespace": NS,
                              "labels": { "app.kubernetes.io/managed-by": "helm" } } }),
    );
    let other_ns = "/api/v1/namespaces/elsewhere/services";
    api.insert(
        other_ns,
        json!({ "apiVersion": "v1", "kind": "Service",
                "metadata": { "name": "stampede-controller", "namespace": "elsewhere",
                              "labels": { "app.kubernetes.io/managed-by": "stampede" } } }),
    );
    deploy::deploy(&client, &settings(), 7600, Some(PLAN))
        .await
        .unwrap();
    let done = deploy::teardown(&client, NS).await.unwrap();
    assert!(
        done.iter().all(|t| t.removal == deploy::Removal::Deleted),
        "{done:?}"
    );
    assert_eq!(done.len(), 3);
    assert_eq!(api.names(DS), Vec::<String>::new());
    assert_eq!(api.names(SVC), Vec::<String>::new());
    assert_eq!(api.names(CM), ["other-app"]);
    assert_eq!(
        api.names(SECRETS),
        ["stampede-mtls-agent"],
        "the Secret stays"
    );
    assert_eq!(api.names(other_ns), ["stampede-controller"]);

    // Again: nothing left to delete, nothing else touched.
    let again = deploy::teardown(&client, NS).await.unwrap();
    assert!(again.iter().all(|t| t.removal == deploy::Removal::Absent));
    assert_eq!(api.all().len(), 3);
}

#[tokio::test]
async fn teardown_keeps_a_same_named_object_it_did_not_create() {
    let api = cluster();
    api.insert(
        SVC,
        json!({ "apiVersion": "v1", "kind": "Service",
                "metadata": { "name": "stampede-controller", "namespace": NS,
                              "labels": { "app.kubernetes.io/name": "stampede" } } }),
    );
    let done = deploy::teardown(&api.client(NS), NS).await.unwrap();
    let svc = done.iter().find(|t| t.kind == "Service").unwrap();
    assert_eq!(svc.removal, deploy::Removal::NotOurs);
    assert_eq!(api.names(SVC), ["stampede-controller"]);
    assert!(!api.requests().iter().any(|r| r.starts_with("DELETE")));
}

/// A cluster with five nodes, of which only node-a and node-b should run agents.
pub(crate) fn nodes(api: &FakeApi) {
    let agent = ("stampede.dev/agent", "true");
    let gpu = ("nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3");
    let zone = ("topology.kubernetes.io/zone", "us-central1-a");
    let itype = ("node.kubernetes.io/instance-type", "a3-highgpu-8g");
    for n in [
        fake::node("node-a", &[agent, gpu, zone, itype], true, false),
        fake::node("node-b", &[agent, zone], true, false),
        fake::node("node-c", &[agent], false, false),
        fake::node("node-d", &[agent], true, true),
        fake::node("node-e", &[gpu], true, false),
    ] {
        api.insert(NODES, n);
    }
    let mut tainted = fake::node("node-f", &[agent], true, false);
    tainted["spec"]["taints"] = json!([{ "key": "nvidia.com/gpu", "effect": "NoSchedule" }]);
    api.insert(NODES, tainted);
}

#[tokio::test]
async fn only_ready_schedulable_selected_nodes_are_expected() {
    let api = cluster();
    nodes(&api);
    let eligible = discovery::eligible_nodes(&api.client(NS), &settings())
        .await
        .unwrap();
    assert_eq!(
        eligible,
        BTreeSet::from(["node-a".to_string(), "node-b".to_string()])
    );
    // The selector went to the server, not only filtered here.
    assert!(
        api.requests()
            .iter()
            .any(|r| r.starts_with("GET /api/v1/nodes?")
                && r.contains("labelSelector=stampede.dev%2Fagent%3Dtrue")),
        "{:?}",
        api.requests()
    );
}

#[tokio::test]
async fn deploy_for_a_run_needs_enough_nodes() {
    let api = cluster();
    nodes(&api);
    let d = join::deploy_with(api.client(NS), &settings(), 7600, PLAN, 2)
        .await
        .unwrap();
    assert_eq!(d.eligible.len(), 2);
    let e = join::deploy_with(api.client(NS), &settings(), 7600, PLAN, 3)
        .await
        .err()
        .unwrap();
    let text = e.to_string();
    assert!(
        text.contains("node-a, node-b") && text.contains("at least 3"),
        "{text}"
    );
    assert!(e.is_bad_input());
}

#[test]
fn missing_nodes_are_named() {
    let eligible: BTreeSet<String> = ["n1", "n2", "n3"].map(String::from).into();
    assert_eq!(
        join::missing(&eligible, &["n3".into(), "n1".into(), "elsewhere".into()]),
        ["n2"]
    );
    assert!(join::missing(&eligible, &["n1".into(), "n2".into(), "n3".into()]).is_empty());
}

#[tokio::test]
async fn node_labels_and_gateway_reach_the_manifest() {
    let api = cluster();
    nodes(&api);
    api.insert(
        "/api/v1/namespaces/llm-d/services",
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": "infra-gateway", "namespace": "llm-d" },
            "spec": { "type": "LoadBalancer", "clusterIP": "10.0.0.7",
                      "ports": [{ "name": "http", "port": 80, "protocol": "TCP" }] },
            "status": { "loadBalancer": { "ingress": [{ "ip": "34.1.2.3" }] } },
        }),
    );
    let k = Kubernetes {
        context: Some("gke-a".into()),
        gateway_service: Some(("llm-d".into(), "infra-gateway".into())),
        ..settings()
    };
    let agent = |id: &str, node: &str| AgentInfo {
        id: id.into(),
        node: node.into(),
        cores: 4,
        version: "0".into(),
        clock_offset_ms: 0.0,
        clock_rtt_ms: 0.0,
    };
    let agents = [
        agent("node-a", "node-a"),
        agent("node-b", "node-b"),
        agent("x", "gone"),
    ];
    let info = discovery::describe(&api.client(NS), &k, &agents).await;

    let dir = tempfile::tempdir().unwrap();
    let manifest = crate::results::manifest::Manifest {
        agents: agents.to_vec(),
        kubernetes: Some(info),
        ..crate::results::manifest::sample()
    };
    crate::results::manifest::write(dir.path(), &manifest).unwrap();
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("manifest.json")).unwrap())
            .unwrap();
    let k8s = &written["kubernetes"];
    assert_eq!(k8s["context"], "gke-a");
    assert_eq!(
        k8s["nodes"][0],
        json!({
            "name": "node-a", "gpu_product": "NVIDIA-H100-80GB-HBM3",
            "zone": "us-central1-a", "instance_type": "a3-highgpu-8g", "agents": ["node-a"],
        })
    );
    assert_eq!(k8s["nodes"][1]["gpu_product"], Value::Null);
    assert_eq!(k8s["nodes"][1]["zone"], "us-central1-a");
    assert_eq!(k8s["gateway"]["address"], "34.1.2.3:80");
    assert_eq!(k8s["gateway"]["cluster_ip"], "10.0.0.7");
    assert_eq!(k8s["gateway"]["service_type"], "LoadBalancer");
    assert_eq!(
        k8s["errors"],
        json!(["node \"gone\" (of agents x) is not a node of the cluster"])
    );
    // Read back as the report does, and shown in stats.txt.
    let back = crate::results::manifest::read(dir.path()).unwrap();
    assert_eq!(back, manifest);
    let text = crate::outputs::report::cluster_text(back.kubernetes.as_ref().unwrap());
    assert!(
        text.contains("node-a               gpu NVIDIA-H100-80GB-HBM3 zone us-central1-a instance a3-highgpu-8g"),
        "{text}"
    );
    assert!(
        text.contains("gateway   llm-d/infra-gateway (LoadBalancer) at 34.1.2.3:80"),
        "{text}"
    );
}

#[test]
fn a_cluster_ip_gateway_is_addressed_by_its_cluster_ip() {
    let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(json!({
        "metadata": { "name": "gw", "namespace": "n" },
        "spec": { "clusterIP": "10.1.2.3", "ports": [{ "port": 8000 }] },
    }))
    .unwrap();
    let g = discovery::gateway_info(&svc);
    assert_eq!(g.address.as_deref(), Some("10.1.2.3:8000"));
    assert_eq!(g.service_type, "ClusterIP");
    assert_eq!(g.ports, ["- 8000/TCP"]);
}

mod run;

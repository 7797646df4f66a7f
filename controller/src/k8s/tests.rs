//! Deploy, teardown, node eligibility, the join wait and the manifest
//! record, against the in-memory API server in [`super::fake`].

use super::fake::{self, FakeApi};
use super::{deploy, discovery, join};
use crate::report::AgentInfo;
use serde_json::{Value, json};
use stampede_common::kubernetes::Kubernetes;
use std::collections::BTreeSet;

const NS: &str = "stampede";
const DS: &str = "/apis/apps/v1/namespaces/stampede/daemonsets";
const SVC: &str = "/api/v1/namespaces/stampede/services";
const CM: &str = "/api/v1/namespaces/stampede/configmaps";
const SECRETS: &str = "/api/v1/namespaces/stampede/secrets";
const NODES: &str = "/api/v1/nodes";
const PLAN: &str = "[agents]\nremote = 2\n";

/// A fake cluster holding the mTLS Secret (with values that must never be
/// copied anywhere).
fn cluster() -> FakeApi {
    let api = FakeApi::new();
    api.insert(
        SECRETS,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "stampede-mtls", "namespace": NS },
            "data": { "agent.key": "c2VjcmV0LWtleQ==", "join-token": "dG9rZW4tdmFsdWU=" },
        }),
    );
    api
}

fn settings() -> Kubernetes {
    Kubernetes {
        resources: stampede_common::kubernetes::Resources {
            memory_limit: Some("1Gi".into()),
            ..Kubernetes::default().resources
        },
        ..Kubernetes::default()
    }
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
    assert_eq!(vol["secretName"], "stampede-mtls");
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
        text.contains("\"stampede-mtls\"") && text.contains("\"stampede\""),
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
    assert_eq!(api.names(SECRETS), ["stampede-mtls"], "the Secret stays");
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
fn nodes(api: &FakeApi) {
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

mod wait {
    use crate::runner::{Orchestrator, ResolvedTarget, RunError};
    use crate::service::Event;
    use stampede_common::proto::Hello;
    use std::collections::BTreeSet;
    use std::path::Path;
    use std::time::Duration;
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    fn orchestrator() -> (Orchestrator, mpsc::Sender<Event>) {
        let text = "[agents]\nremote = 1\njoin_timeout = \"30s\"\n[target]\nurl = \"http://127.0.0.1:9\"\nmodel = \"m\"\n[[phase]]\nkind = \"baseline\"\nduration = \"1s\"\n";
        let plan = stampede_common::plan::parse(text, Path::new("t.toml"))
            .unwrap()
            .validate(Path::new("t.toml"))
            .unwrap();
        let (tx, rx) = mpsc::channel(16);
        let target = ResolvedTarget {
            base_url: "http://127.0.0.1:9".into(),
            prompt: String::new(),
            metrics_urls: Vec::new(),
            prompt_words: Vec::new(),
        };
        (
            Orchestrator::new(plan, target, rx, CancellationToken::new()),
            tx,
        )
    }

    async fn join(events: &mpsc::Sender<Event>, node: &str) {
        // Waiting for joins sends agents nothing: the downstream may close.
        let (tx, _) = mpsc::channel(8);
        let hello = Hello {
            agent_id: node.into(),
            node_name: node.into(),
            version: "0".into(),
            cores: 1,
            protocol_version: stampede_common::PROTOCOL_VERSION,
        };
        events.send(Event::Joined { hello, tx }).await.unwrap();
    }

    fn three() -> BTreeSet<String> {
        ["node-a", "node-b", "node-c"].map(String::from).into()
    }

    #[tokio::test(start_paused = true)]
    async fn two_of_three_nodes_time_out_naming_the_missing_one() {
        let (mut orch, events) = orchestrator();
        join(&events, "node-a").await;
        join(&events, "node-c").await;
        let started = tokio::time::Instant::now();
        let e = orch.wait_for_nodes(&three()).await.unwrap_err();
        assert!(
            started.elapsed() >= Duration::from_secs(30),
            "waited the timeout"
        );
        match &e {
            RunError::NodesMissing {
                missing, expected, ..
            } => {
                assert_eq!(missing, &["node-b"]);
                assert_eq!(*expected, 3);
            }
            other => panic!("unexpected {other}"),
        }
        let text = e.to_string();
        assert!(text.contains("node-b") && text.contains("30s"), "{text}");
        assert!(!text.contains("node-a"), "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn all_nodes_joined_ends_the_wait_early() {
        let (mut orch, events) = orchestrator();
        for n in ["node-c", "node-a", "node-b"] {
            join(&events, n).await;
        }
        let started = tokio::time::Instant::now();
        orch.wait_for_nodes(&three()).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
    }
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
    let manifest = crate::manifest::Manifest {
        agents: agents.to_vec(),
        kubernetes: Some(info),
        ..crate::manifest::sample()
    };
    crate::manifest::write(dir.path(), &manifest).unwrap();
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
    let back = crate::manifest::read(dir.path()).unwrap();
    assert_eq!(back, manifest);
    let text = discovery::text(back.kubernetes.as_ref().unwrap());
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

/// `controller run` with `deploy = true`: deploys, waits for the agents of
/// the two eligible nodes (over mTLS with a join token), runs, and records
/// their labels and the gateway in manifest.json and stats.txt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_deploys_waits_for_the_nodes_and_records_them() {
    use stampede_agent::security::{ClientSecurity, ClientTls};
    use stampede_common::security::{Secret, check_token};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    crate::certs::run(&crate::certs::CertsOptions {
        out: certs.clone(),
        hosts: vec!["localhost".into()],
        k8s_secret: None,
        namespace: NS.into(),
        force: false,
    })
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = format!(
        "[run]\nname = \"k8s\"\n[agents]\nremote = 2\nlisten = \"127.0.0.1:{port}\"\njoin_timeout = \"20s\"\n\
         tls = {{ ca = \"certs/ca.pem\", cert = \"certs/controller.pem\", key = \"certs/controller.key\" }}\n\
         join_token_file = \"certs/join-token\"\n\
         [kubernetes]\ndeploy = true\ncontroller_address = \"https://localhost:{port}\"\ngateway_service = \"gw\"\n\
         [target.simulator]\nttft = \"1ms\"\nitl = \"1ms\"\noutput_tokens = 4\n\
         [[phase]]\nkind = \"baseline\"\nduration = \"300ms\"\n"
    );
    let plan_path = dir.path().join("plan.toml");
    std::fs::write(&plan_path, &text).unwrap();
    let plan = stampede_common::plan::load(&plan_path).unwrap();

    let api = cluster();
    nodes(&api);
    api.insert(
        "/api/v1/namespaces/stampede/services",
        json!({ "apiVersion": "v1", "kind": "Service",
                "metadata": { "name": "gw", "namespace": NS },
                "spec": { "clusterIP": "10.0.0.9", "ports": [{ "name": "http", "port": 8000 }] } }),
    );

    let read = |f: &str| std::fs::read(certs.join(f)).unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let agents: Vec<_> = ["node-a", "node-b"]
        .into_iter()
        .map(|node| {
            let cfg = stampede_agent::AgentConfig {
                controller: format!("https://localhost:{port}"),
                agent_id: node.into(),
                node_name: node.into(),
                cores: 1,
                give_up_after: std::time::Duration::from_secs(20),
                clock: Default::default(),
                security: ClientSecurity {
                    tls: Some(ClientTls {
                        ca: read("ca.pem"),
                        cert: Some(read("agent.pem")),
                        key: Some(Secret::new(read("agent.key"))),
                    }),
                    join_token: Some(check_token(&read("join-token"), "join-token").unwrap()),
                    allow_plaintext: false,
                },
            };
            tokio::spawn(stampede_agent::run(cfg, shutdown.clone()))
        })
        .collect();

    let opts = crate::run::RunOptions {
        out: Some(dir.path().join("run")),
        kube_client: Some(super::KubeClient(api.client(NS))),
        ..Default::default()
    };
    let outcome = crate::run::run(
        plan,
        &text,
        opts,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap();
    shutdown.cancel();
    for a in agents {
        let _ = a.await;
    }

    assert_eq!(api.names(DS), ["stampede-agent"], "deployed");
    assert_eq!(
        api.get(CM, "stampede-plan").unwrap()["data"]["plan.toml"],
        text.as_str()
    );
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(outcome.run_dir.join("manifest.json")).unwrap(),
    )
    .unwrap();
    let k8s = &manifest["kubernetes"];
    let names: Vec<&str> = k8s["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["node-a", "node-b"]);
    assert_eq!(k8s["nodes"][0]["gpu_product"], "NVIDIA-H100-80GB-HBM3");
    assert_eq!(k8s["nodes"][0]["instance_type"], "a3-highgpu-8g");
    assert_eq!(k8s["gateway"]["address"], "10.0.0.9:8000");
    let stats = std::fs::read_to_string(outcome.run_dir.join("stats.txt")).unwrap();
    assert!(
        stats.contains("gateway   stampede/gw (ClusterIP) at 10.0.0.9:8000"),
        "{stats}"
    );
    assert!(outcome.summary.phases[0].requests.ok > 0, "the phase ran");
}

#[test]
fn flags_override_the_plan_and_are_checked() {
    use super::command::{Overrides, settings};
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("p.toml");
    std::fs::write(
        &plan,
        "[agents]\nremote = 1\nlisten = \"127.0.0.1:7700\"\n[kubernetes]\nnamespace = \"bench\"\ncontext = \"a\"\n\
         [target]\nurl = \"http://gw:80\"\nmodel = \"m\"\n[[phase]]\nkind = \"baseline\"\nduration = \"1s\"\n",
    )
    .unwrap();
    let s = settings(Some(&plan), &Overrides::default()).unwrap();
    assert_eq!(
        (
            s.kubernetes.namespace.as_str(),
            s.kubernetes.context.as_deref(),
            s.port
        ),
        ("bench", Some("a"), 7700)
    );
    assert!(s.plan_text.unwrap().contains("[kubernetes]"));
    let flags = Overrides {
        namespace: Some("other".into()),
        agent_image: Some("img:1".into()),
        ..Default::default()
    };
    let s = settings(Some(&plan), &flags).unwrap();
    assert_eq!(s.kubernetes.namespace, "other");
    assert_eq!(s.kubernetes.agent_image, "img:1");
    assert_eq!(
        s.kubernetes.context.as_deref(),
        Some("a"),
        "kept from the plan"
    );
    // No plan: defaults, port 7600, no ConfigMap.
    let s = settings(None, &Overrides::default()).unwrap();
    assert_eq!(
        (s.kubernetes.namespace.as_str(), s.port),
        ("stampede", 7600)
    );
    assert!(s.plan_text.is_none());
    let bad = Overrides {
        namespace: Some("Not_A_Namespace".into()),
        ..Default::default()
    };
    let e = settings(None, &bad).unwrap_err().to_string();
    assert!(
        e.contains("kubernetes.namespace") && e.contains("Not_A_Namespace"),
        "{e}"
    );
}

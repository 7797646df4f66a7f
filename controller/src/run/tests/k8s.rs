//! A run that deploys agents on Kubernetes (the in-memory API server) and
//! records the nodes they ran on.

use crate::orchestrate::k8s::tests::*;
use serde_json::{Value, json};

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
    crate::orchestrate::certs::run(&crate::orchestrate::certs::CertsOptions {
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
    let plan = stampede_plan::load(&plan_path).unwrap();

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
        kube_client: Some(crate::orchestrate::k8s::KubeClient(api.client(NS))),
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
    use crate::run::cluster::{Overrides, settings};
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

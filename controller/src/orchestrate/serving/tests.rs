//! The serving lifecycle against the in-memory API server, a loopback HTTP
//! server that turns healthy after a while, the embedded simulator, and a
//! fake `helm` that records its argv.

use super::*;
use crate::orchestrate::k8s::fake::FakeApi;
use serde_json::json;
use stampede_plan::serving::{self as spec, ServingSpec};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(crate) const NS: &str = "bench";
pub(crate) const DEPLOYS: &str = "/apis/apps/v1/namespaces/bench/deployments";
pub(crate) const SVC: &str = "/api/v1/namespaces/bench/services";
pub(crate) const PODS: &str = "/api/v1/namespaces/bench/pods";
pub(crate) const EVENTS: &str = "/api/v1/namespaces/bench/events";
pub(crate) const SECRETS: &str = "/api/v1/namespaces/bench/secrets";
pub(crate) const TOKEN_VALUE: &str = "hf_never_copied_value";

pub(crate) const VLLM: &str = r#"
method = "standalone"
image = "vllm/vllm-openai:v0.11.0"
model = "meta-llama/Llama-3.1-70B-Instruct"
args = ["--tensor-parallel-size", "4", "--max-model-len", "8192"]
gpus = 4
gpu_product = "NVIDIA-H100-80GB-HBM3"
env = { VLLM_LOGGING_LEVEL = "INFO" }
hf_token_secret = { name = "hf-token", key = "token" }
model_cache = { pvc = "hf-cache" }
readiness_timeout = "3s"
"#;

pub(crate) fn parse(text: &str) -> ServingSpec {
    let raw: spec::RawServing = toml::from_str(text).unwrap();
    spec::validate(Path::new("p.toml"), &raw, NS).unwrap()
}

/// A cluster holding the HF token Secret, an unrelated Deployment and a
/// same-kind Service someone else made.
pub(crate) fn cluster() -> FakeApi {
    let api = FakeApi::new();
    api.insert(
        SECRETS,
        json!({ "apiVersion": "v1", "kind": "Secret",
                "metadata": { "name": "hf-token", "namespace": NS },
                "stringData": { "token": TOKEN_VALUE } }),
    );
    api.insert(
        DEPLOYS,
        json!({ "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": { "name": "other-app", "namespace": NS,
                              "labels": { "app.kubernetes.io/component": "serving" } } }),
    );
    api
}

/// Loopback HTTP server: the first `fail` requests get 503, later ones 200
/// (`/v1/models` with one model). Returns its base URL and request count.
pub(crate) async fn turns_healthy(fail: usize) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let Ok(len) = sock.read(&mut buf).await else {
                    return;
                };
                let req = String::from_utf8_lossy(&buf[..len]).to_string();
                let (status, body) = if n < fail {
                    ("503 Service Unavailable", String::new())
                } else if req.starts_with("GET /v1/models") {
                    (
                        "200 OK",
                        r#"{"object":"list","data":[{"id":"m","max_model_len":8192}]}"#.to_string(),
                    )
                } else {
                    ("200 OK", String::new())
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nserver: fake-vllm\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    (url, count)
}

pub(crate) fn opts(api: &FakeApi, probe: &str) -> ServingOptions {
    ServingOptions {
        client: Some(crate::orchestrate::k8s::KubeClient(api.client(NS))),
        probe_url: Some(probe.to_string()),
        poll: Duration::from_millis(20),
        ..ServingOptions::default()
    }
}

#[tokio::test]
async fn standalone_deploys_waits_records_and_removes_only_its_objects() {
    let api = cluster();
    let (url, count) = turns_healthy(3).await;
    let mut serving = Serving::new(opts(&api, &url));
    let s = parse(VLLM);
    assert_eq!(
        serving.ensure(&s, &CancellationToken::new()).await.unwrap(),
        Ensured::Deployed
    );
    assert!(count.load(Ordering::SeqCst) > 3, "probed past the 503s");

    let d = api
        .get(DEPLOYS, "stampede-serving")
        .expect("Deployment applied");
    assert_eq!(
        d["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "stampede"
    );
    assert_eq!(
        d["metadata"]["labels"]["app.kubernetes.io/component"],
        "serving"
    );
    assert_eq!(d["spec"]["strategy"]["type"], "Recreate");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(
        pod["nodeSelector"],
        json!({ "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3" })
    );
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "vllm/vllm-openai:v0.11.0");
    assert_eq!(
        c["args"],
        json!([
            "--model",
            "meta-llama/Llama-3.1-70B-Instruct",
            "--port",
            "8000",
            "--tensor-parallel-size",
            "4",
            "--max-model-len",
            "8192"
        ])
    );
    assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"], "4");
    assert_eq!(c["resources"]["requests"]["nvidia.com/gpu"], "4");
    assert_eq!(
        c["env"],
        json!([
            { "name": "VLLM_LOGGING_LEVEL", "value": "INFO" },
            { "name": "HF_TOKEN", "valueFrom": { "secretKeyRef":
                { "name": "hf-token", "key": "token", "optional": false } } },
        ])
    );
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert_eq!(mounts, ["/root/.cache/huggingface", "/dev/shm"]);
    assert_eq!(
        pod["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "hf-cache"
    );
    let svc = api.get(SVC, "stampede-serving").expect("Service applied");
    assert_eq!(svc["spec"]["ports"][0]["port"], 8000);
    assert_eq!(
        svc["spec"]["selector"],
        d["spec"]["selector"]["matchLabels"]
    );
    for (coll, name) in api.all() {
        if coll != SECRETS {
            let text = api.get(&coll, &name).unwrap().to_string();
            assert!(!text.contains(TOKEN_VALUE), "{coll}/{name} holds the token");
        }
    }

    let r = serving.record().unwrap().clone();
    assert_eq!(r.method, "standalone");
    assert_eq!(
        r.deployed,
        [
            "Deployment bench/stampede-serving",
            "Service bench/stampede-serving"
        ]
    );
    let server = r.server.as_ref().unwrap();
    assert_eq!(
        (server.gpus, server.image.as_str()),
        (4, "vllm/vllm-openai:v0.11.0")
    );
    assert_eq!(server.hf_token_secret.as_ref().unwrap().name, "hf-token");
    assert_eq!(r.endpoint.health_status, Some(200));
    assert_eq!(r.endpoint.server.as_deref(), Some("fake-vllm"));
    assert_eq!(
        r.endpoint.models,
        [crate::model::ModelInfo {
            id: "m".into(),
            max_model_len: Some(8192)
        }]
    );
    assert!(!serde_json::to_string(&r).unwrap().contains(TOKEN_VALUE));

    let before = api.all();
    let lines = serving.finish().await.unwrap();
    assert_eq!(
        lines,
        [
            "Deployment bench/stampede-serving: deleted",
            "Service bench/stampede-serving: deleted"
        ]
    );
    let after = api.all();
    let removed: Vec<_> = before.iter().filter(|o| !after.contains(o)).collect();
    assert_eq!(
        removed,
        [
            &(SVC.to_string(), "stampede-serving".to_string()),
            &(DEPLOYS.to_string(), "stampede-serving".to_string())
        ]
    );
    assert!(
        api.get(DEPLOYS, "other-app").is_some(),
        "unlabelled object kept"
    );
}

#[tokio::test]
async fn readiness_timeout_names_the_pods_events_and_log() {
    let api = cluster();
    let labels = objects::labels("stampede-serving");
    api.insert(
        PODS,
        json!({ "apiVersion": "v1", "kind": "Pod",
                "metadata": { "name": "stampede-serving-5d9c-x2", "namespace": NS, "labels": labels },
                "status": { "phase": "Pending" } }),
    );
    api.insert(
        EVENTS,
        json!({ "apiVersion": "v1", "kind": "Event",
                "metadata": { "name": "e1", "namespace": NS },
                "involvedObject": { "kind": "Pod", "name": "stampede-serving-5d9c-x2" },
                "type": "Warning", "reason": "FailedScheduling",
                "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu." }),
    );
    api.insert(
        EVENTS,
        json!({ "apiVersion": "v1", "kind": "Event",
                "metadata": { "name": "e2", "namespace": NS },
                "involvedObject": { "kind": "Pod", "name": "unrelated-pod" },
                "type": "Normal", "reason": "Pulled", "message": "not about us" }),
    );
    api.set_log(
        PODS,
        "stampede-serving-5d9c-x2",
        &[
            "loading weights",
            "torch.OutOfMemoryError: CUDA out of memory",
        ],
    );
    let (url, _) = turns_healthy(usize::MAX).await;
    let mut o = opts(&api, &url);
    o.poll = Duration::from_millis(50);
    let mut serving = Serving::new(o);
    let s = parse(&VLLM.replace("\"3s\"", "\"300ms\""));
    let e = serving
        .ensure(&s, &CancellationToken::new())
        .await
        .unwrap_err()
        .to_string();
    for want in [
        "not ready within 300ms",
        "/health: HTTP 503",
        "pod stampede-serving-5d9c-x2 (Pending)",
        "Warning FailedScheduling: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
        "torch.OutOfMemoryError: CUDA out of memory",
    ] {
        assert!(e.contains(want), "{want:?} missing from: {e}");
    }
    assert!(!e.contains("not about us"), "only the pod's events: {e}");
    assert!(
        api.requests()
            .iter()
            .any(|r| r.contains("fieldSelector=involvedObject.name%3Dstampede-serving-5d9c-x2"))
    );
    assert!(
        api.requests()
            .iter()
            .any(|r| r.contains("/log?") && r.contains("tailLines=20"))
    );
    // What was applied before the timeout is still removed.
    serving.teardown().await.unwrap();
    assert!(api.get(DEPLOYS, "stampede-serving").is_none());
}

#[tokio::test]
async fn a_sweep_redeploys_only_when_a_stack_axis_changes() {
    let api = cluster();
    let (url, _) = turns_healthy(0).await;
    let mut serving = Serving::new(opts(&api, &url));
    let cancel = CancellationToken::new();
    // Cells as a sweep would validate them: three load levels on one stack.
    let cell = |model: &str, rate: u32| {
        let text = format!(
            "[serving]\nnamespace = \"bench\"\n{}\n[[phase]]\nkind = \"constant\"\nrate = {rate}\nduration = \"1s\"\n",
            VLLM.replace("meta-llama/Llama-3.1-70B-Instruct", model)
        );
        let p = Path::new("cell.toml");
        stampede_plan::parse(&text, p).unwrap().validate(p).unwrap()
    };
    let deletes = || {
        api.requests()
            .iter()
            .filter(|r| r.starts_with("DELETE"))
            .count()
    };
    for rate in [1, 5, 10] {
        let plan = cell("meta-llama/Llama-3.1-70B-Instruct", rate);
        serving
            .ensure(plan.serving.as_ref().unwrap(), &cancel)
            .await
            .unwrap();
    }
    assert_eq!(
        (serving.deploys(), deletes()),
        (1, 0),
        "load levels alone: one deploy"
    );
    let uid = api.get(DEPLOYS, "stampede-serving").unwrap()["metadata"]["uid"].clone();

    let plan = cell("meta-llama/Llama-3.3-70B-Instruct", 1);
    let r = serving
        .ensure(plan.serving.as_ref().unwrap(), &cancel)
        .await
        .unwrap();
    assert_eq!(r, Ensured::Deployed);
    assert_eq!(
        (serving.deploys(), deletes()),
        (2, 2),
        "model change: teardown + deploy"
    );
    let d = api.get(DEPLOYS, "stampede-serving").unwrap();
    assert_ne!(d["metadata"]["uid"], uid, "a new Deployment");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["args"][1],
        "meta-llama/Llama-3.3-70B-Instruct"
    );
}

/// The embedded simulator on a loopback port, and the token that stops it.
pub(crate) async fn simulator() -> (stampede_sim::RunningSim, CancellationToken) {
    let stop = CancellationToken::new();
    let sim = stampede_sim::start(
        stampede_sim::SimConfig::default(),
        "127.0.0.1:0".parse().unwrap(),
        stop.clone(),
    )
    .await
    .unwrap();
    (sim, stop)
}

#[tokio::test]
async fn existing_gateway_is_recorded_from_the_simulator() {
    let (sim, stop) = simulator().await;
    let s = parse(&format!(
        "method = \"existing\"\nurl = \"{}\"",
        sim.base_url()
    ));
    let mut serving = Serving::new(ServingOptions {
        poll: Duration::from_millis(20),
        ..ServingOptions::default()
    });
    serving.ensure(&s, &CancellationToken::new()).await.unwrap();
    let r = serving.record().unwrap();
    assert_eq!(r.deployed, Vec::<String>::new());
    assert_eq!(r.endpoint.health_status, Some(200));
    assert_eq!(
        r.endpoint
            .models
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>(),
        ["stampede-sim"]
    );
    assert!(r.endpoint.metrics);
    assert_eq!(
        serving.finish().await.unwrap(),
        [format!(
            "existing gateway {}: left as it was",
            sim.base_url()
        )]
    );
    stop.cancel();
}

#[cfg(unix)]
pub(crate) fn fake_helm(dir: &Path, log: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("helm");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\" >> '{}'; done\necho --- >> '{}'\n", log.display(), log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn helm_installs_with_exact_arguments_and_uninstalls_in_reverse() {
    let (sim, stop) = simulator().await;
    let bin = tempfile::tempdir().unwrap();
    let log = bin.path().join("argv.log");
    fake_helm(bin.path(), &log);
    let s = parse(&format!(
        r#"
method = "helm"
url = "{}"
readiness_timeout = "10m"
[[chart]]
release = "infra"
chart = "llm-d-infra"
repo = "https://charts.example.invalid/llm-d"
version = "1.3.0"
values = ["values/infra.yaml"]
[[chart]]
release = "ms"
chart = "oci://registry.example.invalid/llm-d-modelservice"
set = {{ "modelArtifacts.name" = "meta-llama/Llama-3.1-8B-Instruct", "decode.replicas" = "2" }}
"#,
        sim.base_url()
    ));
    let mut serving = Serving::new(ServingOptions {
        search_path: Some(bin.path().as_os_str().to_owned()),
        kubernetes: stampede_plan::kubernetes::Kubernetes {
            context: Some("ocp-h100".into()),
            ..Default::default()
        },
        poll: Duration::from_millis(20),
        ..ServingOptions::default()
    });
    serving.ensure(&s, &CancellationToken::new()).await.unwrap();
    assert_eq!(
        serving.record().unwrap().deployed,
        ["helm release bench/infra", "helm release bench/ms"]
    );
    serving.finish().await.unwrap();
    let argv = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<Vec<&str>> = argv
        .split("---\n")
        .filter(|c| !c.is_empty())
        .map(|c| c.lines().collect())
        .collect();
    assert_eq!(
        calls,
        [
            vec![
                "upgrade",
                "--install",
                "infra",
                "llm-d-infra",
                "--namespace",
                "bench",
                "--wait",
                "--timeout",
                "600s",
                "--kube-context",
                "ocp-h100",
                "--repo",
                "https://charts.example.invalid/llm-d",
                "--version",
                "1.3.0",
                "--values",
                "values/infra.yaml"
            ],
            vec![
                "upgrade",
                "--install",
                "ms",
                "oci://registry.example.invalid/llm-d-modelservice",
                "--namespace",
                "bench",
                "--wait",
                "--timeout",
                "600s",
                "--kube-context",
                "ocp-h100",
                "--set",
                "decode.replicas=2",
                "--set",
                "modelArtifacts.name=meta-llama/Llama-3.1-8B-Instruct"
            ],
            vec![
                "uninstall",
                "ms",
                "--namespace",
                "bench",
                "--wait",
                "--kube-context",
                "ocp-h100"
            ],
            vec![
                "uninstall",
                "infra",
                "--namespace",
                "bench",
                "--wait",
                "--kube-context",
                "ocp-h100"
            ],
        ]
    );
    stop.cancel();
}

#[tokio::test]
async fn helm_missing_from_path_is_named() {
    let empty = tempfile::tempdir().unwrap();
    let s = parse(
        "method = \"helm\"\nurl = \"http://127.0.0.1:9\"\n[[chart]]\nrelease = \"r\"\nchart = \"c\"",
    );
    let mut serving = Serving::new(ServingOptions {
        search_path: Some(empty.path().as_os_str().to_owned()),
        ..ServingOptions::default()
    });
    let e = serving
        .ensure(&s, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(e.is_bad_input());
    let msg = e.to_string();
    assert!(
        msg.contains("`helm`") && msg.contains("not on PATH") && msg.contains("install Helm"),
        "{msg}"
    );
    assert!(msg.contains(&empty.path().display().to_string()), "{msg}");
    assert_eq!(serving.deploys(), 0, "nothing started");
}

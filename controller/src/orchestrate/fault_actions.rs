//! Fires a phase's fault actions on the phase's clock.
//!
//! The phase clock starts at the instant agreed with the agents, so an
//! action at `at = "20s"` lands 20 s into the same windows the agents report.
//! Each action is timed as issued (not as planned) and its outcome, success or
//! the error, goes back to the run loop to be recorded; actions still pending
//! when the phase ends are reported as not fired, never dropped. [`Injector::apply`]
//! is the one dispatch point from an [`Action`] to what carries it out.

use crate::model::FiredAction;
use stampede_plan::fault::{Action, FaultAction, SimFaults};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Timeout of one action's requests.
const ACTION_TIMEOUT: Duration = Duration::from_secs(5);

impl FiredAction {
    /// What became of it, for people: when it fired and how long it took,
    /// or why it failed or never fired.
    pub fn outcome(&self) -> String {
        match (&self.error, self.fired_at_s) {
            (None, Some(t)) => format!(
                "fired at {t:.3} s ({:.1} ms)",
                self.took_ms.unwrap_or_default()
            ),
            (Some(e), Some(t)) => format!("fired at {t:.3} s, FAILED: {e}"),
            (Some(e), None) => e.clone(),
            (None, None) => "not fired".into(),
        }
    }

    /// Fired and succeeded: its instant.
    pub fn instant(&self) -> Option<f64> {
        self.fired_at_s.filter(|_| self.error.is_none())
    }
}

/// Carries out fault actions.
#[derive(Debug, Clone)]
pub struct Injector {
    /// The HTTP client, or why it could not be built (then every action
    /// fails with that reason, recorded like any other failure).
    client: Result<reqwest::Client, String>,
    /// Base URL of the built-in simulator, when the run started one.
    simulator: Option<String>,
    /// Kubernetes client for `delete_pod`/`scale` (`None`: connect with
    /// `kubernetes` when an action needs it).
    kube: Option<crate::orchestrate::k8s::KubeClient>,
    kubernetes: stampede_plan::kubernetes::Kubernetes,
}

/// What an action reported besides success.
#[derive(Debug, Default)]
struct Applied {
    injected_before: Option<u64>,
    injected_after: Option<u64>,
}

impl Default for Injector {
    /// An injector, acting on no built-in simulator until told
    /// ([`Injector::set_simulator`]).
    fn default() -> Self {
        let client = reqwest::Client::builder()
            .timeout(ACTION_TIMEOUT)
            .user_agent(concat!("stampede-controller/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the fault-action client: {e}"));
        Self {
            client,
            simulator: None,
            kube: None,
            kubernetes: Default::default(),
        }
    }
}

impl Injector {
    /// Act on the simulator at `base_url` when an action names none.
    pub fn set_simulator(&mut self, base_url: &str) {
        self.simulator = Some(base_url.to_string());
    }

    /// Act on the cluster of `kubernetes` (context), through `client` when given.
    pub fn set_cluster(
        &mut self,
        kubernetes: stampede_plan::kubernetes::Kubernetes,
        client: Option<crate::orchestrate::k8s::KubeClient>,
    ) {
        self.kubernetes = kubernetes;
        self.kube = client;
    }

    /// Fire `actions` (in time order) at `start` + their offsets, sending each
    /// outcome to `tx`. When `stop` is cancelled the actions not yet fired are
    /// sent as not fired.
    pub fn spawn(
        &self,
        start: Instant,
        actions: Vec<FaultAction>,
        tx: mpsc::Sender<FiredAction>,
        stop: CancellationToken,
    ) -> JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut stopped = false;
            for (i, a) in actions.iter().enumerate() {
                let index = i as u32;
                if !stopped {
                    tokio::select! {
                        () = tokio::time::sleep_until(start + a.at) => {}
                        () = stop.cancelled() => stopped = true,
                    }
                }
                let mut fired = FiredAction {
                    index,
                    kind: a.action.kind().to_string(),
                    action: a.action.describe(),
                    restores: a.action.restores(),
                    at_s: a.at.as_secs_f64(),
                    fired_at_s: None,
                    took_ms: None,
                    error: None,
                    target_injected_before: None,
                    target_injected_after: None,
                };
                if stopped {
                    fired.error = Some("not fired: the phase ended first".into());
                } else {
                    let issued = Instant::now();
                    let (applied, error) = match me.apply(&a.action).await {
                        Ok(applied) => (applied, None),
                        Err((applied, e)) => (applied, Some(e)),
                    };
                    fired.took_ms = Some(issued.elapsed().as_secs_f64() * 1e3);
                    fired.fired_at_s = Some(issued.saturating_duration_since(start).as_secs_f64());
                    fired.error = error;
                    fired.target_injected_before = applied.injected_before;
                    fired.target_injected_after = applied.injected_after;
                }
                if tx.send(fired).await.is_err() {
                    return;
                }
            }
        })
    }

    /// Carry out one action: the dispatch point of every kind of action.
    async fn apply(&self, action: &Action) -> Result<Applied, (Applied, String)> {
        match action {
            Action::Simulator {
                settings,
                admin_url,
            } => {
                let Some(base) = admin_url.as_deref().or(self.simulator.as_deref()) else {
                    return Err((
                        Applied::default(),
                        "no simulator to act on (the run did not start one)".into(),
                    ));
                };
                self.simulator(base, settings).await
            }
            Action::DeletePod {
                namespace,
                deployment,
            } => self
                .delete_pod(namespace, deployment)
                .await
                .map(|()| Applied::default())
                .map_err(|e| (Applied::default(), e)),
            Action::Scale {
                namespace,
                deployment,
                replicas,
                ..
            } => self
                .scale(namespace, deployment, *replicas)
                .await
                .map(|()| Applied::default())
                .map_err(|e| (Applied::default(), e)),
        }
    }

    async fn kube(&self) -> Result<kube::Client, String> {
        match &self.kube {
            Some(c) => Ok(c.0.clone()),
            None => crate::orchestrate::k8s::connect(&self.kubernetes)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// Delete the first (by name) pod of `deployment` not already terminating.
    async fn delete_pod(&self, ns: &str, deployment: &str) -> Result<(), String> {
        use k8s_openapi::api::apps::v1::Deployment;
        use k8s_openapi::api::core::v1::Pod;
        use kube::api::{Api, DeleteParams, ListParams};
        let client = self.kube().await?;
        let d = Api::<Deployment>::namespaced(client.clone(), ns)
            .get(deployment)
            .await
            .map_err(|e| format!("Deployment {ns}/{deployment}: {e}"))?;
        let labels = d
            .spec
            .and_then(|s| s.selector.match_labels)
            .filter(|l| !l.is_empty())
            .ok_or_else(|| format!("Deployment {ns}/{deployment} has no matchLabels selector"))?;
        let selector = labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let pods = Api::<Pod>::namespaced(client, ns);
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| format!("pods of {ns}/{deployment}: {e}"))?;
        let victim = list
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.name.clone())
            .min()
            .ok_or_else(|| format!("Deployment {ns}/{deployment} has no running pod"))?;
        pods.delete(&victim, &DeleteParams::default())
            .await
            .map_err(|e| format!("deleting pod {ns}/{victim}: {e}"))?;
        tracing::info!("fault: deleted pod {ns}/{victim} of {deployment}");
        Ok(())
    }

    /// Set `deployment`'s replicas (read, change, replace: a concurrent change
    /// is refused by its resourceVersion rather than overwritten).
    async fn scale(&self, ns: &str, deployment: &str, replicas: i32) -> Result<(), String> {
        use k8s_openapi::api::apps::v1::Deployment;
        use kube::api::{Api, PostParams};
        let client = self.kube().await?;
        let api = Api::<Deployment>::namespaced(client, ns);
        let mut d = api
            .get(deployment)
            .await
            .map_err(|e| format!("Deployment {ns}/{deployment}: {e}"))?;
        d.spec.get_or_insert_with(Default::default).replicas = Some(replicas);
        api.replace(deployment, &PostParams::default(), &d)
            .await
            .map_err(|e| format!("scaling {ns}/{deployment} to {replicas}: {e}"))?;
        Ok(())
    }

    /// Replace the simulator's fault settings, reading its injected-fault
    /// count before and after (a count it cannot give is left out, not an error).
    async fn simulator(
        &self,
        base: &str,
        settings: &SimFaults,
    ) -> Result<Applied, (Applied, String)> {
        let client = match &self.client {
            Ok(c) => c,
            Err(e) => return Err((Applied::default(), e.clone())),
        };
        let injected_before = self.injected(client, base).await;
        let mut applied = Applied {
            injected_before,
            injected_after: None,
        };
        let url = format!("{base}/sim/faults");
        let result = client.post(&url).json(settings).send().await;
        let response = match result {
            Ok(r) => r,
            Err(e) => return Err((applied, format!("POST {url}: {e}"))),
        };
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let body: String = body.chars().take(300).collect();
            return Err((applied, format!("POST {url}: HTTP {status}: {body}")));
        }
        applied.injected_after = self.injected(client, base).await;
        Ok(applied)
    }

    /// The simulator's total of injected faults (`GET /sim/stats`).
    async fn injected(&self, client: &reqwest::Client, base: &str) -> Option<u64> {
        let url = format!("{base}/sim/stats");
        let stats: stampede_sim::StatsSnapshot = match client.get(&url).send().await {
            Ok(r) if r.status().is_success() => match r.json().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("GET {url}: {e}");
                    return None;
                }
            },
            Ok(r) => {
                tracing::warn!("GET {url}: HTTP {}", r.status());
                return None;
            }
            Err(e) => {
                tracing::warn!("GET {url}: {e}");
                return None;
            }
        };
        Some(stats.faults_injected.total())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stampede_plan::duration::HumanDuration;

    fn sim_action(at_ms: u64, settings: SimFaults, admin_url: Option<String>) -> FaultAction {
        FaultAction {
            at: Duration::from_millis(at_ms),
            action: Action::Simulator {
                settings,
                admin_url,
            },
        }
    }

    #[tokio::test]
    async fn actions_fire_on_the_phase_clock_and_report_the_targets_count() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let shutdown = CancellationToken::new();
        let sim = stampede_sim::start(
            stampede_sim::SimConfig::default(),
            "127.0.0.1:0".parse().unwrap(),
            shutdown.clone(),
        )
        .await
        .unwrap();
        let mut injector = Injector::default();
        injector.set_simulator(&sim.base_url());
        let on = SimFaults {
            error_503: Some(1.0),
            warmup: Some(HumanDuration::from(Duration::from_secs(1))),
            ..Default::default()
        };
        let actions = vec![
            sim_action(50, on, None),
            sim_action(150, SimFaults::default(), None),
            // An external simulator that is not there: an error, named.
            sim_action(200, SimFaults::default(), Some("http://127.0.0.1:9".into())),
            // Never reached: the phase ends first.
            sim_action(60_000, SimFaults::default(), None),
        ];
        let (tx, mut rx) = mpsc::channel(8);
        let stop = CancellationToken::new();
        let start = Instant::now();
        let task = injector.spawn(start, actions, tx, stop.clone());
        let first = rx.recv().await.unwrap();
        assert_eq!(first.error, None, "{first:?}");
        let t = first.fired_at_s.unwrap();
        assert!((0.05..0.5).contains(&t), "fired at {t}");
        // While the fault is on, the simulator injects.
        let r = reqwest::Client::new()
            .post(format!("{}/v1/completions", sim.base_url()))
            .body(r#"{"prompt":"hi","max_tokens":2}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 503);
        let off = rx.recv().await.unwrap();
        assert_eq!(off.error, None, "{off:?}");
        assert_eq!(
            (off.target_injected_before, off.target_injected_after),
            (Some(1), Some(1))
        );
        let bad = rx.recv().await.unwrap();
        let e = bad.error.unwrap();
        assert!(e.contains("http://127.0.0.1:9/sim/faults"), "{e}");
        stop.cancel();
        let last = rx.recv().await.unwrap();
        assert_eq!((last.index, last.fired_at_s), (3, None));
        assert!(last.error.unwrap().contains("not fired"));
        task.await.unwrap();
        let faults: serde_json::Value = reqwest::get(format!("{}/sim/faults", sim.base_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(faults["error_503"], 0.0, "{faults}");
        shutdown.cancel();
    }

    #[tokio::test]
    async fn kubernetes_actions_delete_a_pod_and_scale_the_deployment() {
        use serde_json::json;
        let _ = rustls::crypto::ring::default_provider().install_default();
        const DEPLOYS: &str = "/apis/apps/v1/namespaces/bench/deployments";
        const PODS: &str = "/api/v1/namespaces/bench/pods";
        let api = crate::orchestrate::k8s::fake::FakeApi::new();
        let selector = json!({ "app.kubernetes.io/instance": "stampede-serving" });
        api.insert(
            DEPLOYS,
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": { "name": "stampede-serving", "namespace": "bench" },
                "spec": {
                    "replicas": 2,
                    "selector": { "matchLabels": selector },
                    "template": { "metadata": { "labels": selector },
                                  "spec": { "containers": [{ "name": "server", "image": "x" }] } }
                }
            }),
        );
        for (name, labels) in [
            ("stampede-serving-b", selector.clone()),
            ("stampede-serving-a", selector.clone()),
            ("aaa-unrelated", json!({ "app": "other" })),
        ] {
            api.insert(
                PODS,
                json!({ "apiVersion": "v1", "kind": "Pod",
                        "metadata": { "name": name, "namespace": "bench", "labels": labels } }),
            );
        }
        let mut injector = Injector::default();
        injector.set_cluster(
            Default::default(),
            Some(crate::orchestrate::k8s::KubeClient(api.client("bench"))),
        );
        let at = |ms: u64, action: Action| FaultAction {
            at: Duration::from_millis(ms),
            action,
        };
        let actions = vec![
            at(
                10,
                Action::DeletePod {
                    namespace: "bench".into(),
                    deployment: "stampede-serving".into(),
                },
            ),
            at(
                20,
                Action::Scale {
                    namespace: "bench".into(),
                    deployment: "stampede-serving".into(),
                    replicas: 0,
                    restores: false,
                },
            ),
            at(
                30,
                Action::DeletePod {
                    namespace: "bench".into(),
                    deployment: "missing".into(),
                },
            ),
        ];
        let (tx, mut rx) = mpsc::channel(8);
        let task = injector.spawn(Instant::now(), actions, tx, CancellationToken::new());
        let deleted = rx.recv().await.unwrap();
        assert_eq!(deleted.error, None, "{deleted:?}");
        assert_eq!(deleted.kind, "delete_pod");
        // The first pod of the Deployment by name, nothing else.
        assert_eq!(api.names(PODS), ["aaa-unrelated", "stampede-serving-b"]);
        let scaled = rx.recv().await.unwrap();
        assert_eq!(scaled.error, None, "{scaled:?}");
        assert_eq!(scaled.action, "scale bench/stampede-serving to 0");
        let d = api.get(DEPLOYS, "stampede-serving").unwrap();
        assert_eq!(d["spec"]["replicas"], 0);
        assert_eq!(
            d["spec"]["selector"]["matchLabels"], selector,
            "the rest is kept"
        );
        let missing = rx.recv().await.unwrap();
        let e = missing.error.unwrap();
        assert!(e.contains("Deployment bench/missing"), "{e}");
        task.await.unwrap();
    }
}

//! Fault actions scheduled inside a phase: `[[phase.faults]]`.
//!
//! A recovery experiment needs a fault switched on at a known instant of a
//! phase and off at another, so the report can time the way in and the way
//! back. Each action is checked with the plan (offset inside the phase, known
//! action, settings in range, a target that can take it) before anything
//! runs; the controller fires them on the phase's clock. [`Action`] is an enum
//! so that further kinds of action (for example ones acting on the serving
//! stack through the Kubernetes API) join as new variants with their own keys,
//! their own validation arm here and their own arm in the controller's
//! dispatch.

use crate::duration::HumanDuration;
use crate::workload::{Problem, problem};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[[phase.faults]]` exactly as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawFault {
    /// Offset into the phase at which the action fires, e.g. "20s".
    pub at: Option<HumanDuration>,
    /// What to do: "simulator" (replace the simulator's fault settings),
    /// "delete_pod" (delete one pod of the serving Deployment) or "scale"
    /// (set the serving Deployment's replicas).
    pub action: Option<String>,
    /// `action = "simulator"`: the simulator's new fault settings; keys left
    /// out are off, so `set = {}` switches every fault off.
    pub set: Option<SimFaults>,
    /// `action = "simulator"` against an external simulator (`target.url`):
    /// its base URL, where `POST /sim/faults` is served.
    pub admin_url: Option<String>,
    /// `delete_pod`/`scale`: the Deployment acted on. Default: the
    /// `[serving]` standalone stack's name.
    pub deployment: Option<String>,
    /// `delete_pod`/`scale`: its namespace. Default: `serving.namespace`, else
    /// `kubernetes.namespace`.
    pub namespace: Option<String>,
    /// `scale`: the new replica count.
    pub replicas: Option<i32>,
    /// `scale`: whether this action ends a fault episode (scaling back up).
    /// Default false.
    pub restores: Option<bool>,
}

/// Where Kubernetes fault actions act when they name no Deployment or
/// namespace: the plan's serving stack and namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterDefaults {
    /// The plan has `[kubernetes]` or `[serving]`: there is a cluster to act on.
    pub cluster: bool,
    /// Default namespace.
    pub namespace: Option<String>,
    /// Default Deployment (the standalone serving stack's name).
    pub deployment: Option<String>,
}

/// The simulator's fault settings (its `POST /sim/faults` body,
/// docs/simulator.md): rates are probabilities per request.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SimFaults {
    /// Answer `429 Too Many Requests`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_429: Option<f64>,
    /// Answer `500 Internal Server Error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_500: Option<f64>,
    /// Answer `503 Service Unavailable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_503: Option<f64>,
    /// Cut the response after half its tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_cut: Option<f64>,
    /// Never send a token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hang: Option<f64>,
    /// Send one malformed chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub malformed: Option<f64>,
    /// Slow-start period counted from the action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup: Option<HumanDuration>,
    /// Latency multiplier at the start of the slow-start period (1–1000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_factor: Option<f64>,
}

impl SimFaults {
    /// The rates by key.
    fn rates(&self) -> [(&'static str, Option<f64>); 6] {
        [
            ("error_429", self.error_429),
            ("error_500", self.error_500),
            ("error_503", self.error_503),
            ("stream_cut", self.stream_cut),
            ("hang", self.hang),
            ("malformed", self.malformed),
        ]
    }

    /// Whether these settings inject nothing (every rate 0, no slow start).
    pub fn is_off(&self) -> bool {
        let slow = self.warmup.as_ref().is_some_and(|w| !w.get().is_zero())
            && self.warmup_factor.is_some_and(|f| f > 1.0);
        !slow && self.rates().iter().all(|(_, r)| r.unwrap_or(0.0) == 0.0)
    }

    /// `key=value` of every key set, e.g. `error_500=0.5`; `off` when none is.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .rates()
            .iter()
            .filter_map(|(k, r)| r.map(|r| format!("{k}={r}")))
            .collect();
        if let Some(w) = &self.warmup {
            parts.push(format!("warmup={}", humantime::format_duration(w.get())));
        }
        if let Some(f) = self.warmup_factor {
            parts.push(format!("warmup_factor={f}"));
        }
        if parts.is_empty() {
            "off".into()
        } else {
            parts.join(" ")
        }
    }

    fn validate(&self, key: &str) -> Result<(), Problem> {
        let mut sum = 0.0;
        for (k, rate) in self.rates() {
            let Some(rate) = rate else { continue };
            if !(rate.is_finite() && (0.0..=1.0).contains(&rate)) {
                return Err(problem(
                    format!("{key}.{k}"),
                    rate,
                    "must be a probability in [0, 1]",
                ));
            }
            sum += rate;
        }
        if sum > 1.0 + 1e-9 {
            return Err(problem(
                key,
                crate::quote::written(self),
                format!("the rates are exclusive outcomes and must sum to at most 1, got {sum}"),
            ));
        }
        if let Some(f) = self.warmup_factor
            && !(f.is_finite() && (1.0..=1000.0).contains(&f))
        {
            return Err(problem(
                format!("{key}.warmup_factor"),
                f,
                "must be in [1, 1000]",
            ));
        }
        if let Some(w) = &self.warmup
            && w.get() > Duration::from_secs(86_400)
        {
            return Err(problem(
                format!("{key}.warmup"),
                w.shown(),
                "must be at most 24h",
            ));
        }
        Ok(())
    }
}

/// One validated fault action of a phase.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultAction {
    /// Offset into the phase (phase clock: the start instant agreed with the agents).
    pub at: Duration,
    /// What it does.
    pub action: Action,
}

/// What a fault action does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Replace the simulator's fault settings through `POST /sim/faults`.
    Simulator {
        /// The new settings (keys left out are off).
        settings: SimFaults,
        /// Base URL of an external simulator; `None`: the built-in one.
        admin_url: Option<String>,
    },
    /// Delete one running pod of a Deployment (the first by name); its
    /// ReplicaSet starts a replacement, as after a node or pod failure.
    DeletePod {
        /// Namespace.
        namespace: String,
        /// The Deployment whose pod is deleted.
        deployment: String,
    },
    /// Set a Deployment's replica count.
    Scale {
        /// Namespace.
        namespace: String,
        /// The Deployment scaled.
        deployment: String,
        /// New replica count.
        replicas: i32,
        /// Ends a fault episode (scaling back to normal).
        restores: bool,
    },
}

impl Action {
    /// The `action` key's value.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Simulator { .. } => "simulator",
            Action::DeletePod { .. } => "delete_pod",
            Action::Scale { .. } => "scale",
        }
    }

    /// Whether the action puts the target back to normal, ending a fault
    /// episode (the simulator: every fault off).
    pub fn restores(&self) -> bool {
        match self {
            Action::Simulator { settings, .. } => settings.is_off(),
            Action::DeletePod { .. } => false,
            Action::Scale { restores, .. } => *restores,
        }
    }

    /// A one-line description for reports, e.g. `simulator error_500=0.5`.
    pub fn describe(&self) -> String {
        match self {
            Action::Simulator { settings, .. } => format!("simulator {}", settings.describe()),
            Action::DeletePod {
                namespace,
                deployment,
            } => format!("delete_pod {namespace}/{deployment}"),
            Action::Scale {
                namespace,
                deployment,
                replicas,
                ..
            } => format!("scale {namespace}/{deployment} to {replicas}"),
        }
    }
}

const ACTIONS: &str = "expected \"simulator\", \"delete_pod\" or \"scale\"";

/// Validate phase `i`'s fault actions. `simulator_target`: the plan's target
/// is the built-in simulator. Keys in problems are `phase[i].faults[j]...`.
pub fn validate(
    raw: &[RawFault],
    i: usize,
    kind: &str,
    duration: Duration,
    simulator_target: bool,
    cluster: &ClusterDefaults,
) -> Result<Vec<FaultAction>, Problem> {
    let mut out: Vec<FaultAction> = Vec::with_capacity(raw.len());
    for (j, f) in raw.iter().enumerate() {
        let key = |field: &str| format!("phase[{i}].faults[{j}].{field}");
        if kind == "stress" {
            return Err(problem(
                format!("phase[{i}].faults"),
                crate::quote::written(raw),
                "fault actions do not apply to a stress phase (each step is a phase of its own)",
            ));
        }
        let Some(at) = f.at.as_ref().map(HumanDuration::get) else {
            return Err(problem(
                key("at"),
                "(missing)",
                "give the offset into the phase, e.g. \"20s\"",
            ));
        };
        let shown = || crate::duration::shown(f.at.as_ref(), at);
        if at >= duration {
            return Err(problem(
                key("at"),
                shown(),
                format!(
                    "must be inside the phase's duration ({})",
                    humantime::format_duration(duration)
                ),
            ));
        }
        if let Some(prev) = out.last()
            && at < prev.at
        {
            return Err(problem(
                key("at"),
                shown(),
                format!(
                    "actions must be listed in time order; faults[{}] is at {}",
                    j - 1,
                    humantime::format_duration(prev.at)
                ),
            ));
        }
        let Some(name) = f.action.as_deref() else {
            return Err(problem(key("action"), "(missing)", ACTIONS));
        };
        let action = match name {
            "simulator" => simulator_action(f, &key, simulator_target)?,
            "delete_pod" | "scale" => cluster_action(name, f, &key, cluster)?,
            other => return Err(problem(key("action"), format!("{other:?}"), ACTIONS)),
        };
        out.push(FaultAction { at, action });
    }
    Ok(out)
}

/// `action = "simulator"`: new fault settings for the built-in simulator, or
/// for an external one at `admin_url`.
fn simulator_action(
    f: &RawFault,
    key: &impl Fn(&str) -> String,
    simulator_target: bool,
) -> Result<Action, Problem> {
    if f.deployment.is_some()
        || f.namespace.is_some()
        || f.replicas.is_some()
        || f.restores.is_some()
    {
        return Err(problem(
            key("action"),
            "\"simulator\"",
            "`deployment`, `namespace`, `replicas` and `restores` belong to `delete_pod`/`scale`",
        ));
    }
    let Some(settings) = f.set.clone() else {
        return Err(problem(
            key("set"),
            "(missing)",
            "give the simulator's new fault settings, e.g. { error_500 = 0.5 }, or {} for none",
        ));
    };
    settings.validate(&key("set"))?;
    let admin_url = match (&f.admin_url, simulator_target) {
        (Some(_), true) => {
            return Err(problem(
                key("admin_url"),
                format!("{:?}", f.admin_url.as_deref().unwrap_or_default()),
                "the target is the built-in simulator, whose address the controller knows; leave this out",
            ));
        }
        (None, false) => {
            return Err(problem(
                key("admin_url"),
                "(missing)",
                "the simulator action needs a simulator: [target.simulator], or the external simulator's base URL here",
            ));
        }
        (Some(url), false) => {
            let ok = (url.starts_with("http://") || url.starts_with("https://"))
                && url.len() > "https://".len();
            if !ok {
                return Err(problem(
                    key("admin_url"),
                    format!("{url:?}"),
                    "expected an http:// or https:// URL",
                ));
            }
            Some(url.trim_end_matches('/').to_string())
        }
        (None, true) => None,
    };
    Ok(Action::Simulator {
        settings,
        admin_url,
    })
}

/// `delete_pod` / `scale` (`name`): a Deployment of the cluster, named or
/// defaulted from the plan's serving stack.
fn cluster_action(
    name: &str,
    f: &RawFault,
    key: &impl Fn(&str) -> String,
    cluster: &ClusterDefaults,
) -> Result<Action, Problem> {
    if f.set.is_some() || f.admin_url.is_some() {
        return Err(problem(
            key("action"),
            format!("{name:?}"),
            "`set` and `admin_url` belong to the `simulator` action",
        ));
    }
    if !cluster.cluster {
        return Err(problem(
            key("action"),
            format!("{name:?}"),
            "acts on a Kubernetes Deployment: the plan needs [serving] or [kubernetes]",
        ));
    }
    let named = |field: &str, given: &Option<String>, default: &Option<String>| match given
        .as_ref()
        .or(default.as_ref())
    {
        Some(v) if crate::kubernetes::is_dns_label(v) => Ok(v.clone()),
        Some(v) => Err(problem(
            key(field),
            format!("{v:?}"),
            "must be a Kubernetes name (lowercase letters, digits, '-')",
        )),
        None => Err(problem(
            key(field),
            "(missing)",
            "name it (there is no [serving] standalone stack to default to)",
        )),
    };
    let deployment = named("deployment", &f.deployment, &cluster.deployment)?;
    let namespace = named("namespace", &f.namespace, &cluster.namespace)?;
    if name == "delete_pod" {
        if f.replicas.is_some() || f.restores.is_some() {
            let field = if f.replicas.is_some() {
                "replicas"
            } else {
                "restores"
            };
            return Err(problem(
                key(field),
                crate::quote::written_key(f, field),
                "only `scale` takes `replicas` and `restores`",
            ));
        }
        Ok(Action::DeletePod {
            namespace,
            deployment,
        })
    } else {
        let replicas = match f.replicas {
            Some(r) if (0..=1000).contains(&r) => r,
            Some(r) => return Err(problem(key("replicas"), r, "must be in 0..=1000")),
            None => {
                return Err(problem(
                    key("replicas"),
                    "(missing)",
                    "give the new replica count, e.g. replicas = 0",
                ));
            }
        };
        Ok(Action::Scale {
            namespace,
            deployment,
            replicas,
            restores: f.restores.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn raw(text: &str) -> Vec<RawFault> {
        #[derive(Deserialize)]
        struct Doc {
            faults: Vec<RawFault>,
        }
        toml::from_str::<Doc>(text).unwrap().faults
    }

    const TWO: &str = r#"
[[faults]]
at = "20s"
action = "simulator"
set = { error_500 = 0.5 }
[[faults]]
at = "35s"
action = "simulator"
set = {}
"#;

    #[test]
    fn an_on_and_off_pair_validates() {
        let v = validate(
            &raw(TWO),
            0,
            "soak",
            Duration::from_secs(50),
            true,
            &ClusterDefaults::default(),
        )
        .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].at, Duration::from_secs(20));
        assert!(!v[0].action.restores());
        assert!(v[1].action.restores());
        assert_eq!(v[0].action.describe(), "simulator error_500=0.5");
        assert_eq!(v[1].action.describe(), "simulator off");
    }

    #[test]
    fn problems_name_the_key_and_value() {
        let err = |text: &str, sim: bool, d: u64| {
            validate(
                &raw(text),
                1,
                "constant",
                Duration::from_secs(d),
                sim,
                &ClusterDefaults::default(),
            )
            .unwrap_err()
        };
        let e = err(TWO, true, 30);
        assert_eq!(
            (e.0.as_str(), e.1.as_str()),
            ("phase[1].faults[1].at", "\"35s\"")
        );
        assert!(e.2.contains("30s"), "{e:?}");
        let e = err(TWO, false, 50);
        assert_eq!(e.0, "phase[1].faults[0].admin_url");
        let e = err("[[faults]]\nat = \"1s\"\naction = \"reboot\"\n", true, 50);
        assert_eq!(
            (e.0.as_str(), e.1.as_str()),
            ("phase[1].faults[0].action", "\"reboot\"")
        );
        let e = err(
            "[[faults]]\nat = \"1s\"\naction = \"simulator\"\nset = { error_500 = 1.5 }\n",
            true,
            50,
        );
        assert_eq!(e.0, "phase[1].faults[0].set.error_500");
        let e = err(
            "[[faults]]\nat = \"1s\"\naction = \"simulator\"\nset = { error_500 = 0.6, hang = 0.6 }\n",
            true,
            50,
        );
        assert_eq!(e.0, "phase[1].faults[0].set");
        let e = err(
            "[[faults]]\nat = \"9s\"\naction = \"simulator\"\nset = {}\n[[faults]]\nat = \"2s\"\naction = \"simulator\"\nset = {}\n",
            true,
            50,
        );
        assert_eq!(e.0, "phase[1].faults[1].at");
        let e = err(
            "[[faults]]\nat = \"1s\"\naction = \"simulator\"\n",
            true,
            50,
        );
        assert_eq!(e.0, "phase[1].faults[0].set");
        let e = validate(
            &raw(TWO),
            0,
            "stress",
            Duration::from_secs(50),
            true,
            &ClusterDefaults::default(),
        )
        .unwrap_err();
        assert_eq!(e.0, "phase[0].faults");
    }

    #[test]
    fn an_external_simulator_needs_its_url() {
        let text = "[[faults]]\nat = \"1s\"\naction = \"simulator\"\nset = {}\nadmin_url = \"http://sim:8000/\"\n";
        let v = validate(
            &raw(text),
            0,
            "soak",
            Duration::from_secs(5),
            false,
            &ClusterDefaults::default(),
        )
        .unwrap();
        assert_eq!(
            v[0].action,
            Action::Simulator {
                settings: SimFaults::default(),
                admin_url: Some("http://sim:8000".into())
            }
        );
        let e = validate(
            &raw(text),
            0,
            "soak",
            Duration::from_secs(5),
            true,
            &ClusterDefaults::default(),
        )
        .unwrap_err();
        assert_eq!(e.0, "phase[0].faults[0].admin_url");
    }

    #[test]
    fn unknown_settings_are_refused_by_name() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Doc {
            faults: Vec<RawFault>,
        }
        let e = toml::from_str::<Doc>(
            "[[faults]]\nat = \"1s\"\naction = \"simulator\"\nset = { error_502 = 0.1 }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("error_502"), "{e}");
    }

    #[test]
    fn slow_start_is_a_fault_and_serializes_for_the_admin_api() {
        let s = SimFaults {
            warmup: Some(HumanDuration::from(Duration::from_secs(30))),
            warmup_factor: Some(4.0),
            ..Default::default()
        };
        assert!(!s.is_off());
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"warmup":"30s","warmup_factor":4.0}"#
        );
        assert_eq!(serde_json::to_string(&SimFaults::default()).unwrap(), "{}");
    }
}

#[cfg(test)]
mod cluster_tests {
    use super::tests::raw;
    use super::*;

    fn stack() -> ClusterDefaults {
        ClusterDefaults {
            cluster: true,
            namespace: Some("bench".into()),
            deployment: Some("stampede-serving".into()),
        }
    }

    const KUBE: &str = r#"
[[faults]]
at = "10s"
action = "delete_pod"
[[faults]]
at = "20s"
action = "scale"
replicas = 0
[[faults]]
at = "30s"
action = "scale"
deployment = "other"
namespace = "ns2"
replicas = 2
restores = true
"#;

    #[test]
    fn kubernetes_actions_default_to_the_serving_stack() {
        let v = validate(
            &raw(KUBE),
            0,
            "soak",
            Duration::from_secs(60),
            false,
            &stack(),
        )
        .unwrap();
        assert_eq!(v[0].action.describe(), "delete_pod bench/stampede-serving");
        assert!(!v[0].action.restores());
        assert_eq!(v[1].action.describe(), "scale bench/stampede-serving to 0");
        assert!(!v[1].action.restores());
        assert_eq!(v[2].action.describe(), "scale ns2/other to 2");
        assert!(v[2].action.restores());
        assert_eq!(v[2].action.kind(), "scale");
    }

    #[test]
    fn kubernetes_actions_need_a_cluster_and_their_own_keys() {
        let err = |text: &str, c: &ClusterDefaults| {
            let (k, v, why) =
                validate(&raw(text), 2, "soak", Duration::from_secs(60), true, c).unwrap_err();
            format!("{k} = {v}: {why}")
        };
        let e = err(KUBE, &ClusterDefaults::default());
        assert!(
            e.contains("phase[2].faults[0].action") && e.contains("[serving]"),
            "{e}"
        );
        let no_stack = ClusterDefaults {
            cluster: true,
            namespace: Some("bench".into()),
            deployment: None,
        };
        let e = err(KUBE, &no_stack);
        assert!(e.contains("faults[0].deployment = (missing)"), "{e}");
        let e = err("[[faults]]\nat = \"1s\"\naction = \"scale\"\n", &stack());
        assert!(e.contains("faults[0].replicas = (missing)"), "{e}");
        let e = err(
            "[[faults]]\nat = \"1s\"\naction = \"scale\"\nreplicas = -1\n",
            &stack(),
        );
        assert!(e.contains("faults[0].replicas = -1"), "{e}");
        let e = err(
            "[[faults]]\nat = \"1s\"\naction = \"delete_pod\"\nreplicas = 1\n",
            &stack(),
        );
        assert!(e.contains("only `scale`"), "{e}");
        let e = err(
            "[[faults]]\nat = \"1s\"\naction = \"delete_pod\"\ndeployment = \"Bad_Name\"\n",
            &stack(),
        );
        assert!(e.contains("faults[0].deployment = \"Bad_Name\""), "{e}");
        let e = err(
            "[[faults]]\nat = \"1s\"\naction = \"delete_pod\"\nset = {}\n",
            &stack(),
        );
        assert!(e.contains("belong to the `simulator` action"), "{e}");
        let e = err(
            "[[faults]]\nat = \"1s\"\naction = \"simulator\"\nset = {}\nreplicas = 1\n",
            &stack(),
        );
        assert!(e.contains("belong to `delete_pod`/`scale`"), "{e}");
    }
}

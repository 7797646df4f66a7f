//! `controller deploy` and `controller teardown` as library calls: settings
//! from the plan's `[kubernetes]` table (when a plan is given) with the
//! command-line flags on top, validated like a plan, then the API calls.

use crate::orchestrate::error::ControllerError;
use crate::orchestrate::k8s::{K8sError, connect, deploy, discovery};
use stampede_plan as plan;
use stampede_plan::kubernetes::{self, Kubernetes, RawKubernetes};
use std::path::{Path, PathBuf};

/// Default gRPC port of the controller Service when no plan gives one.
pub const DEFAULT_PORT: u16 = 7600;

/// Flags that override the plan's `[kubernetes]` table.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--context`.
    pub context: Option<String>,
    /// `--namespace`.
    pub namespace: Option<String>,
    /// `--image`.
    pub agent_image: Option<String>,
    /// `--controller-address`.
    pub controller_address: Option<String>,
}

/// What `deploy` applies with: settings, the Service port and the plan text.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Validated `[kubernetes]` with the flags applied.
    pub kubernetes: Kubernetes,
    /// gRPC port of the controller (the plan's `agents.listen` port).
    pub port: u16,
    /// The plan, for the ConfigMap.
    pub plan_text: Option<String>,
}

/// Read and validate `plan` (if any) and apply `flags` on top.
pub fn settings(plan_path: Option<&Path>, flags: &Overrides) -> Result<Settings, plan::PlanError> {
    let (mut raw, port, plan_text, path) = match plan_path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| plan::PlanError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            let raw_plan = plan::parse(&text, path)?;
            let validated = raw_plan.validate_without_files(path)?;
            (
                raw_plan.kubernetes.unwrap_or_default(),
                validated.agents.listen.port(),
                Some(text),
                path.to_path_buf(),
            )
        }
        None => (
            RawKubernetes::default(),
            DEFAULT_PORT,
            None,
            PathBuf::from("(command line)"),
        ),
    };
    let set = |slot: &mut Option<String>, flag: &Option<String>| {
        if flag.is_some() {
            slot.clone_from(flag);
        }
    };
    set(&mut raw.context, &flags.context);
    set(&mut raw.namespace, &flags.namespace);
    set(&mut raw.agent_image, &flags.agent_image);
    set(&mut raw.controller_address, &flags.controller_address);
    Ok(Settings {
        kubernetes: kubernetes::validate(&path, &raw)?,
        port: if port == 0 { DEFAULT_PORT } else { port },
        plan_text,
    })
}

/// One line for `controller validate`: what the `[kubernetes]` table will do.
pub fn summary(k: &Kubernetes) -> String {
    let what = if k.deploy {
        format!(
            "deploys {} to nodes matching {} and waits for one agent per eligible node",
            k.agent_image,
            crate::orchestrate::k8s::selector_string(k)
        )
    } else {
        "records node labels of the agents that join".to_string()
    };
    format!(
        "kubernetes: context {}, namespace {}: {what}{}",
        k.context.as_deref().unwrap_or("(current)"),
        k.namespace,
        match &k.gateway_service {
            Some((ns, name)) => format!(", and the address of Service {ns}/{name}"),
            None => String::new(),
        }
    )
}

/// Outcome of `controller deploy`.
#[derive(Debug, Clone)]
pub struct DeployReport {
    /// Objects applied.
    pub applied: deploy::Applied,
    /// Nodes that will each run an agent.
    pub eligible: Vec<String>,
}

impl DeployReport {
    /// What `controller deploy` prints.
    pub fn text(&self, k: &Kubernetes) -> String {
        let mut out: String = self
            .applied
            .iter()
            .map(|a| format!("applied {a}\n"))
            .collect();
        out.push_str(&format!(
            "{} eligible node(s) will run an agent{}\n",
            self.eligible.len(),
            if self.eligible.is_empty() {
                format!(
                    " (label nodes to match {})",
                    crate::orchestrate::k8s::selector_string(k)
                )
            } else {
                format!(": {}", self.eligible.join(", "))
            }
        ));
        out
    }
}

/// What `controller teardown` prints.
pub fn teardown_text(namespace: &str, done: &[deploy::TornDown]) -> String {
    done.iter()
        .map(|t| {
            format!(
                "{} {namespace}/{}: {}\n",
                t.kind,
                t.name,
                t.removal.describe()
            )
        })
        .collect()
}

/// Deploy with `s` through `client`.
pub async fn deploy_with(client: &kube::Client, s: &Settings) -> Result<DeployReport, K8sError> {
    let applied = deploy::deploy(client, &s.kubernetes, s.port, s.plan_text.as_deref()).await?;
    let eligible = discovery::eligible_nodes(client, &s.kubernetes)
        .await?
        .into_iter()
        .collect();
    Ok(DeployReport { applied, eligible })
}

/// `controller deploy`.
pub async fn run_deploy(s: &Settings) -> Result<DeployReport, ControllerError> {
    let client = connect(&s.kubernetes).await?;
    Ok(deploy_with(&client, s).await?)
}

/// `controller teardown`: what it prints.
pub async fn run_teardown(s: &Settings) -> Result<String, ControllerError> {
    let client = connect(&s.kubernetes).await?;
    Ok(teardown_with(&client, &s.kubernetes.namespace).await?)
}

/// Remove the agent objects and every serving Deployment and Service
/// labelled as stampede's from `namespace`; the lines to print.
pub async fn teardown_with(client: &kube::Client, namespace: &str) -> Result<String, K8sError> {
    let mut text = teardown_text(namespace, &deploy::teardown(client, namespace).await?);
    for (kind, name, r) in
        crate::orchestrate::serving::standalone::teardown_all(client, namespace).await?
    {
        text.push_str(&crate::orchestrate::serving::removal_line(
            kind, namespace, &name, &r,
        ));
        text.push('\n');
    }
    Ok(text)
}

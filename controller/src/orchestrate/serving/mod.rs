//! The serving-stack lifecycle: stand up what the plan's `[serving]` names
//! (a vLLM Deployment + Service, Helm releases, or nothing for an existing
//! gateway), wait until it answers over HTTP, record what it is, and tear
//! down exactly what was created.
//!
//! [`Serving`] holds the stack that is up. [`Serving::ensure`] redeploys
//! only when [`stack_changed`] says a stack axis differs, so a sweep that
//! walks load levels over one model deploys once, and a sweep that changes
//! the model tears down and deploys between those cells:
//!
//! ```text
//! let mut serving = Serving::new(opts);
//! for cell in cells {
//!     serving.ensure(&cell.plan.serving.unwrap(), &cancel).await?;  // no-op when unchanged
//!     run cell phases against serving.record().url
//! }
//! serving.finish().await?;   // honours `keep`
//! ```

use crate::model::{ChartRecord, ServerRecord, ServingRecord};

pub mod helm;
pub mod objects;
pub mod probe;
pub mod standalone;

#[cfg(test)]
#[cfg(test)]
pub(crate) mod tests;

use crate::orchestrate::k8s::K8sError;
use crate::orchestrate::k8s::deploy::Removal;
use stampede_plan::kubernetes::Kubernetes;
pub use stampede_plan::serving::stack_changed;
use stampede_plan::serving::{CacheSource, Method, ServerKind, ServingSpec};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Errors of the serving lifecycle.
#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    /// A Kubernetes API call failed.
    #[error("serving: {0}")]
    Kubernetes(Box<K8sError>),
    /// The server did not answer in time.
    #[error(
        "serving: {url} not ready within {}: {last}{}",
        humantime::format_duration(*waited),
        if diagnostics.is_empty() { String::new() } else { format!("\n{}", diagnostics.trim_end()) }
    )]
    NotReady {
        /// Base URL probed.
        url: String,
        /// Time waited.
        waited: Duration,
        /// Last probe outcome.
        last: String,
        /// Events and log lines of the serving pods (standalone).
        diagnostics: String,
    },
    /// `helm` is not installed.
    #[error(
        "serving: method \"helm\" runs `helm`, which is not on PATH ({searched}); install Helm 3 (see https://helm.sh/docs/intro/install/) or use method \"standalone\" / \"existing\""
    )]
    HelmMissing {
        /// The search path looked through.
        searched: String,
    },
    /// `helm` could not be started.
    #[error("serving: cannot run {}: {source}", helm.display())]
    HelmSpawn {
        /// The binary.
        helm: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// `helm` failed.
    #[error("serving: `{command}` failed ({status}): {stderr}")]
    Helm {
        /// The command line.
        command: String,
        /// Exit status.
        status: String,
        /// End of its stderr.
        stderr: String,
    },
    /// The HTTP client for probes could not be built.
    #[error("serving: cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// Interrupted while waiting.
    #[error("serving: interrupted before the stack was ready")]
    Interrupted,
}

impl From<K8sError> for ServingError {
    fn from(e: K8sError) -> Self {
        ServingError::Kubernetes(Box::new(e))
    }
}

impl ServingError {
    /// Whether the error comes from the user's setup rather than a failed call.
    pub fn is_bad_input(&self) -> bool {
        match self {
            ServingError::HelmMissing { .. } => true,
            ServingError::Kubernetes(e) => e.is_bad_input(),
            _ => false,
        }
    }
}

/// How [`Serving`] reaches the cluster and the server.
#[derive(Debug, Clone)]
pub struct ServingOptions {
    /// Kubernetes client; `None`: connect with `kubernetes` when first needed.
    pub client: Option<crate::orchestrate::k8s::KubeClient>,
    /// Context and namespace defaults (the plan's `[kubernetes]`).
    pub kubernetes: Kubernetes,
    /// Probe this base URL instead of the stack's own (tests, port-forwards).
    pub probe_url: Option<String>,
    /// Where `helm` is looked up (`PATH`-style); `None`: the process's `PATH`.
    pub search_path: Option<OsString>,
    /// Time between readiness checks.
    pub poll: Duration,
}

impl Default for ServingOptions {
    fn default() -> Self {
        ServingOptions {
            client: None,
            kubernetes: Kubernetes::default(),
            probe_url: None,
            search_path: None,
            poll: Duration::from_secs(2),
        }
    }
}

/// Whether [`Serving::ensure`] deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// The stack was (re)deployed and is ready.
    Deployed,
    /// The same stack is up already; nothing was done.
    Unchanged,
}

/// The serving stack that is up, if any.
pub struct Serving {
    opts: ServingOptions,
    client: Option<kube::Client>,
    current: Option<ServingSpec>,
    record: Option<ServingRecord>,
    deploys: u32,
}

impl Serving {
    /// Nothing deployed yet.
    pub fn new(opts: ServingOptions) -> Self {
        Serving {
            client: opts.client.as_ref().map(|c| c.0.clone()),
            opts,
            current: None,
            record: None,
            deploys: 0,
        }
    }

    /// Whether a stack deployed by this lifecycle is in the place `opts`
    /// describes (same cluster context, same probed address).
    pub fn serves_like(&self, opts: &ServingOptions) -> bool {
        self.opts.kubernetes.context == opts.kubernetes.context
            && self.opts.probe_url == opts.probe_url
    }

    /// How many times a stack was deployed.
    pub fn deploys(&self) -> u32 {
        self.deploys
    }

    /// What is up, once ready.
    pub fn record(&self) -> Option<&ServingRecord> {
        self.record.as_ref()
    }

    async fn kube(&mut self) -> Result<kube::Client, ServingError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let c = crate::orchestrate::k8s::connect(&self.opts.kubernetes).await?;
        self.client = Some(c.clone());
        Ok(c)
    }

    fn search_path(&self) -> OsString {
        self.opts
            .search_path
            .clone()
            .or_else(|| std::env::var_os("PATH"))
            .unwrap_or_default()
    }

    /// Make `spec` the stack that is up: nothing when the same stack is up
    /// already, else tear the old one down and deploy `spec`, then wait
    /// until it answers and record it. `cancel` interrupts the wait.
    pub async fn ensure(
        &mut self,
        spec: &ServingSpec,
        cancel: &CancellationToken,
    ) -> Result<Ensured, ServingError> {
        if let Some(cur) = &self.current
            && !stack_changed(cur, spec)
        {
            self.current = Some(spec.clone());
            if let Some(r) = &mut self.record {
                r.keep = spec.keep;
            }
            return Ok(Ensured::Unchanged);
        }
        if self.current.is_some() {
            self.teardown().await?;
        }
        self.up(spec, cancel).await?;
        Ok(Ensured::Deployed)
    }

    async fn up(
        &mut self,
        spec: &ServingSpec,
        cancel: &CancellationToken,
    ) -> Result<(), ServingError> {
        let ns = spec.namespace.as_str();
        let mut record = ServingRecord {
            method: spec.method_name().to_string(),
            namespace: ns.to_string(),
            url: self
                .opts
                .probe_url
                .clone()
                .unwrap_or_else(|| spec.base_url()),
            deployed: Vec::new(),
            server: None,
            charts: Vec::new(),
            ready_after_seconds: 0.0,
            endpoint: crate::model::EndpointInfo::default(),
            keep: spec.keep,
        };
        let started = std::time::Instant::now();
        match &spec.method {
            Method::Standalone(s) => {
                let client = self.kube().await?;
                // Counted as up before the apply: a failure part-way is
                // still torn down.
                self.current = Some(spec.clone());
                self.deploys += 1;
                record.deployed = standalone::deploy(&client, s, ns).await?;
                record.server = Some(ServerRecord {
                    name: s.name.clone(),
                    kind: s.server,
                    image: s.image.clone(),
                    model: s.model.clone(),
                    args: objects::server_args(s),
                    gpus: s.gpus,
                    node_selector: s.node_selector.clone(),
                    env: s.env.keys().cloned().collect(),
                    hf_token_secret: s.hf_token_secret.clone(),
                    model_cache: s.model_cache.as_ref().map(|c| {
                        let what = match &c.source {
                            CacheSource::Pvc(p) => format!("pvc {p}"),
                            CacheSource::EmptyDir(size) => format!("emptyDir of {size}"),
                            CacheSource::HostPath(d) => format!("hostPath {d}"),
                        };
                        format!("{what} at {}", c.mount_path)
                    }),
                });
            }
            Method::Helm { charts, .. } => {
                let search = self.search_path();
                let helm_bin = helm::find(&search)?;
                self.current = Some(spec.clone());
                self.deploys += 1;
                let context = self.opts.kubernetes.context.as_deref();
                for c in charts {
                    let args = helm::install_args(c, ns, context, spec.readiness_timeout);
                    helm::run(&helm_bin, &args, &search, cancel).await?;
                    record
                        .deployed
                        .push(format!("helm release {ns}/{}", c.release));
                    record.charts.push(ChartRecord {
                        release: c.release.clone(),
                        chart: c.chart.clone(),
                        repo: c.repo.clone(),
                        version: c.version.clone(),
                        values: c.values.iter().map(|v| v.display().to_string()).collect(),
                        set: c.set.clone(),
                    });
                }
            }
            Method::Existing { .. } => {
                self.current = Some(spec.clone());
            }
        }
        let http = probe::client()?;
        let remaining = spec.readiness_timeout.saturating_sub(started.elapsed());
        match probe::wait_ready(&http, &record.url, remaining, self.opts.poll, cancel).await {
            Ok(_) => {}
            Err(probe::NotReady::Cancelled) => return Err(ServingError::Interrupted),
            Err(probe::NotReady::TimedOut { last, .. }) => {
                let diagnostics = match (&spec.method, &self.client) {
                    (Method::Standalone(s), Some(c)) => standalone::diagnose(c, &s.name, ns).await,
                    _ => String::new(),
                };
                return Err(ServingError::NotReady {
                    url: record.url.clone(),
                    waited: spec.readiness_timeout,
                    last,
                    diagnostics,
                });
            }
        }
        record.ready_after_seconds = started.elapsed().as_secs_f64();
        record.endpoint = probe::inspect(&http, &record.url).await;
        self.record = Some(record);
        Ok(())
    }

    /// Remove the stack that is up (whatever `keep` says); lines for the
    /// user, e.g. "Deployment bench/stampede-serving: deleted". An existing
    /// gateway is never touched.
    pub async fn teardown(&mut self) -> Result<Vec<String>, ServingError> {
        let Some(spec) = self.current.take() else {
            return Ok(Vec::new());
        };
        self.record = None;
        let ns = spec.namespace.as_str();
        match &spec.method {
            Method::Standalone(s) => {
                let client = self.kube().await?;
                Ok(standalone::teardown(&client, &s.name, ns)
                    .await?
                    .into_iter()
                    .map(|(kind, name, r)| removal_line(kind, ns, &name, &r))
                    .collect())
            }
            Method::Helm { charts, .. } => {
                let search = self.search_path();
                let helm_bin = helm::find(&search)?;
                let context = self.opts.kubernetes.context.as_deref();
                let never = CancellationToken::new();
                let mut lines = Vec::new();
                let mut first_err = None;
                for c in charts.iter().rev() {
                    let args = helm::uninstall_args(&c.release, ns, context);
                    match helm::run(&helm_bin, &args, &search, &never).await {
                        Ok(()) => {
                            lines.push(format!("helm release {ns}/{}: uninstalled", c.release))
                        }
                        Err(ServingError::Helm { stderr, .. }) if stderr.contains("not found") => {
                            lines.push(format!("helm release {ns}/{}: not found", c.release));
                        }
                        Err(e) => {
                            lines.push(format!("helm release {ns}/{}: {e}", c.release));
                            first_err.get_or_insert(e);
                        }
                    }
                }
                match first_err {
                    Some(e) => Err(e),
                    None => Ok(lines),
                }
            }
            Method::Existing { url } => Ok(vec![format!("existing gateway {url}: left as it was")]),
        }
    }

    /// End of a run: tear down unless the spec says `keep`.
    pub async fn finish(&mut self) -> Result<Vec<String>, ServingError> {
        match &self.current {
            Some(spec) if spec.keep => Ok(vec![format!(
                "serving stack in namespace {} kept (serving.keep = true)",
                spec.namespace
            )]),
            _ => self.teardown().await,
        }
    }
}

/// One line for `controller validate`: what `[serving]` will do.
pub fn summary(spec: &ServingSpec) -> String {
    let what = match &spec.method {
        Method::Standalone(s) => format!(
            "deploys {} ({}) serving {} on {} GPU(s){} as Deployment/Service {}/{}",
            s.image,
            match s.server {
                ServerKind::Vllm => "vllm",
                ServerKind::Simulator => "simulator",
            },
            s.model,
            s.gpus,
            if s.node_selector.is_empty() {
                String::new()
            } else {
                let sel: Vec<String> = s
                    .node_selector
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                format!(" on nodes {}", sel.join(","))
            },
            spec.namespace,
            s.name
        ),
        Method::Helm { charts, .. } => {
            let releases: Vec<&str> = charts.iter().map(|c| c.release.as_str()).collect();
            format!(
                "installs Helm release(s) {} in namespace {}",
                releases.join(", "),
                spec.namespace
            )
        }
        Method::Existing { .. } => "records the existing gateway".to_string(),
    };
    format!(
        "serving: {what}, waits up to {} for {}{}",
        humantime::format_duration(spec.readiness_timeout),
        spec.base_url(),
        if spec.keep {
            ", keeps it after the run"
        } else {
            ", tears it down after the run"
        }
    )
}

/// One teardown line.
pub fn removal_line(kind: &str, ns: &str, name: &str, r: &Removal) -> String {
    format!("{kind} {ns}/{name}: {}", r.describe())
}

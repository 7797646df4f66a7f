//! `controller run`: one benchmark from a validated plan to a results
//! directory. Owns the lifetimes of everything it starts (simulator, gRPC
//! server, local agents) and shuts them down in order.

pub mod cluster;

use crate::model::ServingRecord;
use crate::model::{RunSummary, TargetInfo};
use crate::orchestrate::embedded;
use crate::orchestrate::error::ControllerError;
use crate::orchestrate::progress::Progress;
use crate::orchestrate::runner::{Orchestrator, ResolvedTarget};
use crate::orchestrate::service::Coordinator;
use crate::orchestrate::serving::{Serving, ServingOptions};
use crate::results;
use crate::results::manifest::{self, Manifest};
use crate::results::rawlog::RawLog;
use stampede_plan::{AgentMode, Endpoint, Plan};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Command-line overrides of a run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Exact results directory (default: `<run.output_dir>/<run id>`).
    pub out: Option<PathBuf>,
    /// gRPC listen address (default: the plan's `agents.listen`).
    pub listen: Option<SocketAddr>,
    /// Serve live Prometheus metrics here during the run.
    pub metrics_listen: Option<SocketAddr>,
    /// Kubernetes client to use instead of one from `kubernetes.context`.
    pub kube_client: Option<crate::orchestrate::k8s::KubeClient>,
    /// Probe the serving stack at this base URL instead of the target URL
    /// (tests point it at a loopback server).
    pub serving_probe_url: Option<String>,
    /// A serving stack shared by consecutive runs (a sweep's cells): a run
    /// redeploys it only when its stack changed and leaves it up; the owner
    /// tears it down with [`SharedStack::finish`].
    pub shared_stack: Option<SharedStack>,
}

/// The serving stack that stays up across the runs of a sweep.
#[derive(Clone, Default)]
pub struct SharedStack(std::sync::Arc<tokio::sync::Mutex<Option<Serving>>>);

impl std::fmt::Debug for SharedStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedStack")
    }
}

impl SharedStack {
    /// How many times a stack was deployed (across clusters).
    pub async fn deploys(&self) -> u32 {
        let slot = self.0.lock().await;
        slot.as_ref().map_or(0, Serving::deploys)
    }

    /// End of the sweep: tear the stack down unless its spec says `keep`.
    pub async fn finish(&self) -> Result<Vec<String>, crate::orchestrate::serving::ServingError> {
        match self.0.lock().await.as_mut() {
            Some(s) => s.finish().await,
            None => Ok(Vec::new()),
        }
    }
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// Where the results are.
    pub run_dir: PathBuf,
    /// The summary written there.
    pub summary: RunSummary,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> ControllerError + '_ {
    move |source| ControllerError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Run `plan` (whose source text is `plan_text`) to completion.
/// Cancelling `interrupt` ends the current phase early and skips the rest.
///
/// With `[serving]`, the stack is deployed and ready before anything else
/// starts, and torn down after the run — also when it failed or was
/// interrupted — unless `serving.keep` is set.
pub async fn run(
    plan: Plan,
    plan_text: &str,
    opts: RunOptions,
    interrupt: CancellationToken,
) -> Result<RunOutcome, ControllerError> {
    // Checked before anything is started, the serving stack included.
    check_local_key(&plan).map_err(ControllerError::Plan)?;
    let Some(spec) = plan.serving.clone() else {
        return run_phases(plan, plan_text, opts, interrupt, None).await;
    };
    // Ready where the load goes: the target URL, which defaults to the
    // stack's address (a plan may point it at a port-forward instead).
    let probe_url = match (&opts.serving_probe_url, &plan.target.endpoint) {
        (Some(u), _) | (None, Endpoint::Url(u)) => u.clone(),
        (None, Endpoint::Simulator(_)) => spec.base_url(),
    };
    let progress = Progress::new();
    let serving_opts = ServingOptions {
        client: opts.kube_client.clone(),
        kubernetes: plan.kubernetes.clone().unwrap_or_default(),
        probe_url: Some(probe_url.clone()),
        ..ServingOptions::default()
    };
    if let Some(shared) = opts.shared_stack.clone() {
        return run_on_shared_stack(
            plan,
            plan_text,
            opts,
            interrupt,
            &spec,
            serving_opts,
            shared,
        )
        .await;
    }
    let mut serving = Serving::new(serving_opts);
    progress.line(&format!(
        "serving: {} stack in namespace {}, waiting for {probe_url}",
        spec.method_name(),
        spec.namespace,
    ));
    let deployed = serving.ensure(&spec, &interrupt).await;
    let result = match deployed {
        Ok(_) => {
            let record = serving.record().cloned();
            if let Some(r) = &record {
                progress.line(&format!(
                    "serving: ready after {:.1}s",
                    r.ready_after_seconds
                ));
            }
            run_phases(plan, plan_text, opts, interrupt, record).await
        }
        Err(e) => Err(e.into()),
    };
    // Torn down whatever happened; a failed teardown fails a run that
    // otherwise succeeded (something may still hold GPUs).
    match serving.finish().await {
        Ok(lines) => {
            for l in lines {
                progress.line(&format!("serving: {l}"));
            }
            result
        }
        Err(e) => {
            tracing::warn!("{e}");
            result.and(Err(e.into()))
        }
    }
}

/// [`run`] on a stack shared with the runs before and after it: redeployed
/// only when the stack (or the cluster it runs on) changed, and left up.
async fn run_on_shared_stack(
    plan: Plan,
    plan_text: &str,
    opts: RunOptions,
    interrupt: CancellationToken,
    spec: &stampede_plan::serving::ServingSpec,
    serving_opts: ServingOptions,
    shared: SharedStack,
) -> Result<RunOutcome, ControllerError> {
    let progress = Progress::new();
    let mut slot = shared.0.lock().await;
    if let Some(old) = slot.as_mut()
        && !old.serves_like(&serving_opts)
    {
        // Another cluster or address: the old stack goes before the new one comes.
        for l in old.teardown().await? {
            progress.line(&format!("serving: {l}"));
        }
        *slot = None;
    }
    let serving = slot.get_or_insert_with(|| Serving::new(serving_opts));
    match serving.ensure(spec, &interrupt).await? {
        crate::orchestrate::serving::Ensured::Unchanged => {
            progress.line("serving: same stack as the previous cell, kept up");
        }
        crate::orchestrate::serving::Ensured::Deployed => {
            if let Some(r) = serving.record() {
                progress.line(&format!(
                    "serving: {} stack ready after {:.1}s",
                    spec.method_name(),
                    r.ready_after_seconds
                ));
            }
        }
    }
    let record = serving.record().cloned();
    drop(slot);
    run_phases(plan, plan_text, opts, interrupt, record).await
}

async fn run_phases(
    plan: Plan,
    plan_text: &str,
    opts: RunOptions,
    interrupt: CancellationToken,
    serving: Option<ServingRecord>,
) -> Result<RunOutcome, ControllerError> {
    // Who may join is settled before anything is started.
    let listen = opts.listen.unwrap_or(plan.agents.listen);
    let security = &plan.agents.security;
    crate::orchestrate::security::check_listen(listen, security)?;
    let tls = security
        .tls
        .as_ref()
        .map(crate::orchestrate::security::server_tls)
        .transpose()?;
    let prompt_words = match &plan.target.tokenizer {
        Some(path) => crate::orchestrate::tokenizer::one_token_words(&plan.source, path)?,
        None => Vec::new(),
    };
    let started = SystemTime::now();
    let (run_id, run_dir) = create_run_dir(&plan, plan_text, &opts, started)?;
    crate::orchestrate::live::LIVE.run(&run_id);

    let progress = Progress::new();
    let services = CancellationToken::new();
    if let Some(addr) = opts.metrics_listen {
        let bound = stampede_runtime::metrics::serve(
            addr,
            crate::orchestrate::live::page,
            services.clone(),
        )
        .await
        .map_err(|source| ControllerError::Bind { addr, source })?;
        progress.line(&format!("metrics on http://{bound}/metrics"));
    }
    let (base_url, sim_stats) = start_target(&plan, &services, &progress).await?;
    let mut manifest = new_manifest(
        &plan,
        &run_id,
        started,
        &base_url,
        sim_stats.is_some(),
        serving,
    )
    .await;
    manifest::write(&run_dir, &manifest).map_err(|e| results_err(e.into()))?;
    let raw = RawLog::create(&run_dir).map_err(|e| results_err(e.into()))?;

    let (listener, addr) = bind(listen).await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    progress.line(&format!("controller listening on {scheme}://{addr}"));

    let (events_tx, events_rx) = mpsc::channel(1024);
    let server = crate::orchestrate::security::spawn_server(
        listener,
        Coordinator::new(run_id.clone(), events_tx),
        security,
        tls,
        services.clone(),
    );
    let local_agents = match plan.agents.mode {
        AgentMode::Local => embedded::start_agents(plan.agents.count, addr, &services),
        AgentMode::Remote => Vec::new(),
    };
    let target = resolve_target(&plan, &base_url, prompt_words);
    let mut orch = Orchestrator::new(plan.clone(), target, events_rx, interrupt.clone());
    if sim_stats.is_some() {
        orch.simulator_at(&base_url);
    }
    orch.cluster_for_faults(opts.kube_client.clone());
    orch.record_to(raw);
    let ctx = RunContext {
        plan: &plan,
        plan_text,
        opts: &opts,
        progress: &progress,
        run_dir: &run_dir,
        port: addr.port(),
    };
    let result = drive(&mut orch, &ctx, &mut manifest)
        .instrument(crate::orchestrate::spans::run(&plan, &run_id))
        .await;

    orch.finish(if result.is_ok() {
        "run complete"
    } else {
        "run failed"
    })
    .await;
    for handle in local_agents {
        let _ = tokio::time::timeout(Duration::from_secs(2), handle).await;
    }
    services.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;

    manifest.agents = orch.agent_infos();
    manifest.finished_at = Some(rfc3339(SystemTime::now()));
    manifest.interrupted = orch.interrupted();
    manifest.simulator_stats = sim_stats.map(|s| s.snapshot());
    manifest::write(&run_dir, &manifest).map_err(|e| results_err(e.into()))?;
    drop(orch);
    // Whatever ran is written, even when the run failed part-way; the
    // outputs come from the raw files, exactly as `controller report` does.
    let data = results::rebuild(&run_dir).map_err(ControllerError::Results)?;
    crate::outputs::write_all(&run_dir, &data).map_err(ControllerError::Results)?;
    result?;
    Ok(RunOutcome {
        run_dir,
        summary: data.summary,
    })
}

/// The manifest as the run starts: what runs, where, against what.
async fn new_manifest(
    plan: &Plan,
    run_id: &str,
    started: SystemTime,
    base_url: &str,
    simulator: bool,
    serving: Option<ServingRecord>,
) -> Manifest {
    Manifest {
        stampede_version: stampede_common::VERSION.to_string(),
        git_revision: manifest::GIT_REVISION.to_string(),
        run_id: run_id.to_string(),
        host: stampede_runtime::host_name(),
        started_at: rfc3339(started),
        finished_at: None,
        interrupted: false,
        target: TargetInfo {
            url: manifest::redact_url_credentials(base_url),
            model: plan.target.model.clone(),
            api: plan.target.api,
            simulator,
        },
        target_models: manifest::fetch_models(base_url).await,
        agents: Vec::new(),
        environment: manifest::recorded_environment(std::env::vars(), &named_secrets(plan)),
        datasets: crate::analysis::inputs::datasets(plan),
        traces: crate::analysis::inputs::traces(plan),
        kubernetes: None,
        simulator_stats: None,
        serving,
    }
}

/// The values of the secrets the plan names (its API key variable's value,
/// the join token): never written anywhere, whatever variable holds them.
fn named_secrets(plan: &Plan) -> Vec<Vec<u8>> {
    let api_key = plan
        .target
        .api_key_env
        .as_ref()
        .and_then(std::env::var_os)
        .map(|v| v.into_encoded_bytes());
    let token = plan
        .agents
        .security
        .join_token
        .as_ref()
        .map(|t| t.expose().to_vec());
    api_key.into_iter().chain(token).collect()
}

/// The gRPC listener agents dial, and the address it got.
async fn bind(
    listen: SocketAddr,
) -> Result<(tokio::net::TcpListener, SocketAddr), ControllerError> {
    let bind_err = |source| ControllerError::Bind {
        addr: listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(bind_err)?;
    let addr = listener.local_addr().map_err(bind_err)?;
    Ok((listener, addr))
}

/// What the phases of one run are driven with.
struct RunContext<'a> {
    plan: &'a Plan,
    plan_text: &'a str,
    opts: &'a RunOptions,
    progress: &'a Progress,
    run_dir: &'a Path,
    /// The gRPC port agents dial.
    port: u16,
}

/// Local agents read `target.api_key_env` from the controller's environment:
/// it must be set there (checked before a run or sweep starts anything).
pub(crate) fn check_local_key(plan: &Plan) -> Result<(), stampede_plan::PlanError> {
    if let (AgentMode::Local, Some(var)) = (plan.agents.mode, &plan.target.api_key_env)
        && std::env::var_os(var).is_none()
    {
        return Err(stampede_plan::PlanError::Invalid {
            path: plan.source.clone(),
            key: "target.api_key_env".into(),
            value: format!("{var:?}"),
            reason: "not set in the controller's environment, where local agents read it".into(),
        });
    }
    Ok(())
}

/// The run's id and directory, with the plan as run copied into it.
fn create_run_dir(
    plan: &Plan,
    plan_text: &str,
    opts: &RunOptions,
    started: SystemTime,
) -> Result<(String, PathBuf), ControllerError> {
    let stamp: String = rfc3339(started)
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let run_id = format!("{}-{stamp}", plan.name);
    let run_dir = opts
        .out
        .clone()
        .unwrap_or_else(|| plan.output_dir.join(&run_id));
    std::fs::create_dir_all(&run_dir).map_err(write_err(&run_dir))?;
    let plan_copy = run_dir.join("plan.toml");
    // Credentials in URLs stay out of every recorded file.
    let recorded = manifest::redact_url_credentials(plan_text);
    std::fs::write(&plan_copy, recorded).map_err(write_err(&plan_copy))?;
    Ok((run_id, run_dir))
}

/// The target's base URL: the plan's, or the built-in simulator's, started
/// here (with its statistics).
async fn start_target(
    plan: &Plan,
    services: &CancellationToken,
    progress: &Progress,
) -> Result<(String, Option<std::sync::Arc<stampede_sim::SimStats>>), ControllerError> {
    Ok(match &plan.target.endpoint {
        Endpoint::Simulator(spec) => {
            let sim = embedded::start_simulator(spec, &plan.target.model, services.clone()).await?;
            let url = format!("http://{}", sim.addr);
            progress.line(&format!("simulator listening on {url}"));
            (url, Some(sim.stats))
        }
        Endpoint::Url(url) => (url.clone(), None),
    })
}

/// What every request of the run is built from.
fn resolve_target(plan: &Plan, base_url: &str, prompt_words: Vec<String>) -> ResolvedTarget {
    let metrics_urls = match &plan.server_metrics {
        Some(m) if m.urls.is_empty() => vec![format!("{base_url}/metrics")],
        Some(m) => m.urls.clone(),
        None => Vec::new(),
    };
    ResolvedTarget {
        base_url: base_url.to_string(),
        prompt: stampede_common::prompt::synthetic_from(plan.request.prompt_tokens, &prompt_words),
        metrics_urls,
        prompt_words,
    }
}

/// Prepare the cluster (if any), wait for the agents, then run every phase
/// of every repeat until done or interrupted.
async fn drive(
    orch: &mut Orchestrator,
    ctx: &RunContext<'_>,
    manifest: &mut Manifest,
) -> Result<(), ControllerError> {
    let plan = ctx.plan;
    let cluster = match &plan.kubernetes {
        Some(k) => Some(
            kubernetes_prepare(k, plan, ctx.plan_text, ctx.port, ctx.opts, ctx.progress).await?,
        ),
        None => None,
    };
    match cluster.as_ref().and_then(|c| c.1.as_ref()) {
        Some(nodes) => orch.wait_for_nodes(nodes).await?,
        None => orch.wait_for_agents().await?,
    }
    if let (Some((client, _)), Some(k)) = (&cluster, &plan.kubernetes) {
        let info =
            crate::orchestrate::k8s::discovery::describe(client, k, &orch.agent_infos()).await;
        for e in &info.errors {
            tracing::warn!("kubernetes: {e}");
        }
        manifest.kubernetes = Some(info);
    }
    for repeat in 0..plan.repeat {
        if plan.repeat > 1 {
            ctx.progress
                .line(&format!("repeat {} of {}", repeat + 1, plan.repeat));
        }
        for i in 0..plan.phases.len() {
            if orch.interrupted() {
                return Ok(());
            }
            orch.estimate_clocks().await?;
            manifest.agents = orch.agent_infos();
            manifest::write(ctx.run_dir, manifest).map_err(|e| results_err(e.into()))?;
            orch.run_phase(i, repeat)
                .instrument(crate::orchestrate::spans::phase(plan, i, repeat))
                .await?;
        }
    }
    Ok(())
}

/// Connect to the plan's cluster; with `kubernetes.deploy`, deploy the agents
/// (dialing gRPC `port`) and return the nodes to wait for.
async fn kubernetes_prepare(
    k: &stampede_plan::kubernetes::Kubernetes,
    plan: &Plan,
    plan_text: &str,
    port: u16,
    opts: &RunOptions,
    progress: &Progress,
) -> Result<(kube::Client, Option<BTreeSet<String>>), ControllerError> {
    let client = match &opts.kube_client {
        Some(c) => c.0.clone(),
        None => crate::orchestrate::k8s::connect(k).await?,
    };
    if !k.deploy {
        return Ok((client, None));
    }
    let d =
        crate::orchestrate::k8s::join::deploy_with(client, k, port, plan_text, plan.agents.count)
            .await?;
    for a in &d.applied {
        progress.line(&format!("applied {a}"));
    }
    Ok((d.client, Some(d.eligible)))
}

fn results_err(e: results::ResultsError) -> ControllerError {
    ControllerError::Results(e)
}

#[cfg(test)]
mod tests;

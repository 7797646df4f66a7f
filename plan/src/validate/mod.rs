//! Raw plan → validated plan. The tables are checked in a fixed order (run,
//! Kubernetes, agents, serving, target, request, phases, fault actions,
//! workload, cost, server metrics, tracing) so that a plan with several
//! mistakes always reports the same first one. Each section has its own
//! module; this one holds the order and the context every check shares.

mod agents;
mod phase;
mod settings;
mod sim_models;
mod target;

use crate::duration::{HumanDuration, shown};
use crate::fault::ClusterDefaults;
use crate::kubernetes::Kubernetes;
use crate::quote::written;
use crate::serving::{Method, ServingSpec};
use crate::slo::Slo;
use crate::workload::{ASSIGNMENT_RESERVE, Problem, WorkloadEntry};
use crate::{Endpoint, Phase, Plan, PlanError, RawPlan, RequestSpec};
use stampede_common::MAX_MESSAGE_BYTES;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest `run.repeat`.
const MAX_REPEAT: u32 = 1000;

/// The value shown for a key that is not there.
const MISSING: &str = "(missing)";

/// What every check needs: the plan file (named in errors, and the base of
/// the paths the plan names) and whether to read the files it names.
struct Ctx<'a> {
    path: &'a Path,
    /// Read the dataset and trace files the plan names.
    files: bool,
}

impl Ctx<'_> {
    fn invalid(
        &self,
        key: impl Into<String>,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> PlanError {
        PlanError::Invalid {
            path: self.path.to_path_buf(),
            key: key.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// A `(key, value, reason)` problem found by a section's own module.
    fn problem(&self, (key, value, reason): Problem) -> PlanError {
        self.invalid(key, value, reason)
    }

    fn addr(&self, key: &str, text: &str) -> Result<SocketAddr, PlanError> {
        text.parse().map_err(|e| {
            self.invalid(
                key,
                format!("{text:?}"),
                format!("not an IP:port address ({e})"),
            )
        })
    }

    /// The duration at `key` as written, or `default`: longer than zero.
    fn positive(
        &self,
        key: &str,
        written: Option<&HumanDuration>,
        default: Duration,
    ) -> Result<Duration, PlanError> {
        let d = written.map_or(default, HumanDuration::get);
        if d.is_zero() {
            return Err(self.invalid(key, shown(written, d), "must be longer than zero"));
        }
        Ok(d)
    }

    /// `file` resolved against the plan's directory.
    fn resolve(&self, file: &Path) -> PathBuf {
        self.path
            .parent()
            .map_or_else(|| file.to_path_buf(), |dir| dir.join(file))
    }
}

impl RawPlan {
    /// Check every key, read the dataset and trace files, and build the typed plan.
    pub fn validate(&self, path: &Path) -> Result<Plan, PlanError> {
        self.validate_with(Ctx { path, files: true })
    }

    /// Check every key without reading dataset and trace files (their
    /// records stay unloaded): see [`crate::load_without_files`].
    pub fn validate_without_files(&self, path: &Path) -> Result<Plan, PlanError> {
        self.validate_with(Ctx { path, files: false })
    }

    fn validate_with(&self, cx: Ctx<'_>) -> Result<Plan, PlanError> {
        let (name, window, repeat) = self.validate_run(&cx)?;
        let windows_per_report = self.validate_report_every(&cx, window)?;
        let kubernetes = self
            .kubernetes
            .as_ref()
            .map(|k| crate::kubernetes::validate(cx.path, k))
            .transpose()?;
        let agents = self.validate_agents(&cx, kubernetes.as_ref().is_some_and(|k| k.deploy))?;
        let serving = self
            .serving
            .as_ref()
            .map(|s| {
                let ns = kubernetes
                    .as_ref()
                    .map_or(crate::kubernetes::DEFAULT_NAMESPACE, |k| {
                        k.namespace.as_str()
                    });
                crate::serving::validate(cx.path, s, ns)
            })
            .transpose()?;
        let target = self.validate_target(&cx, serving.as_ref())?;
        let request = self.validate_request(&cx)?;
        let phases = self.validate_phases(
            &cx,
            &request,
            matches!(target.endpoint, Endpoint::Simulator(_)),
            &cluster_defaults(serving.as_ref(), kubernetes.as_ref()),
        )?;
        check_concurrency_caps(&cx, &phases, agents.count)?;
        let workload = self.validate_workload(&cx, &phases)?;
        let cost = self
            .cost
            .as_ref()
            .map(|c| settings::validate_cost(&cx, c))
            .transpose()?;
        let server_metrics = self
            .server_metrics
            .as_ref()
            .map(|m| settings::validate_server_metrics(&cx, m, &target))
            .transpose()?;

        Ok(Plan {
            source: cx.path.to_path_buf(),
            workload,
            name,
            window,
            windows_per_report,
            output_dir: self
                .run
                .output_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("results")),
            seed: self.run.seed.unwrap_or(0),
            repeat,
            percentiles: self
                .run
                .percentiles
                .as_deref()
                .map(crate::percentiles::validate)
                .transpose()
                .map_err(|(value, reason)| cx.invalid("run.percentiles", value, reason))?,
            agents,
            target,
            request,
            phases,
            cost,
            server_metrics,
            kubernetes,
            tracing: self.validate_tracing(&cx)?,
            records: self.validate_records(&cx)?,
            serving,
        })
    }

    /// `[run]`'s name, window and repeat count.
    fn validate_run(&self, cx: &Ctx<'_>) -> Result<(String, Duration, u32), PlanError> {
        let name = self.run.name.clone().unwrap_or_else(|| "run".to_string());
        if let Some(reason) = crate::names::directory_problem(&name, "the results directory") {
            return Err(cx.invalid("run.name", format!("{name:?}"), reason));
        }
        let written = self.run.window.as_ref();
        let window = cx.positive("run.window", written, Duration::from_secs(1))?;
        if window < Duration::from_millis(10) {
            return Err(cx.invalid(
                "run.window",
                shown(written, window),
                "must be at least 10ms",
            ));
        }
        let repeat = self.run.repeat.unwrap_or(1);
        if !(1..=MAX_REPEAT).contains(&repeat) {
            return Err(cx.invalid(
                "run.repeat",
                repeat,
                format!("must be between 1 and {MAX_REPEAT}"),
            ));
        }
        Ok((name, window, repeat))
    }

    /// `run.report_every` as a whole number of windows, when written.
    fn validate_report_every(
        &self,
        cx: &Ctx<'_>,
        window: Duration,
    ) -> Result<Option<u32>, PlanError> {
        let Some(written) = self.run.report_every.as_ref() else {
            return Ok(None);
        };
        let every = cx.positive("run.report_every", Some(written), window)?;
        let (every_ns, window_ns) = (every.as_nanos(), window.as_nanos());
        if every_ns % window_ns != 0 {
            return Err(cx.invalid(
                "run.report_every",
                shown(Some(written), every),
                format!("must be a whole number of windows (run.window is {window:?})"),
            ));
        }
        match u32::try_from(every_ns / window_ns) {
            Ok(n) if n <= crate::MAX_WINDOWS_PER_REPORT => Ok(Some(n)),
            _ => Err(cx.invalid(
                "run.report_every",
                shown(Some(written), every),
                format!("must be at most {} windows", crate::MAX_WINDOWS_PER_REPORT),
            )),
        }
    }

    /// Every `[[phase]]` with the run's objectives, then each phase's fault
    /// actions (`simulator`: the target is the built-in simulator).
    fn validate_phases(
        &self,
        cx: &Ctx<'_>,
        request: &RequestSpec,
        simulator: bool,
        cluster: &ClusterDefaults,
    ) -> Result<Vec<Phase>, PlanError> {
        if self.phase.is_empty() {
            return Err(cx.invalid("phase", MISSING, "a plan needs at least one [[phase]]"));
        }
        let run_slo = parse_slos(cx, "run.slo", self.run.slo.as_deref())?;
        let mut phases = self
            .phase
            .iter()
            .enumerate()
            .map(|(i, p)| p.validate(cx, i, request, &run_slo))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, (raw, p)) in self.phase.iter().zip(&mut phases).enumerate() {
            p.faults = crate::fault::validate(
                &raw.faults,
                i,
                p.kind.name(),
                p.duration,
                simulator,
                cluster,
            )
            .map_err(|p| cx.problem(p))?;
        }
        Ok(phases)
    }

    /// `[[workload]]` with its datasets read, checked against `[request]`
    /// and, with each replayed trace, against the message size limit.
    fn validate_workload(
        &self,
        cx: &Ctx<'_>,
        phases: &[Phase],
    ) -> Result<Vec<WorkloadEntry>, PlanError> {
        let workload = self
            .workload
            .iter()
            .enumerate()
            .map(|(i, w)| w.validate(i).map_err(|p| cx.problem(p)))
            .collect::<Result<Vec<_>, _>>()?;
        let workload = self.load_inputs(cx, workload, phases)?;
        if !workload.is_empty() {
            let r = &self.request;
            let lengths = "a [[workload]] mix sets request lengths; remove this key or the mix";
            let per_entry = "a [[workload]] mix sets this per entry; move it into the entries or remove the mix";
            let set = [
                (
                    "request.prompt_tokens",
                    r.prompt_tokens.map(|v| v.to_string()),
                    lengths,
                ),
                (
                    "request.max_tokens",
                    r.max_tokens.map(|v| v.to_string()),
                    lengths,
                ),
                (
                    "request.ignore_eos",
                    r.ignore_eos.map(|v| v.to_string()),
                    per_entry,
                ),
                (
                    "request.temperature",
                    r.temperature.map(|v| v.to_string()),
                    per_entry,
                ),
                (
                    "request.extra_body",
                    r.extra_body.as_ref().map(written),
                    per_entry,
                ),
            ];
            if let Some((key, Some(v), reason)) = set.into_iter().find(|(_, v, _)| v.is_some()) {
                return Err(cx.invalid(key, v, reason));
            }
        }
        Ok(workload)
    }

    /// Read the workload's datasets (when the context reads files) and check
    /// that they and each replayed trace fit in an assignment.
    fn load_inputs(
        &self,
        cx: &Ctx<'_>,
        mut workload: Vec<WorkloadEntry>,
        phases: &[Phase],
    ) -> Result<Vec<WorkloadEntry>, PlanError> {
        if !cx.files {
            return Ok(workload);
        }
        let dir = cx.path.parent().unwrap_or(Path::new("."));
        let seed = self.run.seed.unwrap_or(0);
        for (i, entry) in workload.iter_mut().enumerate() {
            crate::workload::load_dataset(entry, i, dir, seed).map_err(|p| cx.problem(p))?;
        }
        crate::workload::check_wire_size(&workload, 0).map_err(|p| cx.problem(p))?;
        for (i, p) in phases.iter().enumerate() {
            let Some((trace, time_scale)) = p.replayed() else {
                continue;
            };
            use prost::Message;
            let len = trace.to_proto(time_scale).encoded_len();
            let budget = MAX_MESSAGE_BYTES.saturating_sub(ASSIGNMENT_RESERVE);
            if len > budget {
                return Err(cx.invalid(
                    format!("phase[{i}].trace.max_records"),
                    trace.records.len(),
                    format!(
                        "the {} records of {} take {:.1} MiB on the wire, over the {} MiB message limit (less {} MiB for the rest of the assignment); set max_records to at most about {}",
                        trace.records.len(),
                        trace.path.display(),
                        len as f64 / 1048576.0,
                        MAX_MESSAGE_BYTES / 1048576,
                        ASSIGNMENT_RESERVE / 1048576,
                        budget / (len / trace.records.len().max(1)).max(1),
                    ),
                ));
            }
            crate::workload::check_wire_size(&workload, len).map_err(|p| cx.problem(p))?;
        }
        Ok(workload)
    }
}

/// Where fault actions act when they name no Deployment or namespace.
fn cluster_defaults(
    serving: Option<&ServingSpec>,
    kubernetes: Option<&Kubernetes>,
) -> ClusterDefaults {
    ClusterDefaults {
        cluster: serving.is_some() || kubernetes.is_some(),
        namespace: serving
            .map(|s| s.namespace.clone())
            .or_else(|| kubernetes.map(|k| k.namespace.clone())),
        deployment: serving.and_then(|s| match &s.method {
            Method::Standalone(st) => Some(st.name.clone()),
            _ => None,
        }),
    }
}

/// Every phase's `max_concurrency` leaves each of the `agents` at least one
/// slot: the cap is split like users, one slot each and the rest by shard.
fn check_concurrency_caps(cx: &Ctx<'_>, phases: &[Phase], agents: u32) -> Result<(), PlanError> {
    match phases
        .iter()
        .enumerate()
        .find_map(|(i, p)| p.max_concurrency.filter(|c| *c < agents).map(|c| (i, c)))
    {
        Some((i, cap)) => Err(cx.invalid(
            format!("phase[{i}].max_concurrency"),
            cap,
            format!(
                "below the {agents} agents: each agent holds at least one of the cap's slots; raise it to {agents} or more, or use fewer agents"
            ),
        )),
        None => Ok(()),
    }
}

/// Parse a list of objectives at `key`.
fn parse_slos(cx: &Ctx<'_>, key: &str, list: Option<&[String]>) -> Result<Vec<Slo>, PlanError> {
    list.unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(j, text)| {
            Slo::parse(text)
                .map_err(|e| cx.invalid(format!("{key}[{j}]"), format!("{text:?}"), e.0))
        })
        .collect()
}

/// Whether `name` can name an environment variable (letters, digits and
/// `_`, not starting with a digit).
pub(crate) fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod cap_tests;
#[cfg(test)]
mod tests;

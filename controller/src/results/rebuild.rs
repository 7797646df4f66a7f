//! Rebuild a run's results from its raw files, and write every output.
//!
//! A run directory's source of truth is `plan.toml` + `manifest.json` +
//! `windows.jsonl`. Both `controller run` (at the end of a run) and
//! `controller report RUN_DIR` (any time later, or after a crash) go through
//! [`rebuild`] then [`crate::outputs::write_all`], so the two can never disagree. A phase
//! whose end was never recorded is reported as incomplete, covering the
//! windows that arrived.

use crate::analysis::breakdown::EntryLabels;
use crate::analysis::merge::PhaseAccumulator;
use crate::model::{PhaseSummary, RunSummary, StressResult, StressStep};
use crate::results::manifest::{self, ManifestError};
use crate::results::rawlog::{self, RawLogError, Record};
use crate::results::rawlog_read;
use stampede_common::proto;
use stampede_plan::{self as plan, Phase, PlanError};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Errors rebuilding or writing results.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// The run directory does not exist.
    #[error("{0}: no such run directory")]
    NoRunDir(PathBuf),
    /// The plan copy is unreadable or invalid.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The manifest is unreadable or invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The raw log is unreadable or invalid.
    #[error(transparent)]
    RawLog(#[from] RawLogError),
    /// The raw log contradicts the plan or itself.
    #[error("{path}:{line}: {message}")]
    Inconsistent {
        /// The raw log.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// An output could not be written.
    #[error("cannot write {path}: {message}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// Cause.
        message: String,
    },
    /// A written output fails its own check when read back: a stampede bug,
    /// never a problem of the run directory.
    #[error("{path}: {message}")]
    OutputCheck {
        /// The output file.
        path: PathBuf,
        /// What is wrong, with where in the file.
        message: String,
    },
}

/// A `Write` error for `path`.
pub fn write_error(path: &Path, e: impl std::fmt::Display) -> ResultsError {
    ResultsError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Raw merged state of one phase, beside its summary.
#[derive(Debug)]
pub struct PhaseData {
    /// The phase as planned.
    pub phase: Phase,
    /// Whole-phase and per-window merged histograms and counters.
    pub acc: PhaseAccumulator,
    /// Common start instant (ns since the Unix epoch, controller clock).
    pub start_unix_nanos: i64,
    /// Window length.
    pub window: Duration,
}

/// Everything the outputs are made from.
#[derive(Debug)]
pub struct RunData {
    /// The plan as run.
    pub plan: plan::Plan,
    /// The summary (`summary.json`, `stats.txt`).
    pub summary: RunSummary,
    /// Per phase, in the order run; aligned with `summary.phases`.
    pub phases: Vec<PhaseData>,
}

struct Building {
    index: u32,
    /// The phase as planned (a stress phase, for a step).
    planned: Phase,
    step: Option<crate::model::StepRecord>,
    redistributed: Vec<crate::model::Redistribution>,
    /// Server-metrics scrapes, and failed scrapes by page.
    scrapes: Vec<crate::analysis::server_metrics::Scrape>,
    failed_scrapes: std::collections::BTreeMap<String, u32>,
    /// Fault actions, as recorded.
    faults: Vec<crate::model::FiredAction>,
    repeat: u32,
    data: PhaseData,
    agents: Vec<String>,
    lost: Vec<String>,
    stopped_early: bool,
    ended: bool,
    done: bool,
}

/// The plan of a run directory, without the keys that name files or
/// variables a report does not need (TLS material, join token, target CA):
/// their relative paths point next to the original plan, not into the run
/// directory, and a report must not depend on them. Also how
/// `controller monitoring rules` reads a plan whose files live elsewhere
/// (the Secrets a cluster mounts).
pub fn load_plan_for_report(path: &Path) -> Result<plan::Plan, PlanError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlanError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut raw = plan::parse(&text, path)?;
    raw.agents.tls = None;
    raw.agents.join_token_env = None;
    raw.agents.join_token_file = None;
    // Deploy settings need `agents.tls`, dropped above; what the run learnt
    // from the cluster is in the manifest.
    raw.kubernetes = None;
    if let Some(t) = &mut raw.target {
        t.ca_file = None;
    }
    // The plan copy sits away from the dataset and trace files it names;
    // what the run read from them is in the manifest.
    raw.validate_without_files(path)
}

/// Rebuild a run's results from the raw files in `dir`.
pub fn rebuild(dir: &Path) -> Result<RunData, ResultsError> {
    if !dir.is_dir() {
        return Err(ResultsError::NoRunDir(dir.to_path_buf()));
    }
    let plan = load_plan_for_report(&dir.join("plan.toml"))?;
    let manifest = manifest::read(dir)?;
    let raw_path = dir.join(rawlog::FILE_NAME);
    let bad = |line: usize| {
        let path = raw_path.clone();
        move |message: String| ResultsError::Inconsistent {
            path,
            line,
            message,
        }
    };
    let mut phases: Vec<Building> = Vec::new();
    rawlog_read::for_each(&raw_path, |line, record| {
        if let Record::PhaseStart { .. } = record {
            phases.push(Building::start(&plan, record).map_err(bad(line))?);
            return Ok(());
        }
        let phase = record.phase();
        let Some(b) = phases.iter_mut().rev().find(|b| b.index == phase) else {
            return Err(bad(line)(format!(
                "record of phase {phase} before its phase_start"
            )));
        };
        b.apply(record).map_err(bad(line))
    })?;
    let (summaries, out): (Vec<PhaseSummary>, Vec<PhaseData>) =
        phases.into_iter().map(|b| b.summarize(&plan)).unzip();
    let stress = stress_results(&plan, &summaries);
    let slo_failed = slo_failed(&summaries, &stress);
    let repeat = plan.repeat;
    let repeats = crate::analysis::repeats::summarize(
        &plan
            .phases
            .iter()
            .map(|p| p.name.clone())
            .collect::<Vec<_>>(),
        &summaries,
    );
    Ok(RunData {
        plan,
        summary: RunSummary {
            stampede_version: manifest.stampede_version,
            run_id: manifest.run_id,
            started_at: manifest.started_at,
            finished_at: manifest.finished_at,
            target: manifest.target,
            agents: manifest.agents,
            phases: summaries,
            interrupted: manifest.interrupted,
            repeat,
            repeats,
            slo_failed,
            stress,
            datasets: manifest.datasets,
            traces: manifest.traces,
            kubernetes: manifest.kubernetes,
        },
        phases: out,
    })
}

impl Building {
    /// A phase as its `phase_start` record opens it, checked against the plan.
    fn start(plan: &plan::Plan, record: Record) -> Result<Self, String> {
        let Record::PhaseStart {
            phase,
            repeat,
            name,
            start_unix_nanos,
            window_ms,
            agents,
            step,
            shard_weights: _,
        } = record
        else {
            return Err("not a phase_start record".into());
        };
        let planned = plan.phases.get(phase as usize).ok_or_else(|| {
            format!(
                "phase {phase} is not in plan.toml ({} phases)",
                plan.phases.len()
            )
        })?;
        if planned.name != name {
            return Err(format!(
                "phase {phase} is {name:?} here but {:?} in plan.toml",
                planned.name
            ));
        }
        if window_ms == 0 {
            return Err("window_ms is 0".into());
        }
        let run_as = match (&planned.kind, step) {
            (plan::PhaseKind::Stress(_), Some(step)) => planned.stress_step(step.rate),
            (plan::PhaseKind::Stress(_), None) => {
                return Err(format!("stress phase {name:?} started without a step"));
            }
            (_, Some(_)) => {
                return Err(format!(
                    "phase {name:?} is not a stress phase but has a step"
                ));
            }
            (_, None) => planned.clone(),
        };
        Ok(Building {
            index: phase,
            planned: planned.clone(),
            step,
            redistributed: Vec::new(),
            scrapes: Vec::new(),
            failed_scrapes: std::collections::BTreeMap::new(),
            faults: Vec::new(),
            repeat,
            data: PhaseData {
                phase: run_as,
                acc: PhaseAccumulator::default(),
                start_unix_nanos,
                window: Duration::from_millis(window_ms),
            },
            agents,
            lost: Vec::new(),
            stopped_early: false,
            ended: false,
            done: false,
        })
    }

    /// Take one record of this phase (any but `phase_start`).
    fn apply(&mut self, record: Record) -> Result<(), String> {
        match record {
            Record::Window { ref agent, .. } => {
                let report = record
                    .to_report()?
                    .ok_or_else(|| "not a window record".to_string())?;
                if let crate::analysis::merge::Offered::Rejected(e) =
                    self.data.acc.offer(agent, &report)
                {
                    return Err(format!("window report of {agent}: {e}"));
                }
            }
            Record::Rejected { agent, .. } => {
                *self.data.acc.rejected.entry(agent).or_default() += 1;
            }
            Record::Scrape {
                url,
                at_ms,
                types,
                samples,
                ..
            } => self.scrapes.push(crate::analysis::server_metrics::Scrape {
                url,
                at_ms,
                types,
                samples,
            }),
            Record::ScrapeFailed { url, .. } => *self.failed_scrapes.entry(url).or_default() += 1,
            Record::Fault { fired, .. } => self.faults.push(fired),
            Record::Reshard {
                lost,
                rejoined,
                agents,
                from_ms,
                ..
            } => self.redistributed.push(crate::model::Redistribution {
                lost,
                rejoined,
                to: agents,
                from_s: from_ms as f64 / 1e3,
            }),
            Record::PhaseDone {
                phase,
                arrivals_micros,
                finished_micros,
                started_unix_nanos,
                halted,
                ..
            } => {
                self.done = true;
                self.data.acc.done(&proto::PhaseDone {
                    phase_index: phase,
                    windows: 0,
                    arrivals_micros,
                    finished_micros,
                    started_unix_nanos,
                    halted,
                });
            }
            Record::PhaseEnd {
                lost_agents,
                stopped_early,
                duplicates,
                ..
            } => {
                self.ended = true;
                self.lost = lost_agents;
                self.stopped_early = stopped_early;
                self.data.acc.duplicates = duplicates;
            }
            Record::PhaseStart { .. } => return Err("a second phase_start".into()),
        }
        Ok(())
    }

    /// The phase's summary, made as the live run makes it, beside its data.
    fn summarize(mut self, plan: &plan::Plan) -> (PhaseSummary, PhaseData) {
        if !self.done {
            self.arrivals_from_windows();
        }
        let scraped = !self.scrapes.is_empty() || !self.failed_scrapes.is_empty();
        let run = crate::analysis::summary::PhaseRun {
            phase: &self.data.phase,
            seed: plan.seed,
            index: self.index,
            window: self.data.window,
            agents: self.agents,
            lost: self.lost,
            stopped_early: self.stopped_early,
            step: self.step,
            redistributed: self.redistributed,
            scrapes: scraped.then_some((self.scrapes.as_slice(), &self.failed_scrapes)),
            labels: EntryLabels::of(plan, &self.data.phase),
            percentiles: plan.percentiles.as_deref(),
        };
        let mut s = crate::analysis::summary::phase_summary(run, &mut self.data.acc);
        s.complete = self.ended;
        s.repeat = self.repeat;
        if !self.faults.is_empty() {
            let window = self.data.window;
            let series = crate::analysis::recovery::Series {
                windows: &self.data.acc.windows,
                window,
                first: self.data.phase.measured_windows(window).0,
                arrival_windows: u32::try_from(
                    self.data
                        .phase
                        .duration
                        .as_nanos()
                        .div_ceil(window.as_nanos().max(1)),
                )
                .unwrap_or(u32::MAX),
            };
            s.faults = Some(crate::model::FaultReport::of(&series, self.faults));
        }
        crate::analysis::verdict::apply(&self.planned, &mut s, &self.data.acc, self.data.window);
        s.cost = plan
            .cost
            .as_ref()
            .map(|c| crate::model::PhaseCost::of(c, &s));
        (s, self.data)
    }

    /// No agent said when its arrivals ended: the windows received are the
    /// best measure of the time covered.
    fn arrivals_from_windows(&mut self) {
        let span = self
            .data
            .acc
            .windows
            .keys()
            .next_back()
            .map_or(Duration::ZERO, |last| {
                self.data.window.saturating_mul(last.saturating_add(1))
            });
        let micros = u64::try_from(span.min(self.data.phase.duration).as_micros()).unwrap_or(0);
        self.data.acc.arrivals_micros = micros;
        self.data.acc.finished_micros = u64::try_from(span.as_micros()).unwrap_or(0);
    }
}

/// Each stress phase's step table and knee, replayed from its steps' verdicts.
fn stress_results(plan: &plan::Plan, summaries: &[PhaseSummary]) -> Vec<StressResult> {
    let mut out: Vec<StressResult> = Vec::new();
    let mut verdicts: Vec<Vec<(f64, bool)>> = Vec::new();
    for s in summaries {
        let Some(step) = s.step else { continue };
        let Some(&plan::PhaseKind::Stress(cfg)) = plan
            .phases
            .iter()
            .find(|p| p.name == s.name)
            .map(|p| &p.kind)
        else {
            continue;
        };
        let new_phase = out
            .last()
            .is_none_or(|r| r.phase != s.name || r.repeat != s.repeat || step.index == 0);
        if new_phase {
            out.push(StressResult {
                phase: s.name.clone(),
                repeat: s.repeat,
                knee_rate: None,
                stopped: crate::model::StopReason::Interrupted,
                reason: String::new(),
                steps: Vec::new(),
            });
            verdicts.push(Vec::new());
        }
        let (r, v) = (out.last_mut(), verdicts.last_mut());
        let (Some(r), Some(v)) = (r, v) else { continue };
        let passed = s.slo_passed.unwrap_or(true);
        if s.complete && !s.stopped_early {
            v.push((step.rate, passed));
        }
        let c = &s.requests;
        r.steps.push(StressStep {
            rate: step.rate,
            achieved_rate: s.achieved_rate,
            ttft_p99_ms: s.metrics.get("ttft").map(|m| m.p99),
            e2e_p99_ms: s.metrics.get("e2e").map(|m| m.p99),
            error_rate: if c.ok + c.failed > 0 {
                c.failed as f64 / (c.ok + c.failed) as f64
            } else {
                0.0
            },
            goodput: s.goodput,
            passed,
            failed: s
                .slo
                .iter()
                .filter(|c| !c.passed)
                .map(|c| c.objective.clone())
                .collect(),
        });
        let (knee, reason) = crate::analysis::stress::replay(cfg, v);
        r.knee_rate = knee;
        r.stopped = reason;
        r.reason = reason.describe().to_string();
    }
    out
}

/// Whether the run failed an objective: a phase whose objectives failed, or a
/// stress phase with no step that held them (a stress phase's failing last
/// step is how its search ends, not a failure).
fn slo_failed(summaries: &[PhaseSummary], stress: &[StressResult]) -> bool {
    summaries
        .iter()
        .any(|s| s.step.is_none() && s.slo_passed == Some(false))
        || stress.iter().any(|r| r.knee_rate.is_none())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const PLAN: &str =
        "[target.simulator]\n[[phase]]\nname = \"p\"\nkind = \"baseline\"\nduration = \"1s\"\n";

    pub(crate) fn run_dir(raw: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plan.toml"), PLAN).unwrap();
        let m = crate::results::manifest::sample();
        crate::results::manifest::write(dir.path(), &m).unwrap();
        std::fs::write(dir.path().join(rawlog::FILE_NAME), raw).unwrap();
        dir
    }

    pub(crate) const START: &str = r#"{"record":"phase_start","phase":0,"name":"p","start_unix_nanos":0,"window_ms":1000,"agents":["a"]}"#;
    const DONE: &str = r#"{"record":"phase_done","phase":0,"agent":"a","arrivals_micros":1000000,"finished_micros":1200000}"#;

    #[test]
    fn records_before_their_phase_start_are_named() {
        let dir = run_dir(&format!("{DONE}\n{START}\n"));
        let e = rebuild(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("windows.jsonl:1") && e.contains("phase_start"),
            "{e}"
        );
    }

    #[test]
    fn a_phase_unknown_to_the_plan_is_named() {
        let dir = run_dir(&format!(
            "{}\n",
            START.replace("\"name\":\"p\"", "\"name\":\"q\"")
        ));
        let e = rebuild(dir.path()).unwrap_err().to_string();
        assert!(e.contains("windows.jsonl:1") && e.contains("\"q\""), "{e}");
    }

    #[test]
    fn a_phase_without_its_end_is_incomplete() {
        let dir = run_dir(&format!("{START}\n{DONE}\n"));
        let data = rebuild(dir.path()).unwrap();
        assert!(!data.summary.phases[0].complete);
        let end = r#"{"record":"phase_end","phase":0,"lost_agents":[],"stopped_early":false,"duplicates":0}"#;
        let dir = run_dir(&format!("{START}\n{DONE}\n{end}\n"));
        let data = rebuild(dir.path()).unwrap();
        assert!(data.summary.phases[0].complete);
        assert!((data.summary.phases[0].finished_s - 1.2).abs() < 1e-9);
    }

    #[test]
    fn missing_files_are_named() {
        let dir = run_dir("");
        std::fs::remove_file(dir.path().join("manifest.json")).unwrap();
        let e = rebuild(dir.path()).unwrap_err().to_string();
        assert!(e.contains("manifest.json"), "{e}");
    }
}

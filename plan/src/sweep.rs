//! `[sweep]`: one plan file describing a matrix of runs.
//!
//! A sweep plan is an ordinary plan (the *base*) plus a `[sweep]` table of
//! axes — clusters, targets, models, workloads and load levels. The axes are
//! expanded as a full factorial, minus the combinations `exclude` names; each
//! combination is a *cell*, whose plan is the base with that cell's overrides
//! merged in. Every cell's plan is validated here, before anything runs, so a
//! sweep never stops half-way on a plan error. Cells are named by stable,
//! readable slugs (`cluster=big,workload=chat,rate=20`) that name their
//! results directories and their rows in the sweep summary.

use crate::names::MAX_FILE_NAME_BYTES;
use crate::{Phase, PhaseKind, Plan, PlanError, RawPlan};
use serde::Deserialize;
use std::path::Path;

/// Most cells one sweep may expand to.
pub const MAX_CELLS: usize = 10_000;

/// Invalid cells listed in an error before the rest are only counted.
const MAX_LISTED: usize = 20;

/// `[sweep]` exactly as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSweep {
    /// Clusters: `{ name, context, <plan tables> }`; the tables (`target`,
    /// `agents`, `cost`, ...) are merged into the base plan.
    pub cluster: Option<Vec<RawLevel>>,
    /// Targets: `{ name, <[target] keys> }`, merged into `[target]`.
    pub target: Option<Vec<RawLevel>>,
    /// Model names, set as `target.model`.
    pub model: Option<Vec<String>>,
    /// Workloads: `{ name, <plan tables> }`, e.g. `workload = [...]` (the
    /// `[[workload]]` mix) or `request = { ... }`, merged into the base plan.
    pub workload: Option<Vec<RawLevel>>,
    /// Rates (requests/s) set on every `constant` and `soak` phase.
    pub rate: Option<Vec<f64>>,
    /// Users set on every `concurrency` phase.
    pub users: Option<Vec<u32>>,
    /// Combinations left out: each entry names values of some axes, and the
    /// cells matching all of them are not run.
    pub exclude: Option<Vec<toml::Table>>,
    /// Stop at the first failed cell instead of going on. Default false.
    pub stop_on_failure: Option<bool>,
    /// The phase whose results fill each cell's summary row. Default: the
    /// last phase a load axis sets, or the plan's last phase.
    pub report_phase: Option<String>,
}

/// One value of a table-valued axis (cluster, target, workload).
#[derive(Debug, Clone, Deserialize)]
pub struct RawLevel {
    /// Name in slugs, summaries and `exclude`.
    pub name: Option<String>,
    /// Kubernetes context of a cluster (cluster axis only).
    pub context: Option<String>,
    /// Everything else: the overrides.
    #[serde(flatten)]
    pub overrides: toml::Table,
}

/// A sweep axis, in the order they appear in slugs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Axis {
    /// Clusters (a Kubernetes context each, or local overrides).
    Cluster,
    /// Endpoints under test.
    Target,
    /// Model names.
    Model,
    /// Request mixes.
    Workload,
    /// Open-loop load levels.
    Rate,
    /// Closed-loop load levels.
    Users,
}

impl Axis {
    /// Every axis, in slug order.
    pub const ALL: [Axis; 6] = [
        Axis::Cluster,
        Axis::Target,
        Axis::Model,
        Axis::Workload,
        Axis::Rate,
        Axis::Users,
    ];

    /// The axis's key under `[sweep]`.
    pub fn name(self) -> &'static str {
        match self {
            Axis::Cluster => "cluster",
            Axis::Target => "target",
            Axis::Model => "model",
            Axis::Workload => "workload",
            Axis::Rate => "rate",
            Axis::Users => "users",
        }
    }

    /// A load axis (its values are numbers plotted along x).
    pub fn is_load(self) -> bool {
        matches!(self, Axis::Rate | Axis::Users)
    }
}

/// One value of an axis.
#[derive(Debug, Clone, PartialEq)]
pub enum Level {
    /// A named set of plan overrides (cluster, target, workload).
    Named {
        /// Its name.
        name: String,
        /// Kubernetes context (clusters only).
        context: Option<String>,
        /// Tables merged into the plan (into `[target]` for the target axis).
        overrides: toml::Table,
    },
    /// A model name.
    Model(String),
    /// A rate.
    Rate(f64),
    /// A number of users.
    Users(u32),
}

impl Level {
    /// The value as written in slugs and summaries.
    pub fn label(&self) -> String {
        match self {
            Level::Named { name, .. } => name.clone(),
            Level::Model(m) => slug_text(m),
            Level::Rate(r) => r.to_string(),
            Level::Users(u) => u.to_string(),
        }
    }

    /// Does `value` (from an `exclude` entry) name this level?
    fn matches(&self, value: &toml::Value) -> bool {
        match (self, value) {
            (Level::Named { name, .. }, toml::Value::String(s)) => name == s,
            (Level::Model(m), toml::Value::String(s)) => m == s,
            (Level::Rate(r), toml::Value::Float(f)) => r == f,
            (Level::Rate(r), toml::Value::Integer(i)) => *r == *i as f64,
            (Level::Users(u), toml::Value::Integer(i)) => i64::from(*u) == *i,
            _ => false,
        }
    }
}

/// A model name made safe for a directory name: characters other than
/// letters, digits, `.`, `_` and `-` become `_`.
fn slug_text(s: &str) -> String {
    s.chars()
        .map(|c| {
            if crate::names::is_name_char(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// One run of the matrix.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Stable readable name, e.g. `cluster=big,workload=chat,rate=20`.
    pub slug: String,
    /// The value of each axis (aligned with [`Sweep::axes`]), as labels.
    pub values: Vec<String>,
    /// Kubernetes context of the cell's cluster, when it names one.
    pub context: Option<String>,
    /// The load level (rate or users), when a load axis is swept.
    pub load: Option<f64>,
    /// The cell's plan as TOML (the base with the overrides merged in).
    pub plan_text: String,
    /// What identifies the cell: its plan's TOML without `run.output_dir`
    /// (where results go does not change what runs), and its report phase.
    pub identity: String,
    /// The validated plan.
    pub plan: Plan,
    /// Name of the phase whose results fill the cell's summary row.
    pub report_phase: String,
}

/// A validated, expanded sweep.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// Axes swept, in slug order, with their values' labels.
    pub axes: Vec<(Axis, Vec<String>)>,
    /// Cells, in expansion order (the last axis varies fastest).
    pub cells: Vec<Cell>,
    /// Cells left out by `exclude`.
    pub excluded: usize,
    /// Stop at the first failed cell.
    pub stop_on_failure: bool,
}

impl Sweep {
    /// The base plan's run name (every cell shares it).
    pub fn name(&self) -> &str {
        self.cells.first().map_or("run", |c| c.plan.name.as_str())
    }

    /// Where sweep directories go (the first cell's `run.output_dir`).
    pub fn output_dir(&self) -> &Path {
        self.cells
            .first()
            .map_or(Path::new("results"), |c| c.plan.output_dir.as_path())
    }

    /// The axis plotted along x: a load axis, else the last axis.
    pub fn x_axis(&self) -> Option<usize> {
        self.axes
            .iter()
            .position(|(a, _)| a.is_load())
            .or_else(|| self.axes.len().checked_sub(1))
    }

    /// "2 cluster × 2 workload × 3 rate".
    pub fn shape(&self) -> String {
        self.axes
            .iter()
            .map(|(a, v)| format!("{} {}", v.len(), a.name()))
            .collect::<Vec<_>>()
            .join(" × ")
    }
}

/// Errors loading a sweep plan.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The file, the `[sweep]` table or an axis value is invalid.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Some cells' plans are invalid.
    #[error("{}", cells_message(.total, .invalid))]
    Cells {
        /// Cells expanded.
        total: usize,
        /// Each invalid cell's slug and what is wrong with its plan.
        invalid: Vec<(String, PlanError)>,
    },
}

fn cells_message(total: &usize, invalid: &[(String, PlanError)]) -> String {
    let mut s = format!("{} of {total} sweep cell(s) are invalid:", invalid.len());
    for (slug, e) in invalid.iter().take(MAX_LISTED) {
        s.push_str(&format!("\n  cell {slug}: {e}"));
    }
    if invalid.len() > MAX_LISTED {
        s.push_str(&format!("\n  ... and {} more", invalid.len() - MAX_LISTED));
    }
    s
}

/// Does the plan text have a `[sweep]` table? (False for text that is not
/// TOML: the plain plan loader reports that.)
pub fn is_sweep(text: &str) -> bool {
    text.parse::<toml::Table>()
        .is_ok_and(|t| t.contains_key("sweep"))
}

/// Read, parse, expand and validate a sweep plan file.
pub fn load(path: &Path) -> Result<Sweep, SweepError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlanError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    expand(&text, path)
}

/// Only the `[sweep]` table, parsed from the whole text so that errors carry
/// their line and column.
#[derive(Deserialize)]
struct SweepOnly {
    sweep: Option<RawSweep>,
}

/// Parse, expand and validate sweep plan text (`path` is the plan file:
/// relative paths in the plan resolve against it).
pub fn expand(text: &str, path: &Path) -> Result<Sweep, SweepError> {
    // Cells carry the resolved plan: their run directories must not depend on fragments.
    let flat = crate::include::flatten(text, path)?;
    let text = flat.as_str();
    let parse_err = |e| PlanError::toml(path, Some(text), e);
    let mut base: toml::Table = text.parse().map_err(parse_err)?;
    base.remove("sweep");
    let raw = toml::from_str::<SweepOnly>(text)
        .map_err(parse_err)?
        .sweep
        .ok_or_else(|| invalid(path, "sweep", "(missing)", "not a sweep plan"))?;
    let axes = raw.axes(path)?;
    let excludes = raw.excludes(path, &axes)?;
    let total: usize = axes.iter().map(|(_, l)| l.len()).product();
    if total > MAX_CELLS {
        return Err(invalid(
            path,
            "sweep",
            format!("{total} cells"),
            format!("at most {MAX_CELLS} cells per sweep"),
        )
        .into());
    }
    let mut cells = Vec::new();
    let mut bad = Vec::new();
    let mut excluded = 0;
    for index in combinations(&axes) {
        let levels: Vec<(Axis, &Level)> = axes
            .iter()
            .zip(&index)
            .map(|((a, l), &i)| (*a, &l[i]))
            .collect();
        if excludes.iter().any(|ex| {
            ex.iter()
                .all(|(a, v)| levels.iter().any(|(b, l)| a == b && l.matches(v)))
        }) {
            excluded += 1;
            continue;
        }
        let slug = levels
            .iter()
            .map(|(a, l)| format!("{}={}", a.name(), l.label()))
            .collect::<Vec<_>>()
            .join(",");
        if slug.len() > MAX_FILE_NAME_BYTES {
            return Err(invalid(
                path,
                "sweep",
                format!("{slug:?}"),
                format!(
                    "this cell's directory name is {} bytes, over the {MAX_FILE_NAME_BYTES} bytes of a file name: use shorter axis value names",
                    slug.len()
                ),
            )
            .into());
        }
        match cell(&base, &levels, raw.report_phase.as_deref(), path) {
            Ok(mut c) => {
                c.slug = slug;
                cells.push(c);
            }
            Err(e) => bad.push((slug, e)),
        }
    }
    if !bad.is_empty() {
        return Err(SweepError::Cells {
            total: total - excluded,
            invalid: bad,
        });
    }
    if cells.is_empty() {
        return Err(invalid(
            path,
            "sweep.exclude",
            format!("({excluded} cells)"),
            "excludes every cell",
        )
        .into());
    }
    Ok(Sweep {
        axes: axes
            .iter()
            .map(|(a, l)| (*a, l.iter().map(Level::label).collect()))
            .collect(),
        cells,
        excluded,
        stop_on_failure: raw.stop_on_failure.unwrap_or(false),
    })
}

fn invalid(
    path: &Path,
    key: impl Into<String>,
    value: impl std::fmt::Display,
    reason: impl Into<String>,
) -> PlanError {
    PlanError::Invalid {
        path: path.to_path_buf(),
        key: key.into(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Every combination of level indices, the last axis varying fastest.
fn combinations(axes: &[(Axis, Vec<Level>)]) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new()];
    for (_, levels) in axes {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                (0..levels.len()).map(move |i| {
                    let mut next = prefix.clone();
                    next.push(i);
                    next
                })
            })
            .collect();
    }
    out
}

/// Merge `over` into `base`: tables merge key by key, anything else
/// (arrays included) replaces.
pub fn merge(base: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

impl RawSweep {
    fn axes(&self, path: &Path) -> Result<Vec<(Axis, Vec<Level>)>, PlanError> {
        let mut axes = Vec::new();
        for axis in Axis::ALL {
            let key = |i: usize| format!("sweep.{}[{i}]", axis.name());
            let levels: Option<Vec<Level>> = match axis {
                Axis::Cluster | Axis::Target | Axis::Workload => {
                    let list = match axis {
                        Axis::Cluster => &self.cluster,
                        Axis::Target => &self.target,
                        _ => &self.workload,
                    };
                    list.as_ref()
                        .map(|l| {
                            l.iter()
                                .enumerate()
                                .map(|(i, v)| v.level(axis, &key(i), path))
                                .collect::<Result<_, _>>()
                        })
                        .transpose()?
                }
                Axis::Model => self
                    .model
                    .as_ref()
                    .map(|l| {
                        l.iter()
                            .enumerate()
                            .map(|(i, m)| {
                                if m.is_empty() {
                                    return Err(invalid(path, key(i), "\"\"", "must not be empty"));
                                }
                                Ok(Level::Model(m.clone()))
                            })
                            .collect::<Result<_, _>>()
                    })
                    .transpose()?,
                Axis::Rate => self
                    .rate
                    .as_ref()
                    .map(|l| {
                        l.iter()
                            .enumerate()
                            .map(|(i, &r)| {
                                if !(r.is_finite() && r > 0.0 && r <= 1_000_000.0) {
                                    return Err(invalid(
                                        path,
                                        key(i),
                                        r,
                                        "must be a positive rate in requests per second (at most 1000000)",
                                    ));
                                }
                                Ok(Level::Rate(r))
                            })
                            .collect::<Result<_, _>>()
                    })
                    .transpose()?,
                Axis::Users => self
                    .users
                    .as_ref()
                    .map(|l| {
                        l.iter()
                            .enumerate()
                            .map(|(i, &u)| {
                                if u == 0 {
                                    return Err(invalid(path, key(i), 0, "must be at least 1"));
                                }
                                Ok(Level::Users(u))
                            })
                            .collect::<Result<_, _>>()
                    })
                    .transpose()?,
            };
            let Some(levels) = levels else { continue };
            if levels.is_empty() {
                return Err(invalid(
                    path,
                    format!("sweep.{}", axis.name()),
                    "[]",
                    "an axis needs at least one value (or leave it out)",
                ));
            }
            for (i, l) in levels.iter().enumerate() {
                if let Some(j) = levels[..i].iter().position(|m| m.label() == l.label()) {
                    return Err(invalid(
                        path,
                        key(i),
                        format!("{:?}", l.label()),
                        format!(
                            "the same name in cell directories as {} (each value needs its own)",
                            key(j)
                        ),
                    ));
                }
            }
            axes.push((axis, levels));
        }
        if axes.is_empty() {
            return Err(invalid(
                path,
                "sweep",
                "(no axes)",
                "give at least one of `cluster`, `target`, `model`, `workload`, `rate`, `users`",
            ));
        }
        Ok(axes)
    }

    /// The `exclude` entries, checked against the axes: (axis, value) pairs.
    fn excludes(
        &self,
        path: &Path,
        axes: &[(Axis, Vec<Level>)],
    ) -> Result<Vec<Vec<(Axis, toml::Value)>>, PlanError> {
        let mut out = Vec::new();
        for (i, entry) in self.exclude.iter().flatten().enumerate() {
            if entry.is_empty() {
                return Err(invalid(
                    path,
                    format!("sweep.exclude[{i}]"),
                    "{}",
                    "name at least one axis value, e.g. { rate = 40 }",
                ));
            }
            let mut pairs = Vec::new();
            for (k, v) in entry {
                let key = format!("sweep.exclude[{i}].{k}");
                let Some((axis, levels)) = axes.iter().find(|(a, _)| a.name() == k) else {
                    let swept: Vec<&str> = axes.iter().map(|(a, _)| a.name()).collect();
                    return Err(invalid(
                        path,
                        key,
                        v,
                        format!("`{k}` is not a swept axis (axes: {})", swept.join(", ")),
                    ));
                };
                if !levels.iter().any(|l| l.matches(v)) {
                    let values: Vec<String> = levels.iter().map(Level::label).collect();
                    return Err(invalid(
                        path,
                        key,
                        v,
                        format!("not a value of sweep.{k} ({})", values.join(", ")),
                    ));
                }
                pairs.push((*axis, v.clone()));
            }
            out.push(pairs);
        }
        Ok(out)
    }
}

impl RawLevel {
    fn level(&self, axis: Axis, key: &str, path: &Path) -> Result<Level, PlanError> {
        let Some(name) = self.name.clone() else {
            return Err(invalid(
                path,
                format!("{key}.name"),
                "(missing)",
                "every value of a table axis needs a name",
            ));
        };
        if let Some(reason) = crate::names::directory_problem(&name, "cell directories") {
            return Err(invalid(
                path,
                format!("{key}.name"),
                format!("{name:?}"),
                reason,
            ));
        }
        if let Some(context) = &self.context {
            if axis != Axis::Cluster {
                return Err(invalid(
                    path,
                    format!("{key}.context"),
                    format!("{context:?}"),
                    "applies to sweep.cluster values only",
                ));
            }
            if context.is_empty() || context.chars().any(char::is_control) {
                return Err(invalid(
                    path,
                    format!("{key}.context"),
                    format!("{context:?}"),
                    "not a Kubernetes context name",
                ));
            }
        }
        // The overrides must be plan keys of the right types; checked here
        // so the error names this axis value rather than a cell.
        let probe = match axis {
            Axis::Target => toml::Table::from_iter([(
                "target".to_string(),
                toml::Value::Table(self.overrides.clone()),
            )]),
            _ => self.overrides.clone(),
        };
        if let Some(inner) = probe.get("sweep") {
            return Err(invalid(
                path,
                format!("{key}.sweep"),
                crate::quote::written(inner),
                "a sweep value cannot hold a sweep",
            ));
        }
        if let Err(e) = toml::Value::Table(probe).try_into::<RawPlan>() {
            let what = if axis == Axis::Target {
                "[target] keys"
            } else {
                "plan tables"
            };
            return Err(invalid(
                path,
                key,
                format!("{name:?}"),
                format!("its keys besides `name` must be {what}: {}", e.message()),
            ));
        }
        Ok(Level::Named {
            name,
            context: self.context.clone(),
            overrides: self.overrides.clone(),
        })
    }
}

/// Build and validate one cell's plan (its slug is filled by the caller).
fn cell(
    base: &toml::Table,
    levels: &[(Axis, &Level)],
    report_phase: Option<&str>,
    path: &Path,
) -> Result<Cell, PlanError> {
    let mut table = base.clone();
    let mut context = None;
    let mut load = None;
    for &(axis, level) in levels {
        match level {
            Level::Named {
                overrides,
                context: c,
                ..
            } => {
                if axis == Axis::Target {
                    let target = table
                        .entry("target")
                        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                    if let toml::Value::Table(t) = target {
                        merge(t, overrides);
                    }
                } else {
                    merge(&mut table, overrides);
                }
                context = context.or_else(|| c.clone());
            }
            Level::Model(m) => {
                let over = toml::Table::from_iter([(
                    "target".to_string(),
                    toml::Value::Table(toml::Table::from_iter([(
                        "model".to_string(),
                        toml::Value::String(m.clone()),
                    )])),
                )]);
                merge(&mut table, &over);
            }
            Level::Rate(r) => {
                set_load(&mut table, &["constant", "soak"], "rate", (*r).into(), path)?;
                load = Some(*r);
            }
            Level::Users(u) => {
                set_load(
                    &mut table,
                    &["concurrency"],
                    "users",
                    i64::from(*u).into(),
                    path,
                )?;
                load = Some(f64::from(*u));
            }
        }
    }
    let plan_text = toml::to_string(&table).map_err(|e| PlanError::Parse {
        path: path.to_path_buf(),
        message: format!("cannot write the cell's plan: {e}"),
    })?;
    let plan = crate::parse(&plan_text, path)?.validate(path)?;
    let mut identity = table;
    if let Some(toml::Value::Table(run)) = identity.get_mut("run") {
        run.remove("output_dir");
        if run.is_empty() {
            identity.remove("run");
        }
    }
    let report_phase = pick_report_phase(&plan.phases, levels, report_phase, path)?;
    // The summary row's phase is part of what the cell reports.
    let identity = format!(
        "{}\n# report_phase = {report_phase:?}\n",
        toml::to_string(&identity).unwrap_or_default()
    );
    Ok(Cell {
        slug: String::new(),
        values: levels.iter().map(|(_, l)| l.label()).collect(),
        context,
        load,
        plan_text,
        identity,
        plan,
        report_phase,
    })
}

/// Set `key` = `value` on every phase of one of `kinds`; an error when there is none.
fn set_load(
    table: &mut toml::Table,
    kinds: &[&str],
    key: &str,
    value: toml::Value,
    path: &Path,
) -> Result<(), PlanError> {
    let mut set = 0;
    if let Some(toml::Value::Array(phases)) = table.get_mut("phase") {
        for p in phases.iter_mut() {
            if let toml::Value::Table(p) = p
                && p.get("kind")
                    .and_then(toml::Value::as_str)
                    .is_some_and(|k| kinds.contains(&k))
            {
                p.insert(key.to_string(), value.clone());
                set += 1;
            }
        }
    }
    if set == 0 {
        return Err(invalid(
            path,
            format!("sweep.{key}"),
            value,
            format!(
                "the plan has no [[phase]] of kind {} to set `{key}` on",
                kinds
                    .iter()
                    .map(|k| format!("\"{k}\""))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        ));
    }
    Ok(())
}

fn pick_report_phase(
    phases: &[Phase],
    levels: &[(Axis, &Level)],
    wanted: Option<&str>,
    path: &Path,
) -> Result<String, PlanError> {
    if let Some(name) = wanted {
        return phases
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.name.clone())
            .ok_or_else(|| {
                let names: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
                invalid(
                    path,
                    "sweep.report_phase",
                    format!("{name:?}"),
                    format!("no such phase (phases: {})", names.join(", ")),
                )
            });
    }
    let rate = levels.iter().any(|(a, _)| *a == Axis::Rate);
    let users = levels.iter().any(|(a, _)| *a == Axis::Users);
    let loaded = |k: &PhaseKind| match k {
        PhaseKind::Constant { .. } | PhaseKind::Soak { .. } => rate,
        PhaseKind::Concurrency { .. } => users,
        _ => false,
    };
    phases
        .iter()
        .rev()
        .find(|p| loaded(&p.kind))
        .or(phases.last())
        .map(|p| p.name.clone())
        .ok_or_else(|| {
            invalid(
                path,
                "phase",
                "(missing)",
                "a plan needs at least one [[phase]]",
            )
        })
}

#[cfg(test)]
mod tests;

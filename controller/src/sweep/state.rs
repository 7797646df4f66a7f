//! `sweep-state.json`: what a sweep has done, so an interrupted sweep can be
//! resumed. It is rewritten atomically (temporary file, then rename) before
//! and after every cell, so a crash at any instant leaves either the old or
//! the new state, never a torn one. A cell is marked `running` before it
//! starts; a controller killed mid-cell leaves it `running`, and `--resume`
//! reruns every cell that is not `complete`.
//!
//! The state holds a SHA-256 of each cell's plan and of the whole set of
//! cells: a plan edited in a way that changes what some cell would run is
//! refused on resume, naming the cells added, removed or changed.

use crate::model::sweep::CellMetrics;
use serde::{Deserialize, Serialize};
use stampede_plan::sweep::Sweep;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File name of the state in a sweep directory.
pub const STATE_FILE: &str = "sweep-state.json";

/// Format revision of the file.
const FORMAT: u32 = 1;

/// Cells named per category in a plan-changed error.
const MAX_NAMED: usize = 10;

/// Where a cell stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellStatus {
    /// Not started yet.
    Pending,
    /// Started and not finished: the controller stopped during the cell.
    Running,
    /// Ran to the end (its objectives may still have failed).
    Complete,
    /// The run could not complete (an error is recorded).
    Failed,
    /// Stopped early by Ctrl-C / SIGTERM; its results are partial.
    Interrupted,
}

impl CellStatus {
    /// The status as written in the file and `sweep.csv`.
    pub fn name(self) -> &'static str {
        match self {
            CellStatus::Pending => "pending",
            CellStatus::Running => "running",
            CellStatus::Complete => "complete",
            CellStatus::Failed => "failed",
            CellStatus::Interrupted => "interrupted",
        }
    }
}

/// One cell's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellState {
    /// The cell's name and results directory (relative to the sweep directory).
    pub slug: String,
    /// The value of each axis, aligned with [`SweepState::axes`].
    pub values: Vec<String>,
    /// Kubernetes context of the cell's cluster.
    pub context: Option<String>,
    /// Load level (rate or users).
    pub load: Option<f64>,
    /// SHA-256 of the cell's plan (hex).
    pub hash: String,
    /// Where it stands.
    pub status: CellStatus,
    /// Times the cell was started.
    pub attempts: u32,
    /// Start of the last attempt (RFC 3339).
    pub started_at: Option<String>,
    /// End of the last attempt (RFC 3339).
    pub finished_at: Option<String>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// The completed cell missed one of its objectives.
    pub slo_failed: bool,
    /// Key results of the report phase, once complete.
    pub metrics: Option<CellMetrics>,
}

/// An axis and its values' labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AxisState {
    /// `cluster`, `target`, `model`, `workload`, `rate` or `users`.
    pub name: String,
    /// Values in plan order.
    pub values: Vec<String>,
    /// A load axis (numeric).
    pub load: bool,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepState {
    /// Format revision.
    pub format: u32,
    /// The plan's run name.
    pub name: String,
    /// The plan file the sweep was last run from (absolute).
    pub plan: PathBuf,
    /// SHA-256 over every cell's name and plan hash (hex).
    pub plan_hash: String,
    /// Axes swept.
    pub axes: Vec<AxisState>,
    /// Cells left out by `exclude`.
    pub excluded: usize,
    /// When the sweep was first started (RFC 3339).
    pub created_at: String,
    /// Cells in expansion order.
    pub cells: Vec<CellState>,
}

/// Problems with a state file or with resuming from it.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// No state file where one was expected.
    #[error("{0} is not a sweep directory (no {STATE_FILE})")]
    Missing(PathBuf),
    /// The file cannot be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// Read or write.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not a sweep state.
    #[error("{path} is damaged: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The plan now expands to different cells.
    #[error(
        "the plan changed since sweep {dir} was started, so its results would not belong together; \
         start a new sweep instead (controller run PLAN without --resume){}",
        changes(.added, .removed, .changed)
    )]
    PlanChanged {
        /// The sweep directory.
        dir: PathBuf,
        /// Cells the plan has now and the sweep had not.
        added: Vec<String>,
        /// Cells the sweep had and the plan has no more.
        removed: Vec<String>,
        /// Cells whose plan differs.
        changed: Vec<String>,
    },
}

fn changes(added: &[String], removed: &[String], changed: &[String]) -> String {
    let mut s = String::new();
    for (what, list) in [
        ("new cells", added),
        ("cells no longer in the plan", removed),
        ("cells whose plan changed", changed),
    ] {
        if list.is_empty() {
            continue;
        }
        let mut names: Vec<&str> = list.iter().take(MAX_NAMED).map(String::as_str).collect();
        let more = list.len().saturating_sub(MAX_NAMED);
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        names.sort_unstable();
        s.push_str(&format!("\n  {what}: {}{tail}", names.join(" ")));
    }
    s
}

/// SHA-256 of `bytes`, in hex.
fn sha256(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Hash over the cells' names and plan hashes, independent of their order.
fn set_hash(cells: &BTreeMap<&str, &str>) -> String {
    let mut text = String::new();
    for (slug, hash) in cells {
        text.push_str(&format!("{slug}\t{hash}\n"));
    }
    sha256(text.as_bytes())
}

impl SweepState {
    /// A new state: every cell pending.
    pub fn new(sweep: &Sweep, plan: &Path, created_at: String) -> SweepState {
        let cells: Vec<CellState> = sweep
            .cells
            .iter()
            .map(|c| CellState {
                slug: c.slug.clone(),
                values: c.values.clone(),
                context: c.context.clone(),
                load: c.load,
                hash: sha256(c.identity.as_bytes()),
                status: CellStatus::Pending,
                attempts: 0,
                started_at: None,
                finished_at: None,
                error: None,
                slo_failed: false,
                metrics: None,
            })
            .collect();
        let hashes = cells
            .iter()
            .map(|c| (c.slug.as_str(), c.hash.as_str()))
            .collect();
        SweepState {
            format: FORMAT,
            name: sweep.name().to_string(),
            plan: plan.to_path_buf(),
            plan_hash: set_hash(&hashes),
            axes: sweep
                .axes
                .iter()
                .map(|(a, v)| AxisState {
                    name: a.name().to_string(),
                    values: v.clone(),
                    load: a.is_load(),
                })
                .collect(),
            excluded: sweep.excluded,
            created_at,
            cells,
        }
    }

    /// Resume: the state of `sweep` (from `plan`) carrying over every
    /// recorded cell, or an error when the plan now expands differently.
    pub fn resume(&self, dir: &Path, sweep: &Sweep, plan: &Path) -> Result<SweepState, StateError> {
        let mut fresh = SweepState::new(sweep, plan, self.created_at.clone());
        if fresh.plan_hash != self.plan_hash {
            let old: BTreeMap<&str, &str> = self
                .cells
                .iter()
                .map(|c| (c.slug.as_str(), c.hash.as_str()))
                .collect();
            let new: BTreeMap<&str, &str> = fresh
                .cells
                .iter()
                .map(|c| (c.slug.as_str(), c.hash.as_str()))
                .collect();
            let only = |a: &BTreeMap<&str, &str>, b: &BTreeMap<&str, &str>| -> Vec<String> {
                a.keys()
                    .filter(|k| !b.contains_key(*k))
                    .map(ToString::to_string)
                    .collect()
            };
            return Err(StateError::PlanChanged {
                dir: dir.to_path_buf(),
                added: only(&new, &old),
                removed: only(&old, &new),
                changed: new
                    .iter()
                    .filter(|(k, h)| old.get(*k).is_some_and(|o| o != *h))
                    .map(|(k, _)| k.to_string())
                    .collect(),
            });
        }
        for cell in &mut fresh.cells {
            if let Some(old) = self.cells.iter().find(|c| c.slug == cell.slug) {
                *cell = old.clone();
            }
        }
        Ok(fresh)
    }

    /// Cells with status `s`.
    pub fn count(&self, s: CellStatus) -> usize {
        self.cells.iter().filter(|c| c.status == s).count()
    }

    /// Read the state of the sweep directory `dir`.
    pub fn read(dir: &Path) -> Result<SweepState, StateError> {
        let path = dir.join(STATE_FILE);
        if !path.is_file() {
            return Err(StateError::Missing(dir.to_path_buf()));
        }
        let text = std::fs::read_to_string(&path).map_err(|source| StateError::Io {
            action: "read",
            path: path.clone(),
            source,
        })?;
        let state: SweepState = serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if state.format != FORMAT {
            return Err(StateError::Corrupt {
                path,
                message: format!(
                    "format {} (this controller reads format {FORMAT})",
                    state.format
                ),
            });
        }
        Ok(state)
    }

    /// Write the state into `dir` atomically.
    pub fn write(&self, dir: &Path) -> Result<(), StateError> {
        use std::io::Write;
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(format!(".{STATE_FILE}.tmp"));
        let io = |source| StateError::Io {
            action: "write",
            path: path.clone(),
            source,
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.write_all(b"\n").map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stampede_plan::sweep::expand;

    const PLAN: &str = r#"
[target.simulator]
[[phase]]
kind = "constant"
rate = 1.0
duration = "1s"
[sweep]
rate = [1, 2]
[[sweep.cluster]]
name = "a"
[[sweep.cluster]]
name = "b"
target.simulator.ttft = "5ms"
"#;

    fn sweep(text: &str) -> Sweep {
        expand(text, Path::new("p.toml")).unwrap()
    }

    #[test]
    fn round_trips_atomically_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = SweepState::new(&sweep(PLAN), Path::new("/x/p.toml"), "t0".into());
        assert_eq!(state.cells.len(), 4);
        assert_eq!(state.count(CellStatus::Pending), 4);
        state.cells[1].status = CellStatus::Complete;
        state.cells[1].metrics = Some(CellMetrics::default());
        state.write(dir.path()).unwrap();
        assert_eq!(SweepState::read(dir.path()).unwrap(), state);
        // No temporary file is left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [STATE_FILE]);

        std::fs::write(dir.path().join(STATE_FILE), "{\"format\": 1").unwrap();
        let e = SweepState::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains(STATE_FILE) && e.contains("damaged"), "{e}");
        let e = SweepState::read(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a sweep directory"), "{e}");
    }

    #[test]
    fn resume_keeps_records_and_ignores_order() {
        let mut state = SweepState::new(&sweep(PLAN), Path::new("/x/p.toml"), "t0".into());
        state.cells[2].status = CellStatus::Complete;
        state.cells[2].attempts = 1;
        // Axis values listed in another order: the same cells.
        let reordered = PLAN.replace("rate = [1, 2]", "rate = [2, 1]");
        let s = sweep(&reordered);
        let resumed = state
            .resume(Path::new("d"), &s, Path::new("/y/p.toml"))
            .unwrap();
        assert_eq!(resumed.plan, Path::new("/y/p.toml"));
        assert_eq!(resumed.created_at, "t0");
        assert_eq!(resumed.cells[0].slug, "cluster=a,rate=2");
        let done = resumed
            .cells
            .iter()
            .find(|c| c.slug == state.cells[2].slug)
            .unwrap();
        assert_eq!((done.status, done.attempts), (CellStatus::Complete, 1));
        assert_eq!(resumed.count(CellStatus::Pending), 3);
    }

    #[test]
    fn a_plan_that_changes_the_cells_is_refused() {
        let state = SweepState::new(&sweep(PLAN), Path::new("/x/p.toml"), "t0".into());
        let changed = PLAN
            .replace("rate = [1, 2]", "rate = [1, 3]")
            .replace("ttft = \"5ms\"", "ttft = \"6ms\"");
        let e = state
            .resume(Path::new("sw-1"), &sweep(&changed), Path::new("/x/p.toml"))
            .unwrap_err();
        let StateError::PlanChanged {
            added,
            removed,
            changed,
            ..
        } = &e
        else {
            panic!("{e}")
        };
        assert_eq!(added, &["cluster=a,rate=3", "cluster=b,rate=3"]);
        assert_eq!(removed, &["cluster=a,rate=2", "cluster=b,rate=2"]);
        assert_eq!(changed, &["cluster=b,rate=1"]);
        let text = e.to_string();
        assert!(
            text.contains("sw-1") && text.contains("cells whose plan changed: cluster=b,rate=1"),
            "{text}"
        );
        // Where results go is not a change of the cells.
        let moved = PLAN.replace(
            "[target.simulator]",
            "[run]\noutput_dir = \"other\"\n[target.simulator]",
        );
        assert!(
            state
                .resume(Path::new("d"), &sweep(&moved), Path::new("/x/p.toml"))
                .is_ok()
        );
    }
}

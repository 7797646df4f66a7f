//! Fault actions as fired and the recovery episodes measured around them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The pre-fault band an episode is measured against.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Band {
    /// Windows it was made from.
    pub windows: u32,
    /// Their mean error rate (fraction).
    pub error_rate_mean: f64,
    /// Highest error rate still in the band.
    pub error_rate_upper: f64,
    /// Their mean TTFT p90 (ms); `None`: no successful request before the fault.
    pub ttft_p90_mean_ms: Option<f64>,
    /// Highest TTFT p90 still in the band (ms); also the TTFT above which a
    /// request counts as delayed.
    pub ttft_p90_upper_ms: Option<f64>,
    /// Whether a window without completions was seen before the fault (then
    /// an empty window is not an impact).
    pub empty_windows_normal: bool,
}

/// One fault episode of a phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Episode {
    /// Index of the action that started it.
    pub fault: u32,
    /// Index of the action that ended it (`None`: no restoring action).
    pub restore: Option<u32>,
    /// Fault instant, phase clock (s).
    pub fault_at_s: f64,
    /// Restore instant (s).
    pub restore_at_s: Option<f64>,
    /// The band; `None` when fewer than [`MIN_BAND_WINDOWS`] windows preceded the fault.
    pub band: Option<Band>,
    /// Whether any window left the band.
    pub impacted: bool,
    /// Start of the first window out of the band, not before the fault (s).
    pub impact_at_s: Option<f64>,
    /// `impact_at_s − fault_at_s`.
    pub time_to_impact_s: Option<f64>,
    /// Whether the series came back into the band and stayed.
    pub recovered: bool,
    /// Start of the first window of the run back in the band, not before the
    /// restore (or the impact, without a restore) (s).
    pub recovered_at_s: Option<f64>,
    /// `recovered_at_s −` the restore instant (or the impact, without a restore).
    pub time_to_recovery_s: Option<f64>,
    /// First and last window counted as the episode.
    pub windows: (u32, u32),
    /// Requests completed in those windows.
    pub requests: u64,
    /// Requests failed in those windows.
    pub failed: u64,
    /// Failures by class.
    pub errors: BTreeMap<String, u64>,
    /// Successful requests whose TTFT was above the band.
    pub delayed: u64,
    /// Faults the target itself counted between the fault and the restore.
    pub target_injected: Option<u64>,
}

/// A phase's fault actions and the episodes they made (`summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultReport {
    /// Every action, in firing order.
    pub actions: Vec<FiredAction>,
    /// The episodes.
    pub episodes: Vec<Episode>,
}

/// One fault action as it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiredAction {
    /// Position in the phase's `faults` list.
    pub index: u32,
    /// The `action` key, e.g. "simulator".
    pub kind: String,
    /// What it did, e.g. `simulator error_500=0.5`.
    pub action: String,
    /// Whether it restores the target (ends an episode).
    pub restores: bool,
    /// Planned offset into the phase (s).
    pub at_s: f64,
    /// When it was issued, phase clock (s); `None`: never fired.
    pub fired_at_s: Option<f64>,
    /// How long the action took (ms).
    pub took_ms: Option<f64>,
    /// Why it failed or did not fire; `None`: it succeeded.
    pub error: Option<String>,
    /// The target's own cumulative count of injected faults (the simulator's
    /// `faults_injected`, summed) read just before the action, when it has one.
    pub target_injected_before: Option<u64>,
    /// The same count read just after the action.
    pub target_injected_after: Option<u64>,
}

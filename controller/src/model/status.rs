//! How a command ended, in the few classes a caller acts on. Each error type
//! classifies itself here; `cli` maps each class to one exit code.

/// The class of a command's ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Done, and every objective met.
    Passed,
    /// The run completed but missed a service-level objective.
    ObjectivesMissed,
    /// The run (or command) could not complete.
    RunFailed,
    /// A bad plan, flag or input file: nothing was run.
    BadInput,
    /// Stopped early by a stop signal: what ran is written, the rest did not run.
    Interrupted,
    /// A compared run is worse than the baseline beyond a regression gate's
    /// threshold (and beyond noise, when the runs have repeats).
    Regressed,
}

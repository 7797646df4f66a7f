//! A run directory's raw record (`windows.jsonl`, `manifest.json`,
//! `plan.toml`) and rebuilding a run's results from it.

pub mod manifest;
pub mod rawlog;
mod rebuild;

pub use rebuild::*;

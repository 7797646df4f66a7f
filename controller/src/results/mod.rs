//! A run directory's raw record (`windows.jsonl`, `manifest.json`,
//! `plan.toml`, and the per-request `requests/*.parquet` when sampled) and rebuilding a run's results from it.

pub mod manifest;
pub mod rawlog;
mod rawlog_read;
mod rebuild;
pub mod records;
mod window_line;

pub use rebuild::*;

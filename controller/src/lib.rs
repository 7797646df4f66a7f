//! stampede's controller as a library, in layers that import only downwards
//! (`docs/architecture.md`; `tests/tests/architecture.rs` enforces it):
//!
//! `model` → `analysis` → `results` → `outputs` → `orchestrate` → `run` →
//! `sweep` → `cli`.
//!
//! The `controller` binary is a thin shell over [`cli::main`].

pub mod analysis;
pub mod cli;
pub mod model;
pub mod orchestrate;
pub mod outputs;
pub mod results;
pub mod run;
pub mod sweep;

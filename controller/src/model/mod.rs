//! Plain data: what a run produced and what the other layers pass around.
//! No computation beyond accessors; nothing here imports another layer.

pub mod breakdown;
pub mod cluster;
pub mod faults;
pub mod gate;
pub mod inputs;
pub mod status;
pub mod summary;
pub mod sweep;

pub use breakdown::*;
pub use cluster::*;
pub use faults::*;
pub use inputs::*;
pub use status::Status;
#[cfg(test)]
pub(crate) use summary::tests;
pub use summary::*;

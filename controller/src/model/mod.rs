//! Plain data: what a run produced and what the other layers pass around.
//! No computation beyond accessors; nothing here imports another layer.

pub mod cluster;
pub mod faults;
pub mod inputs;
pub mod summary;
pub mod sweep;

pub use cluster::*;
pub use faults::*;
pub use inputs::*;
#[cfg(test)]
pub(crate) use summary::tests;
pub use summary::*;

//! Driving agents through a phase: the gRPC service, security, clock
//! estimation, assignments, the phase run, fault actions, server scraping,
//! progress, live metrics and spans, plus the Kubernetes and serving-stack
//! machinery a run may deploy.

mod assign;
pub mod certs;
pub mod clock;
pub mod embedded;
pub mod error;
pub mod fault_actions;
pub mod intake;
pub mod k8s;
pub mod live;
mod phase_run;
pub mod progress;
pub mod runner;
pub mod security;
pub mod service;
pub mod serving;
pub mod spans;
pub mod tokenizer;

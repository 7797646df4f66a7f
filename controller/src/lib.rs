//! stampede's controller as a library: the gRPC coordinator service, clock
//! estimation, the phase run loop, exact merging of agents' histograms, and
//! the reports. The `controller` binary is a thin CLI over [`run::run`].

pub mod certs;
pub mod charts;
pub mod clock;
pub mod compare;
pub mod cost;
pub mod embedded;
pub mod error;
pub mod fault_actions;
pub mod faults_out;
pub mod hlog;
pub mod inputs;
pub mod k8s;
pub mod live;
pub mod llmd;
pub mod manifest;
pub mod merge;
pub mod progress;
pub mod rawlog;
pub mod recovery;
pub mod repeats;
pub mod report;
pub mod results;
pub mod run;
pub mod runner;
pub mod schedule;
pub mod security;
pub mod server_metrics;
pub mod service;
pub mod serving;
pub mod spans;
pub mod stress;
pub mod summary;
pub mod sweep;
pub mod tables;
pub mod tokenizer;
pub mod verdict;

//! Whole runs against in-memory Kubernetes fakes (deploying agents, a
//! serving stack); the fakes and their helpers live beside what they fake.

mod k8s;
mod serving;

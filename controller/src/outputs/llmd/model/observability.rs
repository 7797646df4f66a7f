//! What a tool watching the serving stack saw during a run: resource use,
//! pod start-up, replica counts and health. stampede does not write these;
//! the types let a report from a tool that does be read.

use super::Violation;
use super::check::{Check, check_fields, non_negative};
use super::stats::Statistics;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Observability results. The format leaves this object open (llm-d's own
/// example adds engine metrics here), so other keys are kept, unchecked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observability {
    /// Per component.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<ComponentObservability>>,
    /// Request drop rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_rate: Option<Statistics>,
    /// Pod start-up times.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_startup_times: Option<PodStartupTimes>,
    /// Replica counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_status: Option<ReplicaStatus>,
    /// Any other observations.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

check_fields!(Observability: components, drop_rate, pod_startup_times, replica_status);

/// Resource use of one component (or one of its replicas).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentObservability {
    /// The component's label in the stack.
    pub component_label: String,
    /// Replica, when per replica.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_id: Option<String>,
    /// Over the whole run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<ResourceMetrics>,
    /// Over time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_series: Option<TimeSeriesResourceMetrics>,
    /// Where the raw data is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_data_path: Option<String>,
    /// Where a graph of it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_path: Option<String>,
}

check_fields!(ComponentObservability: aggregate, time_series);

/// Declares a struct of optional resource quantities of one type: those the
/// aggregate and the time-series views share, then `extra` ones.
macro_rules! resource_metrics {
    ($(#[$attr:meta])* $name:ident of $ty:ty { $($(#[$fattr:meta])* $extra:ident,)* }) => {
        $(#[$attr])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// KV cache use.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub kv_cache_usage: Option<$ty>,
            /// GPU cache use.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub gpu_cache_usage: Option<$ty>,
            /// CPU cache use.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub cpu_cache_usage: Option<$ty>,
            /// GPU memory use.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub gpu_memory_usage: Option<$ty>,
            /// CPU memory use.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub cpu_memory_usage: Option<$ty>,
            /// Storage use.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub storage_usage: Option<$ty>,
            /// GPU utilization.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub gpu_utilization: Option<$ty>,
            /// CPU utilization.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub cpu_utilization: Option<$ty>,
            /// Power draw.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub power_consumption: Option<$ty>,
            $(
                $(#[$fattr])*
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $extra: Option<$ty>,
            )*
        }

        check_fields!($name: kv_cache_usage, gpu_cache_usage, cpu_cache_usage, gpu_memory_usage, cpu_memory_usage, storage_usage, gpu_utilization, cpu_utilization, power_consumption, $($extra),*);
    };
}

resource_metrics! {
    /// Resource use over a whole run.
    ResourceMetrics of Statistics {
        /// Prefix cache hit rate.
        cache_hit_rate,
        /// Requests running.
        running_requests,
        /// Requests waiting.
        waiting_requests,
        /// Requests swapped out.
        swapped_requests,
        /// Preemptions.
        preemptions,
    }
}

resource_metrics! {
    /// Resource use over time.
    TimeSeriesResourceMetrics of super::performance::TimeSeriesData {}
}

/// Pod start-up times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodStartupTimes {
    /// When collected (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collected_at: Option<String>,
    /// Per pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pods: Option<Vec<PodStartupInfo>>,
    /// Over all pods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<Statistics>,
    /// Where a graph of it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_path: Option<String>,
}

check_fields!(PodStartupTimes: pods, aggregate);

/// One pod's start-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodStartupInfo {
    /// Pod name.
    pub name: String,
    /// Model it serves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Its role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Node it ran on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Created (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// Ready (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_timestamp: Option<String>,
    /// Creation to ready, seconds (at least 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startup_seconds: Option<f64>,
}

impl Check for PodStartupInfo {
    fn check(&self, path: &str) -> Result<(), Violation> {
        non_negative(path, "startup_seconds", self.startup_seconds)
    }
}

/// Replica counts of the stack's controllers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaStatus {
    /// Namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// When taken (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Per controller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controllers: Option<Vec<ControllerReplicaStatus>>,
    /// Snapshots over time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_series: Option<Vec<ReplicaStatusSnapshot>>,
    /// Ready replicas over time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate_ready_replicas: Option<Statistics>,
    /// Where a graph of it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_path: Option<String>,
}

check_fields!(ReplicaStatus: aggregate_ready_replicas);

/// Replica counts at one time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaStatusSnapshot {
    /// When taken (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Per controller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controllers: Option<Vec<ControllerReplicaStatus>>,
}

/// Replica counts of one controller (Deployment, StatefulSet, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerReplicaStatus {
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Model served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Replicas wanted.
    pub desired_replicas: u64,
    /// Replicas available.
    pub available_replicas: u64,
    /// Replicas ready.
    pub ready_replicas: u64,
    /// Replicas updated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<u64>,
}

/// Health of one component during the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentHealth {
    /// The component's label in the stack.
    pub component_label: String,
    /// Restarts over all replicas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_restarts: Option<u64>,
    /// Replicas that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_replicas: Option<u64>,
    /// Per replica.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_health: Option<Vec<ReplicaHealth>>,
}

/// Health of one replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaHealth {
    /// Replica.
    pub replica_id: String,
    /// Restarts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u64>,
    /// Healthy at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// Its logs, or where they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
}

//! A sweep's per-cell figures, as its table and chart read them.

use serde::{Deserialize, Serialize};

/// Key results of one cell's report phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CellMetrics {
    /// The phase they come from.
    pub phase: String,
    /// Offered rate (open-loop phases).
    pub offered_rate: Option<f64>,
    /// Users (closed-loop phases).
    pub users: Option<u32>,
    /// Requests sent.
    pub requests: u64,
    /// Achieved send rate (requests/s).
    pub achieved_rate: f64,
    /// Successful requests per second.
    pub request_throughput: f64,
    /// Output tokens per second.
    pub output_token_throughput: f64,
    /// TTFT median (ms).
    pub ttft_p50_ms: Option<f64>,
    /// TTFT 99th percentile (ms).
    pub ttft_p99_ms: Option<f64>,
    /// ITL median (ms).
    pub itl_p50_ms: Option<f64>,
    /// ITL 99th percentile (ms).
    pub itl_p99_ms: Option<f64>,
    /// E2E 99th percentile (ms).
    pub e2e_p99_ms: Option<f64>,
    /// Failed / (ok + failed).
    pub error_rate: f64,
    /// Requests meeting every latency objective, per second.
    pub goodput: Option<f64>,
    /// Whether the run met all its objectives (`None`: it had none).
    pub slo_passed: Option<bool>,
}

/// One line of the comparison chart: the cells sharing every axis value but x.
#[derive(Debug, Clone)]
pub struct Series {
    /// The other axes' values, e.g. `cluster=big,workload=chat`.
    pub label: String,
    /// (x position, the cell's results), sorted by x.
    pub points: Vec<(f64, CellMetrics)>,
}

/// What the chart draws: x is a load axis (numeric) or another axis (its
/// values at positions 0, 1, ...).
#[derive(Debug, Clone)]
pub struct ChartData {
    /// The x axis's name.
    pub x_name: String,
    /// Whether x values are load levels.
    pub x_load: bool,
    /// Labels of x positions for a non-load axis.
    pub x_labels: Vec<String>,
    /// Lines.
    pub series: Vec<Series>,
}

//! The embedded default: when a plan names no remote agents the controller
//! starts local agents itself (the same agent code, the same gRPC protocol
//! over loopback), and when the target is the built-in simulator it starts
//! that too. One command then runs a full benchmark with no cluster.

use crate::orchestrate::error::ControllerError;
use stampede_agent::{AgentClock, AgentConfig};
use stampede_plan::SimulatorSpec;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Start the built-in simulator.
pub async fn start_simulator(
    spec: &SimulatorSpec,
    model: &str,
    shutdown: CancellationToken,
) -> Result<stampede_sim::RunningSim, ControllerError> {
    // Fields the plan does not set keep the simulator's defaults.
    #[allow(clippy::needless_update)]
    let cfg = stampede_sim::SimConfig {
        ttft: spec.ttft,
        itl: spec.itl,
        output_tokens: spec.output_tokens,
        model: model.to_string(),
        engine: spec.engine.as_ref().map(engine_config),
        extra_models: spec.models.iter().map(model_config).collect(),
        ..Default::default()
    };
    stampede_sim::start(cfg, spec.listen, shutdown)
        .await
        .map_err(|source| ControllerError::Simulator {
            addr: spec.listen,
            source,
        })
}

/// One more simulated model from the plan's `[[target.simulator.models]]`.
fn model_config(m: &stampede_plan::SimModelSpec) -> stampede_sim::ModelConfig {
    stampede_sim::ModelConfig {
        name: m.name.clone(),
        ttft: m.ttft,
        itl: m.itl,
        output_tokens: m.output_tokens,
        max_model_len: None,
        engine: m.engine.as_ref().map(engine_config),
    }
}

/// The simulator's engine settings from the plan's (unset keys: its defaults).
fn engine_config(e: &stampede_plan::SimEngine) -> stampede_sim::EngineConfig {
    let d = stampede_sim::EngineConfig::default();
    let dur = |v: &Option<stampede_plan::duration::HumanDuration>, default| {
        v.as_ref()
            .map_or(default, stampede_plan::duration::HumanDuration::get)
    };
    stampede_sim::EngineConfig {
        max_num_seqs: e.max_num_seqs.unwrap_or(d.max_num_seqs),
        max_waiting: e.max_waiting.unwrap_or(d.max_waiting),
        queue_full_status: d.queue_full_status,
        step_base: dur(&e.step_base, d.step_base),
        step_per_seq: dur(&e.step_per_seq, d.step_per_seq),
        prefill_per_token: dur(&e.prefill_per_token, d.prefill_per_token),
        block_size: e.block_size.unwrap_or(d.block_size),
        num_blocks: e.num_blocks.unwrap_or(d.num_blocks),
        prefix_caching: e.prefix_caching.unwrap_or(d.prefix_caching),
    }
}

/// Start `count` in-process agents that dial the controller at `addr`.
pub fn start_agents(
    count: u32,
    addr: SocketAddr,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let node = stampede_runtime::host_name();
    (0..count)
        .map(|i| {
            let cfg = AgentConfig {
                controller: format!("http://{addr}"),
                agent_id: format!("local-{i}"),
                node_name: node.clone(),
                cores: 1,
                give_up_after: Duration::from_secs(10),
                clock: AgentClock::default(),
                security: Default::default(),
            };
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                if let Err(e) = stampede_agent::run(cfg, shutdown).await {
                    tracing::error!("local agent {i}: {e}");
                }
            })
        })
        .collect()
}

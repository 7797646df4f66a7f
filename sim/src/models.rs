//! The models one server serves, and routing a request to one of them.
//!
//! A multi-model phase needs models that behave differently on one endpoint, so each model
//! has its own timing, length limit, batching engine (its own batch and KV cache) and
//! counters; only the fault settings and the randomness are server-wide.

use std::sync::Arc;

use axum::body::Bytes;
use tokio_util::sync::CancellationToken;

use crate::config::{ModelConfig, SimConfig};
use crate::engine::Engine;
use crate::error::ApiError;
use crate::faults::Faults;
use crate::hrtimer::Clock;
use crate::metrics::{Metrics, Scope, escape_label};
use crate::stats::ModelStats;
use crate::timeline::Timing;

/// One served model.
#[derive(Debug)]
pub(crate) struct Served {
    pub(crate) cfg: ModelConfig,
    /// Its fixed timing (used without an engine).
    pub(crate) timing: Timing,
    pub(crate) stats: Arc<ModelStats>,
    /// Its batching engine, when configured.
    pub(crate) engine: Option<Engine>,
    /// Its `/metrics` labels.
    label: String,
}

impl Served {
    fn new(
        cfg: ModelConfig,
        index: usize,
        server: &SimConfig,
        faults: &Arc<Faults>,
        shutdown: &CancellationToken,
    ) -> Self {
        // Token-count buckets end at the longest context the model takes.
        let max_len = cfg.max_model_len.map(u64::from).or_else(|| {
            cfg.engine
                .as_ref()
                .map(|e| u64::from(e.block_size) * u64::from(e.num_blocks))
        });
        let metrics = Metrics::new(max_len.unwrap_or(u64::from(u32::MAX)), cfg.engine.is_some());
        let stats = Arc::new(ModelStats::new(metrics));
        // The first model's engine draws from the server's seed as a lone model always did.
        let seed = server.seed.wrapping_add(index as u64);
        let engine = cfg.engine.clone().map(|e| {
            Engine::new(
                e,
                server.jitter,
                seed,
                Arc::clone(&stats),
                Arc::clone(faults),
                shutdown.clone(),
                Clock::Precise,
            )
        });
        Self {
            timing: Timing::of(&cfg, server.jitter, server.seed),
            label: format!("model_name=\"{}\",engine=\"0\"", escape_label(&cfg.name)),
            cfg,
            stats,
            engine,
        }
    }

    /// This model as the `/metrics` page shows it.
    pub(crate) fn scope(&self) -> Scope<'_> {
        Scope {
            label: &self.label,
            counts: &self.stats.counts,
            metrics: &self.stats.metrics,
        }
    }
}

/// Every served model, the default one first.
#[derive(Debug)]
pub(crate) struct Models {
    all: Vec<Served>,
    /// The `GET /v1/models` body, built once.
    pub(crate) list_body: Bytes,
}

impl Models {
    /// The models of `cfg`, engines ending with `shutdown`.
    pub(crate) fn new(cfg: &SimConfig, faults: &Arc<Faults>, shutdown: &CancellationToken) -> Self {
        let all: Vec<Served> = cfg
            .models()
            .into_iter()
            .enumerate()
            .map(|(i, m)| Served::new(m, i, cfg, faults, shutdown))
            .collect();
        let data: Vec<_> = all
            .iter()
            .map(|m| {
                serde_json::json!({
                    "id": m.cfg.name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "stampede",
                    "root": m.cfg.name,
                    "parent": null,
                    "max_model_len": m.cfg.max_model_len,
                })
            })
            .collect();
        let list = serde_json::json!({"object": "list", "data": data});
        Self {
            all,
            list_body: Bytes::from(list.to_string()),
        }
    }

    /// The model a request names; without a name, the default one.
    pub(crate) fn route(&self, name: Option<&str>) -> Result<&Served, ApiError> {
        match name {
            None => Ok(&self.all[0]),
            Some(n) => self
                .get(n)
                .ok_or_else(|| ApiError::ModelNotFound(n.to_owned())),
        }
    }

    /// The model named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Served> {
        self.all.iter().find(|m| m.cfg.name == name)
    }

    /// Every model, the default one first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Served> {
        self.all.iter()
    }
}

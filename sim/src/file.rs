//! The binary's TOML config file.
//!
//! A Kubernetes manifest mounts one file rather than spelling twenty flags, so every setting
//! has a key here. Unknown keys are errors (a typo must not silently keep a default), and the
//! error names the file, line and key. Precedence in the binary: built-in defaults, then
//! this file, then flags. The top-level keys describe the first (default) model; each
//! `[[models]]` table adds one more model with its own timing and engine.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{EngineConfig, ModelConfig, SimConfig};
use crate::error::SimError;
use crate::faults::FaultConfig;

/// The contents of a config file; every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on (the binary's `--listen`).
    pub listen: Option<SocketAddr>,
    /// [`SimConfig::model`].
    pub model: Option<String>,
    /// [`SimConfig::ttft`], e.g. `"20ms"`.
    #[serde(default, with = "crate::dur::option")]
    pub ttft: Option<Duration>,
    /// [`SimConfig::itl`], e.g. `"5ms"`.
    #[serde(default, with = "crate::dur::option")]
    pub itl: Option<Duration>,
    /// [`SimConfig::output_tokens`].
    pub output_tokens: Option<u32>,
    /// [`SimConfig::max_model_len`].
    pub max_model_len: Option<u32>,
    /// [`SimConfig::seed`].
    pub seed: Option<u64>,
    /// [`SimConfig::jitter`].
    pub jitter: Option<f64>,
    /// `[engine]`: its presence enables the batching engine; missing keys take the
    /// [`EngineConfig`] defaults.
    pub engine: Option<EngineConfig>,
    /// `[faults]`: missing keys take the [`FaultConfig`] defaults (no fault).
    pub faults: Option<FaultConfig>,
    /// `[[models]]`: more models served beside `model` ([`SimConfig::extra_models`]).
    #[serde(default)]
    pub models: Vec<FileModel>,
}

/// One `[[models]]` table: a model served beside the default one. Missing keys take the
/// built-in defaults ([`ModelConfig::default`]), not the top-level values.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileModel {
    /// [`ModelConfig::name`] (required).
    pub name: String,
    /// [`ModelConfig::ttft`], e.g. `"80ms"`.
    #[serde(default, with = "crate::dur::option")]
    pub ttft: Option<Duration>,
    /// [`ModelConfig::itl`].
    #[serde(default, with = "crate::dur::option")]
    pub itl: Option<Duration>,
    /// [`ModelConfig::output_tokens`].
    pub output_tokens: Option<u32>,
    /// [`ModelConfig::max_model_len`].
    pub max_model_len: Option<u32>,
    /// `[models.engine]`: this model's own batching engine.
    pub engine: Option<EngineConfig>,
}

impl From<FileModel> for ModelConfig {
    fn from(f: FileModel) -> Self {
        let d = ModelConfig::default();
        Self {
            name: f.name,
            ttft: f.ttft.unwrap_or(d.ttft),
            itl: f.itl.unwrap_or(d.itl),
            output_tokens: f.output_tokens.unwrap_or(d.output_tokens),
            max_model_len: f.max_model_len,
            engine: f.engine,
        }
    }
}

impl FileConfig {
    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Self, SimError> {
        let fail = |message: String| SimError::ConfigFile {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        Self::from_toml(&text).map_err(|e| fail(e.to_string().trim_end().to_owned()))
    }

    /// Overrides the settings of `cfg` that this file sets.
    pub fn apply_to(self, cfg: &mut SimConfig) {
        if let Some(v) = self.model {
            cfg.model = v;
        }
        if let Some(v) = self.ttft {
            cfg.ttft = v;
        }
        if let Some(v) = self.itl {
            cfg.itl = v;
        }
        if let Some(v) = self.output_tokens {
            cfg.output_tokens = v;
        }
        if let Some(v) = self.max_model_len {
            cfg.max_model_len = Some(v);
        }
        if let Some(v) = self.seed {
            cfg.seed = v;
        }
        if let Some(v) = self.jitter {
            cfg.jitter = v;
        }
        if let Some(v) = self.engine {
            cfg.engine = Some(v);
        }
        if let Some(v) = self.faults {
            cfg.faults = v;
        }
        if !self.models.is_empty() {
            cfg.extra_models = self.models.into_iter().map(ModelConfig::from).collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OverloadStatus;

    #[test]
    fn full_file_parses_and_applies() {
        let text = r#"
            listen = "0.0.0.0:9000"
            model = "m"
            ttft = "30ms"
            max_model_len = 2048
            seed = 7
            jitter = 0.1
            [engine]
            max_num_seqs = 8
            queue_full_status = 503
            step_per_seq = "100us"
            [faults]
            error_429 = 0.25
            warmup = "10s"
            warmup_factor = 2.0
        "#;
        let file = FileConfig::from_toml(text).expect("parses");
        assert_eq!(file.listen, Some("0.0.0.0:9000".parse().expect("addr")));
        let mut cfg = SimConfig::default();
        file.apply_to(&mut cfg);
        assert_eq!(cfg.ttft, Duration::from_millis(30));
        assert_eq!(cfg.itl, Duration::from_millis(5));
        let engine = cfg.engine.clone().expect("engine");
        assert_eq!(engine.max_num_seqs, 8);
        assert_eq!(engine.queue_full_status, OverloadStatus::ServiceUnavailable);
        assert_eq!(engine.step_per_seq, Duration::from_micros(100));
        assert_eq!(engine.block_size, EngineConfig::default().block_size);
        assert_eq!(cfg.faults.error_429, 0.25);
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        for text in [
            "tfft = \"20ms\"",
            "ttft = \"soon\"",
            "[engine]\nmax_num_seq = 3",
            "[engine]\nqueue_full_status = 500",
            "[faults]\nerror_404 = 0.1",
            "[[models]]\nttft = \"5ms\"",
            "[[models]]\nname = \"x\"\ntfft = \"5ms\"",
            "[[models]]\nname = \"x\"\n[models.engine]\nmax_num_seq = 3",
        ] {
            assert!(FileConfig::from_toml(text).is_err(), "{text}");
        }
    }

    #[test]
    fn models_tables_add_models_with_their_own_settings() {
        let text = r#"
            model = "fast"
            ttft = "20ms"
            [[models]]
            name = "slow"
            ttft = "80ms"
            max_model_len = 4096
            [models.engine]
            max_num_seqs = 4
            [[models]]
            name = "plain"
        "#;
        let mut cfg = SimConfig::default();
        FileConfig::from_toml(text)
            .expect("parses")
            .apply_to(&mut cfg);
        let names: Vec<_> = cfg.models().into_iter().map(|m| m.name).collect();
        assert_eq!(names, ["fast", "slow", "plain"]);
        let slow = &cfg.extra_models[0];
        assert_eq!(slow.ttft, Duration::from_millis(80));
        assert_eq!(slow.max_model_len, Some(4096));
        assert_eq!(slow.engine.as_ref().map(|e| e.max_num_seqs), Some(4));
        assert_eq!(
            cfg.extra_models[1],
            ModelConfig {
                name: "plain".into(),
                ..ModelConfig::default()
            }
        );
        assert!(cfg.validate().is_ok());

        let dup = "model = \"a\"\n[[models]]\nname = \"a\"";
        let mut cfg = SimConfig::default();
        FileConfig::from_toml(dup)
            .expect("parses")
            .apply_to(&mut cfg);
        let e = cfg.validate().expect_err("duplicate name");
        assert_eq!(
            e.to_string(),
            "invalid simulator setting `name` of models[0] (\"a\"): model \"a\" is served twice"
        );
        cfg.extra_models[0].name = String::new();
        let e = cfg.validate().expect_err("empty name");
        assert_eq!(
            e.to_string(),
            "invalid simulator setting `name` of models[0] (\"\"): must not be empty"
        );
        cfg.extra_models[0] = ModelConfig {
            name: "b".into(),
            max_model_len: Some(0),
            ..ModelConfig::default()
        };
        let e = cfg.validate().expect_err("bad length");
        assert_eq!(
            (e.key, e.model.as_deref()),
            ("max_model_len", Some("models[0] (\"b\")"))
        );
    }
}

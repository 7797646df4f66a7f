//! `[target]`: the endpoint under test — a URL with its model, or the
//! built-in simulator — and how requests reach it (API, headers, API key
//! variable, TLS roots, tokenizer). With `[serving]`, the stack gives the
//! URL and model by default.

use super::{Ctx, MISSING, is_env_name};
use crate::duration::HumanDuration;
use crate::serving::ServingSpec;
use crate::{
    Api, Endpoint, PlanError, RawPlan, RawSimulator, RawTarget, SIMULATOR_MODEL, SimulatorSpec,
    Target,
};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

impl RawPlan {
    /// `serving`: with `[serving]`, the target defaults to the stack's URL
    /// and (standalone) model, and `[target]` may be left out.
    pub(super) fn validate_target(
        &self,
        cx: &Ctx<'_>,
        serving: Option<&ServingSpec>,
    ) -> Result<Target, PlanError> {
        let t = self.target_or_served(cx, serving)?;
        let api = match t.api.as_deref().unwrap_or("chat") {
            "chat" => Api::Chat,
            "completions" => Api::Completions,
            other => {
                return Err(cx.invalid(
                    "target.api",
                    format!("{other:?}"),
                    "expected \"chat\" or \"completions\"",
                ));
            }
        };
        let (endpoint, model) = endpoint(cx, &t)?;
        if model.is_empty() {
            return Err(cx.invalid("target.model", "\"\"", "must not be empty"));
        }
        let headers = t.headers.clone().unwrap_or_default();
        check_headers(cx, &headers)?;
        if let Some(var) = &t.api_key_env
            && !is_env_name(var)
        {
            return Err(cx.invalid(
                "target.api_key_env",
                format!("{var:?}"),
                "not an environment variable name",
            ));
        }
        Ok(Target {
            endpoint,
            model,
            api,
            headers,
            api_key_env: t.api_key_env.clone(),
            http2: t.http2.unwrap_or(false),
            ca_pem: t.ca_file.as_ref().map(|f| read_ca(cx, f)).transpose()?,
            insecure_tls: t.insecure_tls.unwrap_or(false),
            tokenizer: t.tokenizer.as_ref().map(|f| cx.resolve(f)),
        })
    }

    /// `[target]` as written, or (with `[serving]` and no simulator) with
    /// the stack's URL and model filling what it leaves out.
    fn target_or_served(
        &self,
        cx: &Ctx<'_>,
        serving: Option<&ServingSpec>,
    ) -> Result<Cow<'_, RawTarget>, PlanError> {
        let t = match (&self.target, serving) {
            (Some(t), _) => Cow::Borrowed(t),
            (None, Some(_)) => Cow::Owned(RawTarget::default()),
            (None, None) => {
                return Err(cx.invalid(
                    "target",
                    MISSING,
                    "a plan needs a [target] with `url` or a [target.simulator] table",
                ));
            }
        };
        Ok(match serving {
            Some(s) if t.simulator.is_none() => Cow::Owned(RawTarget {
                url: t.url.clone().or_else(|| Some(s.base_url())),
                model: t.model.clone().or_else(|| s.model().map(str::to_string)),
                ..t.into_owned()
            }),
            _ => t,
        })
    }
}

/// Where requests go and the model they name: `target.url` with
/// `target.model`, or `[target.simulator]`, never both.
fn endpoint(cx: &Ctx<'_>, t: &RawTarget) -> Result<(Endpoint, String), PlanError> {
    match (&t.url, &t.simulator) {
        (Some(_), Some(s)) => Err(cx.invalid(
            "target.simulator",
            crate::quote::written(s),
            "give either `target.url` or `[target.simulator]`, not both",
        )),
        (None, None) => Err(cx.invalid(
            "target.url",
            MISSING,
            "give the server's base URL, or a [target.simulator] table for the built-in simulator",
        )),
        (Some(url), None) => {
            let ok = (url.starts_with("http://") || url.starts_with("https://"))
                && url.len() > "https://".len();
            if !ok {
                return Err(cx.invalid(
                    "target.url",
                    format!("{url:?}"),
                    "expected an http:// or https:// URL",
                ));
            }
            if let Some(reason) = crate::base_url::v1_problem(url) {
                return Err(cx.invalid("target.url", format!("{url:?}"), reason));
            }
            let Some(model) = t.model.clone() else {
                return Err(cx.invalid("target.model", MISSING, "required with `target.url`"));
            };
            Ok((Endpoint::Url(url.trim_end_matches('/').to_string()), model))
        }
        (None, Some(s)) => {
            let model = t
                .model
                .clone()
                .unwrap_or_else(|| SIMULATOR_MODEL.to_string());
            let mut spec = simulator(cx, s)?;
            spec.models = super::sim_models::extra_models(cx, s, &model)?;
            Ok((Endpoint::Simulator(Box::new(spec)), model))
        }
    }
}

/// `[target.simulator]` with its defaults (its extra models aside).
fn simulator(cx: &Ctx<'_>, s: &RawSimulator) -> Result<SimulatorSpec, PlanError> {
    let listen = cx.addr(
        "target.simulator.listen",
        s.listen.as_deref().unwrap_or("127.0.0.1:0"),
    )?;
    let (ttft, itl, output_tokens) = sim_timing(
        cx,
        "target.simulator",
        s.ttft.as_ref(),
        s.itl.as_ref(),
        s.output_tokens,
        s.engine.as_ref(),
    )?;
    Ok(SimulatorSpec {
        ttft,
        itl,
        output_tokens,
        listen,
        engine: s.engine.clone(),
        models: Vec::new(),
    })
}

/// A simulated model's TTFT, ITL and output tokens with their defaults (20 ms, 5 ms,
/// 64), checked with its engine; keys in errors start with `at`.
pub(super) fn sim_timing(
    cx: &Ctx<'_>,
    at: &str,
    ttft: Option<&HumanDuration>,
    itl: Option<&HumanDuration>,
    output_tokens: Option<u32>,
    engine: Option<&crate::SimEngine>,
) -> Result<(Duration, Duration, u32), PlanError> {
    if let Some(e) = engine {
        for (key, v) in [
            ("max_num_seqs", e.max_num_seqs),
            ("block_size", e.block_size),
            ("num_blocks", e.num_blocks),
        ] {
            if v == Some(0) {
                return Err(cx.invalid(format!("{at}.engine.{key}"), 0, "must be at least 1"));
            }
        }
    }
    let output_tokens = output_tokens.unwrap_or(64);
    if output_tokens == 0 {
        return Err(cx.invalid(format!("{at}.output_tokens"), 0, "must be at least 1"));
    }
    Ok((
        ttft.map_or(Duration::from_millis(20), HumanDuration::get),
        itl.map_or(Duration::from_millis(5), HumanDuration::get),
        output_tokens,
    ))
}

/// `target.headers`: valid names and values, and no credentials.
fn check_headers(cx: &Ctx<'_>, headers: &BTreeMap<String, String>) -> Result<(), PlanError> {
    for (name, value) in headers {
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || !name.chars().all(token) {
            return Err(cx.invalid(
                format!("target.headers.{name}"),
                format!("{name:?}"),
                "not a valid HTTP header name",
            ));
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(cx.invalid(
                format!("target.headers.{name}"),
                "(value)",
                "header values must not contain control characters",
            ));
        }
        if name.eq_ignore_ascii_case("authorization") {
            return Err(cx.invalid(format!("target.headers.{name}"), "(value)", "put credentials in the environment and name the variable in `target.api_key_env`, so they stay out of plans and results"));
        }
    }
    Ok(())
}

/// `target.ca_file`, read: extra trusted roots for an https target.
fn read_ca(cx: &Ctx<'_>, file: &Path) -> Result<Vec<u8>, PlanError> {
    let shown = format!("{:?}", file.display().to_string());
    let full = cx.resolve(file);
    let bytes = std::fs::read(&full).map_err(|e| {
        cx.invalid(
            "target.ca_file",
            &shown,
            format!("cannot read {}: {e}", full.display()),
        )
    })?;
    if !bytes
        .windows(27)
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(cx.invalid("target.ca_file", &shown, "no PEM certificate in the file"));
    }
    Ok(bytes)
}

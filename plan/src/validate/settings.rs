//! The small tables: `[request]`, `[run.tracing]`, `[cost]` and
//! `[server_metrics]` — each a handful of keys with defaults and bounds.

use super::{Ctx, MISSING};
use crate::duration::shown;
use crate::{
    Cost, Endpoint, PlanError, RawCost, RawPlan, RawServerMetrics, Records, RequestSpec,
    ServerMetrics, Target, Tracing,
};
use stampede_common::DEFAULT_TRACE_SAMPLE_RATIO;
use std::time::Duration;

impl RawPlan {
    pub(super) fn validate_request(&self, cx: &Ctx<'_>) -> Result<RequestSpec, PlanError> {
        let r = &self.request;
        let prompt_tokens = r.prompt_tokens.unwrap_or(128);
        if prompt_tokens == 0 || prompt_tokens > 1_000_000 {
            return Err(cx.invalid(
                "request.prompt_tokens",
                prompt_tokens,
                "must be between 1 and 1000000",
            ));
        }
        let max_tokens = r.max_tokens.unwrap_or(64);
        if max_tokens == 0 {
            return Err(cx.invalid("request.max_tokens", 0, "must be at least 1"));
        }
        let timeout = cx.positive(
            "request.timeout",
            r.timeout.as_ref(),
            Duration::from_secs(60),
        )?;
        let first_token_timeout = cx.positive(
            "request.first_token_timeout",
            r.first_token_timeout.as_ref(),
            timeout,
        )?;
        if first_token_timeout > timeout {
            return Err(cx.invalid(
                "request.first_token_timeout",
                shown(r.first_token_timeout.as_ref(), first_token_timeout),
                "must not exceed request.timeout",
            ));
        }
        let connect_timeout = cx.positive(
            "request.connect_timeout",
            r.connect_timeout.as_ref(),
            Duration::from_secs(10),
        )?;
        crate::workload::check_temperature("request.temperature", r.temperature)
            .map_err(|p| cx.problem(p))?;
        let extra_body_json =
            crate::workload::extra_body_json("request.extra_body", r.extra_body.as_ref())
                .map_err(|p| cx.problem(p))?;
        Ok(RequestSpec {
            prompt_tokens,
            max_tokens,
            stream: r.stream.unwrap_or(true),
            timeout,
            first_token_timeout,
            connect_timeout,
            ignore_eos: r.ignore_eos,
            temperature: r.temperature,
            extra_body_json,
        })
    }

    pub(super) fn validate_tracing(&self, cx: &Ctx<'_>) -> Result<Option<Tracing>, PlanError> {
        let Some(t) = &self.run.tracing else {
            return Ok(None);
        };
        let sample_ratio = t.sample_ratio.unwrap_or(DEFAULT_TRACE_SAMPLE_RATIO);
        if !(0.0..=1.0).contains(&sample_ratio) {
            return Err(cx.invalid(
                "run.tracing.sample_ratio",
                sample_ratio,
                "must be a fraction between 0 and 1 (e.g. 0.01 traces one request in a hundred)",
            ));
        }
        Ok(t.enabled
            .unwrap_or(false)
            .then_some(Tracing { sample_ratio }))
    }
}

/// Records one agent keeps per window when `[records]` does not say.
pub const DEFAULT_RECORDS_PER_WINDOW: u32 = 10_000;

impl RawPlan {
    pub(super) fn validate_records(&self, cx: &Ctx<'_>) -> Result<Option<Records>, PlanError> {
        let Some(r) = &self.records else {
            return Ok(None);
        };
        let sample = r.sample.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&sample) {
            return Err(cx.invalid(
                "records.sample",
                sample,
                "must be a fraction between 0 and 1 (e.g. 0.01 records one request in a hundred)",
            ));
        }
        let max_per_window = r.max_per_window.unwrap_or(DEFAULT_RECORDS_PER_WINDOW);
        if max_per_window == 0 {
            return Err(cx.invalid("records.max_per_window", 0, "must be at least 1"));
        }
        Ok((sample > 0.0).then_some(Records {
            sample,
            max_per_window,
        }))
    }
}

pub(super) fn validate_cost(cx: &Ctx<'_>, c: &RawCost) -> Result<Cost, PlanError> {
    let Some(gpu_hour_price) = c.gpu_hour_price else {
        return Err(cx.invalid(
            "cost.gpu_hour_price",
            MISSING,
            "the price of one GPU-hour, e.g. 2.5",
        ));
    };
    if !gpu_hour_price.is_finite() || gpu_hour_price <= 0.0 {
        return Err(cx.invalid(
            "cost.gpu_hour_price",
            gpu_hour_price,
            "must be a positive number",
        ));
    }
    let Some(gpus) = c.gpus else {
        return Err(cx.invalid(
            "cost.gpus",
            MISSING,
            "the number of GPUs serving the target",
        ));
    };
    if gpus == 0 {
        return Err(cx.invalid("cost.gpus", 0, "must be at least 1"));
    }
    let currency = c.currency.clone().unwrap_or_else(|| "USD".to_string());
    if currency.is_empty()
        || currency.len() > 8
        || !currency.chars().all(|ch| ch.is_ascii_alphanumeric())
    {
        return Err(cx.invalid(
            "cost.currency",
            format!("{currency:?}"),
            "1 to 8 letters or digits, e.g. \"USD\"",
        ));
    }
    Ok(Cost {
        gpu_hour_price,
        gpus,
        currency,
    })
}

pub(super) fn validate_server_metrics(
    cx: &Ctx<'_>,
    m: &RawServerMetrics,
    target: &Target,
) -> Result<ServerMetrics, PlanError> {
    let urls = m.urls.clone().unwrap_or_default();
    for (i, url) in urls.iter().enumerate() {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(cx.invalid(
                format!("server_metrics.urls[{i}]"),
                format!("{url:?}"),
                "expected an http:// or https:// URL of a /metrics page",
            ));
        }
    }
    if urls.is_empty() && !matches!(target.endpoint, Endpoint::Simulator(_)) {
        return Err(cx.invalid(
            "server_metrics.urls",
            MISSING,
            "list the serving pods' /metrics URLs (only the built-in simulator's is known)",
        ));
    }
    let interval = cx.positive(
        "server_metrics.interval",
        m.interval.as_ref(),
        Duration::from_secs(1),
    )?;
    if interval < Duration::from_millis(100) {
        return Err(cx.invalid(
            "server_metrics.interval",
            shown(m.interval.as_ref(), interval),
            "must be at least 100ms",
        ));
    }
    let timeout = cx.positive(
        "server_metrics.timeout",
        m.timeout.as_ref(),
        Duration::from_secs(2),
    )?;
    Ok(ServerMetrics {
        urls,
        interval,
        families: m
            .families
            .clone()
            .unwrap_or_else(|| vec!["vllm:".to_string()]),
        timeout,
    })
}

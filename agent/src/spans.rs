//! OpenTelemetry spans of a traced phase: the agent's phase span (a child of
//! the controller's, whose W3C context the assignment carries) and one span
//! per *sampled* request, with first- and last-token events and GenAI-style
//! attributes. A sampled request carries its span to the target in a
//! `traceparent` header, so the server's own spans join the same trace.
//!
//! Cost: an untraced phase has no [`PhaseTrace`] at all, so the request path
//! pays one `Option` check. In a traced phase, whether request `k` is sampled
//! is a hash of `k` against a threshold — no span, header or allocation for
//! the requests left out.

use crate::client::{Success, Target};
use crate::failure::FailureClass;
use crate::gate::Miss;
use opentelemetry::KeyValue;
use opentelemetry::propagation::{Injector, TextMapPropagator};
use opentelemetry::trace::Status;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use reqwest::header::{HeaderName, HeaderValue};
use stampede_common::proto;
use stampede_runtime::telemetry::SPAN_TARGET;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant as StdInstant, SystemTime};
use tokio::time::Instant;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Warned once per process: a phase asked for traces this agent cannot export.
static WARNED: AtomicBool = AtomicBool::new(false);

/// The tracing state of one traced phase on this agent.
#[derive(Debug)]
pub struct PhaseTrace {
    /// The agent's phase span.
    span: Span,
    /// Request `k` is sampled when `mix(k ^ salt) < threshold`.
    threshold: u64,
    /// Every request is sampled (ratio 1).
    all: bool,
    salt: u64,
    model: String,
    operation: &'static str,
}

/// A sampled request's span.
#[derive(Debug)]
pub struct RequestSpan {
    span: Span,
}

impl PhaseTrace {
    /// The phase's tracing state, when the assignment carries a trace context
    /// and this process exports spans; `None` (nothing traced) otherwise.
    pub fn from_assignment(a: &proto::PhaseAssignment) -> Option<Self> {
        if a.trace_context.is_empty() {
            return None;
        }
        if !stampede_runtime::telemetry::exporting() {
            if !WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "the run is traced but this agent exports no spans: set OTEL_EXPORTER_OTLP_ENDPOINT in its environment"
                );
            }
            return None;
        }
        let ratio = a.trace_sample_ratio;
        let ratio = if ratio.is_finite() {
            ratio.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let shard = a.shard.clone().unwrap_or_default();
        let span = tracing::info_span!(
            target: SPAN_TARGET,
            "agent_phase",
            // Signed: the span layer exports unsigned fields as text.
            stampede.phase.index = i64::from(a.phase_index),
            stampede.phase.name = %a.phase_name,
            stampede.shard.index = i64::from(shard.index),
            stampede.shard.count = i64::from(shard.count),
            stampede.trace.sample_ratio = ratio,
        );
        let parent = TraceContextPropagator::new().extract(&a.trace_context);
        if let Err(e) = span.set_parent(parent) {
            tracing::warn!("agent phase span: {e}");
        }
        let request = a.request.as_ref();
        let chat = request.is_none_or(|r| r.api == proto::Api::Chat as i32);
        Some(Self {
            span,
            // ratio · 2⁶⁴, saturating at the top (ratio 1 is `all`).
            threshold: (ratio * 18_446_744_073_709_551_616.0) as u64,
            all: ratio >= 1.0,
            salt: mix(u64::from(a.phase_index)),
            model: request.map(|r| r.model.clone()).unwrap_or_default(),
            operation: if chat { "chat" } else { "text_completion" },
        })
    }

    /// Whether request `k` of the phase is traced.
    pub fn sampled(&self, k: u64) -> bool {
        self.all || mix(k ^ self.salt) < self.threshold
    }

    /// Start request `k`'s span; returns it and `target` with the span's
    /// `traceparent` added to its headers.
    pub fn start(&self, k: u64, target: &Target) -> (RequestSpan, Target) {
        let span = tracing::info_span!(
            target: SPAN_TARGET,
            parent: &self.span,
            "request",
            otel.kind = "client",
            gen_ai.operation.name = self.operation,
            gen_ai.request.model = %self.model,
            stampede.request.index = i64::try_from(k).unwrap_or(i64::MAX),
            url.full = %target.url,
        );
        let mut traced = target.clone();
        TraceContextPropagator::new()
            .inject_context(&span.context(), &mut HeaderInjector(&mut traced.headers));
        (RequestSpan { span }, traced)
    }
}

impl RequestSpan {
    /// Record how the request ended: token events at the times they
    /// arrived, usage, HTTP status, and the failure class as `error.type`
    /// (or `stampede.expired` when it was never written).
    pub fn finish(self, result: &Result<Success, Miss>) {
        let span = &self.span;
        match result {
            Ok(s) => {
                span.add_event_with_timestamp(
                    "gen_ai.first_token",
                    wall_time(s.first_token),
                    Vec::new(),
                );
                span.add_event_with_timestamp(
                    "gen_ai.last_token",
                    wall_time(s.last_token),
                    Vec::new(),
                );
                if let Some(n) = s.prompt_tokens {
                    span.set_attribute("gen_ai.usage.input_tokens", saturating_i64(n));
                }
                span.set_attribute(
                    "gen_ai.usage.output_tokens",
                    saturating_i64(s.output_tokens),
                );
                span.set_attribute("stampede.usage_reported", s.usage_reported);
                span.set_attribute("http.response.status_code", i64::from(s.status));
                span.set_status(Status::Ok);
            }
            Err(Miss::Expired) => span.set_attribute("stampede.expired", true),
            Err(Miss::Failed(class)) => {
                let label = class.label();
                if let FailureClass::Http(code) = class {
                    span.set_attribute("http.response.status_code", i64::from(*code));
                }
                span.set_attribute("error.type", label.clone());
                span.add_event(
                    "exception",
                    vec![KeyValue::new("exception.type", label.clone())],
                );
                span.set_status(Status::error(label));
            }
        }
    }
}

/// The W3C trace context of `span` (`traceparent`, `tracestate`), as a
/// [`proto::PhaseAssignment`] carries it; empty when the span is not exported.
pub fn context_of(span: &Span) -> std::collections::HashMap<String, String> {
    let mut fields = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut fields);
    fields
}

/// Writes propagated fields as HTTP headers.
struct HeaderInjector<'a>(&'a mut reqwest::header::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The wall-clock time of a monotonic instant in the past.
fn wall_time(t: Instant) -> SystemTime {
    let ago = StdInstant::now().saturating_duration_since(t.into_std());
    SystemTime::now()
        .checked_sub(ago)
        .unwrap_or_else(SystemTime::now)
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// SplitMix64's finalizer: a cheap, well-spread hash of a request number.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(ratio: f64) -> PhaseTrace {
        PhaseTrace {
            span: Span::none(),
            threshold: (ratio * 18_446_744_073_709_551_616.0) as u64,
            all: ratio >= 1.0,
            salt: mix(3),
            model: String::new(),
            operation: "chat",
        }
    }

    #[test]
    fn sampling_keeps_about_the_ratio_and_is_deterministic() {
        for ratio in [0.0, 0.01, 0.25, 1.0] {
            let t = trace(ratio);
            let kept = (0..100_000).filter(|&k| t.sampled(k)).count() as f64 / 1e5;
            assert!((kept - ratio).abs() < 0.005, "ratio {ratio}: kept {kept}");
            let again = trace(ratio);
            assert!((0..1000).all(|k| t.sampled(k) == again.sampled(k)));
        }
    }

    #[test]
    fn an_untraced_assignment_has_no_trace_state() {
        let a = proto::PhaseAssignment {
            trace_sample_ratio: 1.0,
            ..Default::default()
        };
        assert!(PhaseTrace::from_assignment(&a).is_none());
    }
}

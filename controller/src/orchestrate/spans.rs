//! The controller's OpenTelemetry spans of a traced run: run → phase → step
//! (each step of a stress phase) → window. The W3C context of the phase (or
//! step) span travels to the agents in their assignments, so their phase and
//! request spans join the same trace.
//!
//! Run, phase and step spans are `tracing` spans, exported through the
//! `tracing-opentelemetry` layer. Windows are built with the OpenTelemetry
//! API instead, because their times are known only afterwards: each covers
//! its reporting window exactly (phase start + i·window, one window long)
//! and carries the merged counters of that window. With tracing off every
//! function here returns a disabled span and no window is built.

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, Tracer};
use stampede_common::proto;
use stampede_plan::{Phase, Plan};
use stampede_runtime::telemetry::SPAN_TARGET;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The span of the whole run.
pub fn run(plan: &Plan, run_id: &str) -> Span {
    let Some(t) = plan.tracing else {
        return Span::none();
    };
    tracing::info_span!(
        target: SPAN_TARGET,
        "run",
        stampede.run.id = run_id,
        stampede.run.name = %plan.name,
        // Signed: the span layer exports unsigned fields as text.
        stampede.run.phases = i64::try_from(plan.phases.len()).unwrap_or(i64::MAX),
        stampede.trace.sample_ratio = t.sample_ratio,
        gen_ai.request.model = %plan.target.model,
    )
}

/// The span of phase `index` (in repeat `repeat`), a child of the current (run) span.
pub fn phase(plan: &Plan, index: usize, repeat: u32) -> Span {
    if plan.tracing.is_none() {
        return Span::none();
    }
    let p: &Phase = &plan.phases[index];
    tracing::info_span!(
        target: SPAN_TARGET,
        "phase",
        stampede.phase.index = i64::try_from(index).unwrap_or(i64::MAX),
        stampede.phase.name = %p.name,
        stampede.phase.kind = p.kind.name(),
        stampede.repeat = i64::from(repeat),
    )
}

/// The span of step `step` of a stress phase at `rate`, a child of the current (phase) span.
pub fn step(plan: &Plan, step: u32, rate: f64) -> Span {
    if plan.tracing.is_none() {
        return Span::none();
    }
    tracing::info_span!(
        target: SPAN_TARGET,
        "step",
        stampede.step.index = i64::from(step),
        stampede.step.rate = rate,
    )
}

/// The trace context an assignment carries: the current span's, when the run is traced.
pub fn assignment_context(plan: &Plan) -> std::collections::HashMap<String, String> {
    if plan.tracing.is_none() {
        return Default::default();
    }
    stampede_agent::spans::context_of(&Span::current())
}

/// One window's merged counters so far.
#[derive(Debug, Default)]
struct Tally {
    reports: u32,
    counters: proto::Counters,
}

/// Window spans of one assignment, each exported once every expected agent
/// has reported it (the rest when this is dropped, at the assignment's end).
#[derive(Debug)]
pub struct Windows {
    /// The assignment span's context; `None` when the run is not traced.
    parent: Option<opentelemetry::Context>,
    start: SystemTime,
    window: Duration,
    open: BTreeMap<u32, Tally>,
}

impl Windows {
    /// Windows of an assignment starting at `start_unix_nanos` (controller
    /// clock), children of the current span when the run is traced.
    pub fn new(plan: &Plan, start_unix_nanos: i64, window: Duration) -> Self {
        Self {
            parent: plan.tracing.map(|_| Span::current().context()),
            start: UNIX_EPOCH + Duration::from_nanos(u64::try_from(start_unix_nanos).unwrap_or(0)),
            window,
            open: BTreeMap::new(),
        }
    }

    /// A report of window `index` was merged; `expected` agents report it.
    pub fn merged(&mut self, index: u32, counters: &proto::Counters, expected: u32) {
        if self.parent.is_none() {
            return;
        }
        let t = self.open.entry(index).or_default();
        t.reports += 1;
        let c = &mut t.counters;
        c.sent += counters.sent;
        c.ok += counters.ok;
        c.failed += counters.failed;
        c.skipped += counters.skipped;
        c.output_tokens += counters.output_tokens;
        if t.reports >= expected
            && let Some(t) = self.open.remove(&index)
        {
            self.export(index, &t);
        }
    }

    fn export(&self, index: u32, t: &Tally) {
        let Some(parent) = &self.parent else {
            return;
        };
        let from = self.start + self.window * index;
        let tracer = opentelemetry::global::tracer(stampede_runtime::telemetry::TRACER);
        let c = &t.counters;
        let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let mut span = tracer
            .span_builder("window")
            .with_start_time(from)
            .with_attributes([
                KeyValue::new("stampede.window.index", i64::from(index)),
                KeyValue::new("stampede.window.reports", i64::from(t.reports)),
                KeyValue::new("stampede.requests.sent", to_i64(c.sent)),
                KeyValue::new("stampede.requests.ok", to_i64(c.ok)),
                KeyValue::new("stampede.requests.failed", to_i64(c.failed)),
                KeyValue::new("stampede.requests.skipped", to_i64(c.skipped)),
                KeyValue::new("gen_ai.usage.output_tokens", to_i64(c.output_tokens)),
            ])
            .start_with_context(&tracer, parent);
        span.end_with_timestamp(from + self.window);
    }
}

impl Drop for Windows {
    fn drop(&mut self) {
        for (index, t) in std::mem::take(&mut self.open) {
            self.export(index, &t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_untraced_run_keeps_no_window_state_and_no_context() {
        let text = "[target.simulator]\n[[phase]]\nkind = \"baseline\"\nduration = \"1s\"\n";
        let path = std::path::Path::new("p.toml");
        let plan = stampede_plan::parse(text, path)
            .unwrap()
            .validate(path)
            .unwrap();
        let mut w = Windows::new(&plan, 0, Duration::from_secs(1));
        w.merged(0, &proto::Counters::default(), 2);
        assert!(w.open.is_empty());
        assert!(assignment_context(&plan).is_empty());
        assert!(run(&plan, "r").is_disabled());
    }
}

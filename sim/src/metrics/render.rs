//! The `/metrics` page: every family once (HELP and TYPE), then each model's series.
//!
//! Prometheus text format allows one HELP/TYPE per family, so a page serving several models
//! is written family by family, each listing every model's series with its `model_name` and
//! `engine` labels. `docs/simulator.md` lists every family and what drives it.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Histogram, Metrics};
use crate::stats::SimStats;

/// One model as the page shows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope<'a> {
    /// Its labels, e.g. `model_name="m",engine="0"` (values escaped).
    pub label: &'a str,
    /// Its request and token counters.
    pub counts: &'a SimStats,
    /// Its gauges and histograms.
    pub metrics: &'a Metrics,
}

/// `value` escaped for a Prometheus label value.
pub(crate) fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A series value read from a model.
type Value<'f> = &'f dyn Fn(&Scope) -> u64;

/// A histogram family: name, help, and the model's histogram (`None`: it has none).
type HistogramFamily = (
    &'static str,
    &'static str,
    fn(&Metrics) -> Option<&Histogram>,
);

/// The page being written.
struct Page<'a> {
    out: String,
    models: &'a [Scope<'a>],
}

impl Page<'_> {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// A gauge or counter with one series per model.
    fn scalar(&mut self, name: &str, kind: &str, help: &str, value: impl Fn(&Scope) -> String) {
        self.header(name, kind, help);
        for m in self.models {
            let _ = writeln!(self.out, "{name}{{{}}} {}", m.label, value(m));
        }
    }

    /// A family with one series per model and value of label `key`, e.g. `source`.
    fn labelled(
        &mut self,
        (name, kind, help): (&str, &str, &str),
        key: &str,
        values: &[(&str, Value<'_>)],
    ) {
        self.header(name, kind, help);
        for m in self.models {
            for (v, f) in values {
                let _ = writeln!(self.out, "{name}{{{},{key}=\"{v}\"}} {}", m.label, f(m));
            }
        }
    }

    /// A histogram family; models without it (`None`) have no series, and a family no model
    /// has is left out.
    fn histogram(&mut self, name: &str, help: &str, h: impl Fn(&Metrics) -> Option<&Histogram>) {
        if !self.models.iter().any(|m| h(m.metrics).is_some()) {
            return;
        }
        self.header(name, "histogram", help);
        for m in self.models {
            if let Some(h) = h(m.metrics) {
                h.render(&mut self.out, name, m.label);
            }
        }
    }
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// The whole `/metrics` page (Prometheus text format 0.0.4) of `models`.
pub(crate) fn render(models: &[Scope<'_>]) -> String {
    let mut page = Page {
        out: String::with_capacity(32 * 1024 * models.len()),
        models,
    };
    scheduler(&mut page);
    counters(&mut page);
    histograms(&mut page);
    page.out
}

/// Scheduler and KV-cache state.
fn scheduler(p: &mut Page<'_>) {
    let n = |a: &AtomicU64| load(a).to_string();
    p.scalar(
        "vllm:num_requests_running",
        "gauge",
        "Number of requests in model execution batches.",
        |m| n(&m.metrics.running),
    );
    p.scalar(
        "vllm:num_requests_waiting",
        "gauge",
        "Number of requests waiting to be processed.",
        |m| n(&m.metrics.waiting),
    );
    p.labelled(
        (
            "vllm:engine_sleep_state",
            "gauge",
            "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is \
             awake; weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.",
        ),
        "sleep_state",
        // The simulator never sleeps.
        &[
            ("awake", &|_| 1),
            ("weights_offloaded", &|_| 0),
            ("discard_all", &|_| 0),
        ],
    );
    p.scalar(
        "vllm:kv_cache_usage_perc",
        "gauge",
        "KV-cache usage. 1 means 100 percent usage.",
        |m| format!("{:?}", m.metrics.kv_usage()),
    );
    p.scalar(
        "vllm:prefix_cache_queries_total",
        "counter",
        "Prefix cache queries, in terms of number of queried tokens.",
        |m| n(&m.metrics.prefix_queries),
    );
    p.scalar(
        "vllm:prefix_cache_hits_total",
        "counter",
        "Prefix cache hits, in terms of number of cached tokens.",
        |m| n(&m.metrics.prefix_hits),
    );
}

/// Token and request counters.
fn counters(p: &mut Page<'_>) {
    p.scalar(
        "vllm:num_preemptions_total",
        "counter",
        "Cumulative number of preemption from the engine.",
        // A request holds its whole sequence's KV blocks from admission: never preempted.
        |_| "0".to_owned(),
    );
    p.scalar(
        "vllm:prompt_tokens_total",
        "counter",
        "Number of prefill tokens processed.",
        |m| m.counts.prompt_tokens().to_string(),
    );
    p.labelled(
        (
            "vllm:prompt_tokens_by_source_total",
            "counter",
            "Number of prompt tokens by source.",
        ),
        "source",
        &[
            ("local_compute", &|m| load(&m.metrics.prompt_computed)),
            ("local_cache_hit", &|m| load(&m.metrics.prefix_hits)),
            // No KV connector: nothing comes from another instance.
            ("external_kv_transfer", &|_| 0),
        ],
    );
    p.scalar(
        "vllm:prompt_tokens_cached_total",
        "counter",
        "Number of cached prompt tokens (local + external).",
        |m| load(&m.metrics.prefix_hits).to_string(),
    );
    p.scalar(
        "vllm:prompt_tokens_recomputed_total",
        "counter",
        "Number of cached tokens recomputed for forward pass.",
        // Hits stop one token short of the prompt, so no cached token is recomputed.
        |_| "0".to_owned(),
    );
    p.scalar(
        "vllm:generation_tokens_total",
        "counter",
        "Number of generation tokens processed.",
        |m| m.counts.output_tokens().to_string(),
    );
    p.labelled(
        (
            "vllm:request_success_total",
            "counter",
            "Count of successfully processed requests.",
        ),
        "finished_reason",
        // Every simulated response stops on its length.
        &[("length", &|m| m.counts.requests_served())],
    );
}

/// Token-count and latency histograms.
fn histograms(p: &mut Page<'_>) {
    let families: [HistogramFamily; 15] = [
        (
            "vllm:request_prompt_tokens",
            "Number of prefill tokens processed.",
            |m| Some(&m.prompt_tokens),
        ),
        (
            "vllm:request_generation_tokens",
            "Number of generation tokens processed.",
            |m| Some(&m.generation_tokens),
        ),
        (
            "vllm:iteration_tokens_total",
            "Histogram of number of tokens per engine_step.",
            |m| m.iteration_tokens.as_ref(),
        ),
        (
            "vllm:request_max_num_generation_tokens",
            "Histogram of maximum number of requested generation tokens.",
            |m| Some(&m.max_generation_tokens),
        ),
        (
            "vllm:request_params_n",
            "Histogram of the n request parameter.",
            |m| Some(&m.params_n),
        ),
        (
            "vllm:request_params_max_tokens",
            "Histogram of the max_tokens request parameter.",
            |m| Some(&m.params_max_tokens),
        ),
        (
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            |m| Some(&m.ttft),
        ),
        (
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            |m| Some(&m.itl),
        ),
        (
            "vllm:request_time_per_output_token_seconds",
            "Histogram of time_per_output_token_seconds per request.",
            |m| Some(&m.time_per_output_token),
        ),
        (
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            |m| Some(&m.e2e),
        ),
        (
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            |m| Some(&m.queue),
        ),
        (
            "vllm:request_inference_time_seconds",
            "Histogram of time spent in RUNNING phase for request.",
            |m| Some(&m.inference),
        ),
        (
            "vllm:request_prefill_time_seconds",
            "Histogram of time spent in PREFILL phase for request.",
            |m| Some(&m.prefill),
        ),
        (
            "vllm:request_decode_time_seconds",
            "Histogram of time spent in DECODE phase for request.",
            |m| Some(&m.decode),
        ),
        (
            "vllm:request_prefill_kv_computed_tokens",
            "Histogram of new KV tokens computed during prefill (excluding cached tokens).",
            |m| Some(&m.prefill_kv_computed),
        ),
    ];
    for (name, help, h) in families {
        p.histogram(name, help, h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

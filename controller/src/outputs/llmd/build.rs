//! A phase's llm-d report, built through the typed [model](super::model) from
//! the histograms merged exactly across agents.
//!
//! llm-d-benchmark writes this report per load pod with fixed percentiles
//! that later get averaged; ours is one report per phase, and one per
//! breakdown of a phase (workload entry, model). Only the parts
//! stampede measures are filled in: `run`, `scenario.load`,
//! `results.request_performance`. Latencies are in seconds (`s`,
//! `s/token`), as in llm-d's own reports.

use super::model::{
    Aggregate, Distribution, Latency, Load, LoadMetadata, LoadSource, LoadStandardized, Native,
    Number, Report, RequestPerformance, Requests, Results, Run, RunTime, Scenario, SequenceLength,
    Statistics, Throughput, Units, VERSION,
};
use crate::analysis::breakdown;
use crate::analysis::merge::Aggregate as MergedAggregate;
use crate::model::{Breakdown, PhaseSummary, RunSummary, TargetInfo};
use crate::results::{PhaseData, RunData};
use hdrhistogram::Histogram;
use serde::Serialize;
use stampede_common::metric::{Metric, Unit};
use stampede_common::quantile::quantile_or_zero;
use stampede_plan::{Phase, PhaseKind, Plan};
use std::time::{Duration, SystemTime};

/// `Statistics` of a histogram: values divided by `divisor`, in `units`.
/// `None` when the histogram is empty.
fn statistics(h: &Histogram<u64>, units: Units, divisor: f64) -> Option<Statistics> {
    if h.is_empty() {
        return None;
    }
    let q = |q: f64| Some(quantile_or_zero(h, q) / divisor);
    Some(Statistics {
        units,
        mean: h.mean() / divisor,
        mode: None,
        stddev: Some(h.stdev() / divisor),
        min: Some(h.min() as f64 / divisor),
        p0p1: q(0.001),
        p1: q(0.01),
        p5: q(0.05),
        p10: q(0.10),
        p25: q(0.25),
        p50: q(0.50),
        p75: q(0.75),
        p90: q(0.90),
        p95: q(0.95),
        p99: q(0.99),
        p99p9: q(0.999),
        max: Some(h.max() as f64 / divisor),
    })
}

/// A measured length distribution: `fixed` when every request had the same
/// length, otherwise `other` with the mean, standard deviation and range;
/// `None` when nothing was measured.
fn sequence_length(h: &Histogram<u64>) -> Option<SequenceLength> {
    if h.is_empty() {
        return None;
    }
    Some(if h.min() == h.max() {
        SequenceLength {
            distribution: Distribution::Fixed,
            value: Number::Integer(h.min()),
            std_dev: None,
            min: None,
            max: None,
        }
    } else {
        SequenceLength {
            distribution: Distribution::Other,
            value: Number::Real(h.mean()),
            std_dev: Some(h.stdev()),
            min: Some(h.min()),
            max: Some(h.max()),
        }
    })
}

/// Where a phase's prompts came from: the format's `source` (random: words
/// drawn by stampede, sampled: dataset records, unknown: a mix of both) and
/// stampede's own name for it.
fn prompt_source(plan: &Plan, phase: &Phase) -> (LoadSource, &'static str) {
    if matches!(phase.kind, PhaseKind::Replay { .. }) {
        // A trace gives lengths; the prompts are synthetic.
        return (LoadSource::Random, "replay");
    }
    let mix = plan.mix_for(phase);
    match mix.iter().filter(|e| e.dataset.is_some()).count() {
        0 => (LoadSource::Random, "synthetic"),
        n if n == mix.len() => (LoadSource::Sampled, "dataset"),
        _ => (LoadSource::Unknown, "mix"),
    }
}

fn rfc3339(nanos: i64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

/// Seconds → ISO-8601 duration (`PT12.345S`).
fn iso_duration(seconds: f64) -> String {
    format!("PT{seconds:.3}S")
}

/// The report of phase `index` of `data`.
pub fn phase_report(data: &RunData, index: usize) -> Result<Report, serde_json::Error> {
    let (s, p) = (&data.summary.phases[index], &data.phases[index]);
    report_of(data, index, (s, &p.acc.total), None)
}

/// The report of breakdown `b` of phase `index` of `data`, `agg` being the
/// breakdown's merged data.
pub fn breakdown_report(
    data: &RunData,
    index: usize,
    b: &Breakdown,
    agg: &MergedAggregate,
) -> Result<Report, serde_json::Error> {
    let s = breakdown::as_phase(&data.summary.phases[index], b);
    report_of(data, index, (&s, agg), Some(&b.label()))
}

/// A report of phase `index` of `data` whose figures are `s`'s and whose
/// distributions are `agg`'s: the whole phase, or one `label`led breakdown.
fn report_of(
    data: &RunData,
    index: usize,
    (s, agg): (&PhaseSummary, &MergedAggregate),
    label: Option<&str>,
) -> Result<Report, serde_json::Error> {
    let (run, p) = (&data.summary, &data.phases[index]);
    let mut run_info = run_part(run, s, p, index);
    if let Some(label) = label {
        run_info.uid = format!("{}/{label}", run_info.uid);
        run_info.description = run_info.description.map(|d| format!("{d}, {label}"));
        if let Some(k) = run_info.keywords.as_mut() {
            k.push(label.to_string());
        }
    }
    Ok(Report {
        version: VERSION.into(),
        run: run_info,
        scenario: Some(Scenario {
            stack: None,
            load: Some(load_part(&data.plan, run, (s, agg), p, index)?),
        }),
        results: results_part(s, agg),
    })
}

fn run_part(run: &RunSummary, s: &PhaseSummary, p: &PhaseData, index: usize) -> Run {
    let end_nanos = p
        .start_unix_nanos
        .saturating_add((s.finished_s * 1e9) as i64);
    let incomplete = if s.complete {
        ""
    } else {
        " — incomplete: the controller stopped mid-phase"
    };
    Run {
        uid: format!("{}/{}", run.run_id, index),
        eid: Some(run.run_id.clone()),
        cid: None,
        pid: None,
        time: Some(RunTime {
            start: Some(rfc3339(p.start_unix_nanos)),
            end: Some(rfc3339(end_nanos)),
            duration: Some(iso_duration(s.finished_s)),
        }),
        user: None,
        description: Some(format!(
            "stampede phase {:?} ({}) of run {}{incomplete}",
            s.name, s.kind, run.run_id
        )),
        keywords: Some(vec![
            "stampede".into(),
            s.kind.clone(),
            format!("repeat-{}", s.repeat + 1),
        ]),
    }
}

fn load_part(
    plan: &Plan,
    run: &RunSummary,
    (s, agg): (&PhaseSummary, &MergedAggregate),
    p: &PhaseData,
    index: usize,
) -> Result<Load, serde_json::Error> {
    let hist = |m: Metric| agg.hist(m);
    let (source, origin) = prompt_source(plan, &p.phase);
    // Without measured lengths (no request succeeded, or the server reported
    // no usage) the format still needs an input length: `other`, 0.
    let unmeasured = SequenceLength {
        distribution: Distribution::Other,
        value: Number::Integer(0),
        std_dev: None,
        min: None,
        max: None,
    };
    Ok(Load {
        metadata: LoadMetadata {
            schema_version: "0.0.1".into(),
            cfg_id: None,
            description: Some(format!(
                "stampede {} phase, {} agent(s)",
                s.kind,
                s.agents.len()
            )),
        },
        standardized: LoadStandardized {
            tool: "stampede".into(),
            tool_version: run.stampede_version.clone(),
            parallelism: s.agents.len().max(1) as u64,
            source,
            stage: index as u64,
            input_seq_len: sequence_length(hist(Metric::InputTokens)).unwrap_or(unmeasured),
            output_seq_len: sequence_length(hist(Metric::OutputTokens)),
            prefix: None,
            multi_turn: None,
            rate_qps: s.offered_rate,
            concurrency: s.users.map(|u| Number::Integer(u.into())),
        },
        native: Native {
            args: None,
            envars: None,
            config: Some(native_config(plan, run, s, p, origin)?),
        },
    })
}

/// stampede's own description of a phase's load (`scenario.load.native.config`).
#[derive(Serialize)]
struct NativeConfig<'a> {
    target: &'a TargetInfo,
    phase: NativePhase<'a>,
    window_s: f64,
    prompts: &'static str,
    workload: Vec<NativeWorkload<'a>>,
}

#[derive(Serialize)]
struct NativePhase<'a> {
    name: &'a str,
    kind: &'a str,
    offered_rate: Option<f64>,
    users: Option<u32>,
    planned_duration_s: f64,
}

#[derive(Serialize)]
struct NativeWorkload<'a> {
    name: &'a str,
    weight: f64,
    prompts: &'static str,
}

fn native_config(
    plan: &Plan,
    run: &RunSummary,
    s: &PhaseSummary,
    p: &PhaseData,
    origin: &'static str,
) -> Result<serde_json::Value, serde_json::Error> {
    let mix = plan.mix_for(&p.phase);
    serde_json::to_value(NativeConfig {
        target: &run.target,
        phase: NativePhase {
            name: &s.name,
            kind: &s.kind,
            offered_rate: s.offered_rate,
            users: s.users,
            planned_duration_s: s.planned_duration_s,
        },
        window_s: p.window.as_secs_f64(),
        prompts: origin,
        workload: mix
            .iter()
            .map(|e| NativeWorkload {
                name: &e.name,
                weight: e.weight,
                prompts: if e.dataset.is_some() {
                    "dataset"
                } else {
                    "synthetic"
                },
            })
            .collect(),
    })
}

fn results_part(s: &PhaseSummary, agg: &MergedAggregate) -> Results {
    let stats = |m: Metric| {
        let (units, divisor) = match (m, m.unit()) {
            (Metric::Itl | Metric::Tpot | Metric::Ntpot, _) => (Units::SecondsPerToken, 1e6),
            (_, Unit::Micros) => (Units::Seconds, 1e6),
            (_, Unit::Tokens) => (Units::Count, 1.0),
        };
        statistics(agg.hist(m), units, divisor)
    };
    let per_second = |n: f64| {
        if s.finished_s > 0.0 {
            n / s.finished_s
        } else {
            0.0
        }
    };
    let tokens = |n: f64| Some(Statistics::mean_only(Units::TokensPerSecond, n));
    let aggregate = Aggregate {
        requests: Some(Requests {
            total: s.requests.sent,
            failures: Some(s.requests.failed),
            incomplete: Some(s.requests.lost),
            input_length: stats(Metric::InputTokens),
            output_length: stats(Metric::OutputTokens),
        }),
        latency: Some(Latency {
            time_to_first_token: stats(Metric::Ttft),
            normalized_time_per_output_token: stats(Metric::Ntpot),
            time_per_output_token: stats(Metric::Tpot),
            inter_token_latency: stats(Metric::Itl),
            request_latency: stats(Metric::E2e),
        }),
        throughput: Some(Throughput {
            input_token_rate: tokens(per_second(s.input_tokens as f64)),
            output_token_rate: tokens(s.output_token_throughput),
            total_token_rate: tokens(per_second((s.input_tokens + s.output_tokens) as f64)),
            request_rate: Some(Statistics::mean_only(
                Units::QueriesPerSecond,
                s.request_throughput,
            )),
        }),
    };
    Results {
        request_performance: Some(RequestPerformance {
            aggregate: Some(aggregate),
            time_series: None,
        }),
        observability: None,
        profiling: None,
        component_health: None,
    }
}

//! Classic buckets against the raw values, breakdowns against their
//! entries, and the page as a Prometheus parser reads it.

use super::*;
use crate::orchestrate::live::page::{View, render};
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng, rngs::SmallRng};
use stampede_common::histogram::new_histogram;

/// `h` as a window report carries it and the merge decodes it.
fn sparse(h: &Histogram<u64>) -> stampede_common::histogram::Buckets {
    use stampede_common::histogram::{decode_buckets, encode};
    decode_buckets(&encode(h).unwrap()).unwrap()
}

/// A decoded window whose TTFTs are `ttft_ms`, with `ok` and failures.
fn window(ttft_ms: &[u64], failed: &[(&str, u64)]) -> DecodedWindow {
    let mut h = new_histogram();
    for ms in ttft_ms {
        h.record(ms * 1_000).unwrap();
    }
    let mut counters = Counters {
        ok: ttft_ms.len() as u64,
        failed: failed.iter().map(|f| f.1).sum(),
        ..Counters::default()
    };
    counters.sent = counters.ok + counters.failed;
    DecodedWindow {
        hists: vec![(Metric::Ttft, sparse(&h))],
        counters,
        errors: failed.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
        cpu_micros: 0,
        parts: Vec::new(),
    }
}

/// The view of one window.
fn view(d: &DecodedWindow, labels: &EntryLabels) -> Snapshot {
    let mut r = Running::default();
    r.add(d);
    r.snapshot(labels)
}

#[test]
fn buckets_count_the_raw_values_at_each_bound() {
    let mut rng = SmallRng::seed_from_u64(7);
    let b = bounds(Metric::Ttft);
    let mut raw = Vec::new();
    while raw.len() < 20_000 {
        let v: u64 = rng.random_range(100..3_000_000);
        // Values within the histogram's precision of a bound could land on
        // either side; everything else must land exactly.
        if b.iter()
            .any(|x| ((x * 1e6) - v as f64).abs() <= (x * 1e6) * 0.002)
        {
            continue;
        }
        raw.push(v);
    }
    // Cut in two windows, as two agents' reports would be.
    let (mut first, mut second) = (new_histogram(), new_histogram());
    for (i, v) in raw.iter().enumerate() {
        [&mut first, &mut second][i % 2].record(*v).unwrap();
    }
    let mut counts = Counts::default();
    counts.add_buckets(&sparse(&first));
    counts.add_buckets(&sparse(&second));
    let mut got = Classic::default();
    got.add(&counts, b);
    assert_eq!(got.count, raw.len() as u64);
    assert_eq!(got.counts.len(), b.len() + 1);
    for (i, bound) in b.iter().enumerate() {
        let below = raw.iter().filter(|v| **v as f64 <= bound * 1e6).count() as u64;
        let cumulative: u64 = got.counts[..=i].iter().sum();
        assert_eq!(cumulative, below, "le {bound}");
    }
    let sum: f64 = raw.iter().map(|v| *v as f64 * 1e-6).sum();
    assert!((got.sum - sum).abs() / sum < 1e-3, "{} vs {sum}", got.sum);
}

#[test]
fn every_bound_list_ascends_and_holds_vllms_own() {
    // vLLM's TTFT and ITL boundaries (the simulator exposes the same).
    let vllm_ttft = [
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
    ];
    let vllm_itl = [
        0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
    ];
    for m in METRICS {
        assert!(bounds(m).windows(2).all(|w| w[0] < w[1]), "{m:?}");
    }
    assert!(vllm_ttft.iter().all(|b| bounds(Metric::Ttft).contains(b)));
    assert!(vllm_itl.iter().all(|b| bounds(Metric::Itl).contains(b)));
}

#[test]
fn model_breakdowns_are_their_entries_added_bucket_for_bucket() {
    let mut total = window(&[20, 21, 80, 81, 82, 85], &[("http_5xx:503", 1)]);
    total.parts = vec![
        (0, window(&[20, 21], &[])),
        (1, window(&[80, 81], &[("http_5xx:503", 1)])),
        (2, window(&[82, 85], &[])),
    ];
    let labels = EntryLabels(vec![
        ("short".into(), "fast".into()),
        ("long".into(), "slow".into()),
        ("longer".into(), "slow".into()),
    ]);
    let s = view(&total, &labels);
    let key = |by, n: &str| (by, n.to_string());
    let slow = &s.breakdowns[&key(BreakdownBy::Model, "slow")];
    let mut sum = s.breakdowns[&key(BreakdownBy::Workload, "long")].clone();
    sum.add(&s.breakdowns[&key(BreakdownBy::Workload, "longer")]);
    assert_eq!(slow, &sum);
    assert_eq!(slow.counters.ok, 4);
    assert_eq!(slow.failed["http_5xx:503"], 1);
    assert_eq!(s.breakdowns.len(), 5, "3 entries and 2 models");
    // Only TTFT was recorded: no other histogram exists.
    assert_eq!(s.total.hists.keys().collect::<Vec<_>>(), vec![&"ttft"]);
    // One model: entries only.
    let one = EntryLabels(vec![("a".into(), "m".into()), ("b".into(), "m".into())]);
    total.parts.pop();
    let s = view(&total, &one);
    assert!(s.breakdowns.keys().all(|k| k.0 == BreakdownBy::Workload));
}

/// The page parsed the way the controller parses a server's.
fn parsed(page: &str) -> Vec<nom_openmetrics::Family<'_>> {
    let (rest, families) = nom_openmetrics::parser::prometheus(page).expect("valid text");
    assert!(rest.trim().is_empty(), "unparsed: {rest}");
    families
}

#[test]
fn the_page_shows_only_what_exists_and_parses_as_prometheus_text() {
    let mut total = window(&[20, 30], &[]);
    total.counters.skipped = 3;
    let plain = view(&total, &EntryLabels::default());
    let page = render(View {
        run: "r-1".into(),
        agents: 2,
        windows: 4,
        running: Some((0, "steady \"x\"".into(), "constant".into())),
        phases: vec![("steady \"x\"".into(), plain)],
    });
    parsed(&page);
    let l = r#"run="r-1",phase="steady \"x\"""#;
    for line in [
        format!(r#"stampede_controller_ttft_seconds_bucket{{{l},le="0.02"}} 1"#),
        format!(r#"stampede_controller_ttft_seconds_bucket{{{l},le="0.03"}} 2"#),
        format!(r#"stampede_controller_ttft_seconds_bucket{{{l},le="+Inf"}} 2"#),
        format!(r#"stampede_controller_ttft_seconds_count{{{l}}} 2"#),
        format!(r#"stampede_controller_requests_offered_total{{{l}}} 5"#),
        format!(r#"stampede_controller_requests_ok_total{{{l}}} 2"#),
        "stampede_controller_agents_connected 2".to_string(),
        "stampede_controller_windows_merged_total 4".to_string(),
    ] {
        assert!(page.contains(&line), "{line} not in\n{page}");
    }
    // No ITL was measured, no request failed, no breakdown exists.
    for absent in [
        "stampede_controller_itl_seconds",
        "stampede_controller_requests_failed",
        "breakdown",
    ] {
        assert!(!page.contains(absent), "{absent} in\n{page}");
    }
}

#[test]
fn a_phase_run_again_continues_its_series() {
    let live = crate::orchestrate::live::Live::default();
    live.run("r");
    live.phase(Some((0, "stress", "stress")));
    let step = view(
        &window(&[10, 20], &[("timeout", 1)]),
        &EntryLabels::default(),
    );
    live.finished(0, step.clone());
    live.phase(Some((0, "stress", "stress")));
    live.publish(0, step);
    let page = live.render();
    assert!(
        page.contains(r#"stampede_controller_ttft_seconds_count{run="r",phase="stress"} 4"#),
        "{page}"
    );
    assert!(
        page.contains(
            r#"stampede_controller_requests_failed_total{run="r",phase="stress",class="timeout"} 2"#
        ),
        "{page}"
    );
    live.run("next");
    assert!(!live.render().contains("stress"));
}

//! The gate's rule: threshold and noise, phases matched by name, missing
//! phases and figures.

use super::threshold::parse;
use super::*;
use crate::model::tests::sample_run;

/// A run whose phase `name` ran once per value, with that TTFT p99 (ms) and
/// 20 ok req/s.
fn run(phases: &[(&str, &[f64])]) -> RunSummary {
    let mut run = sample_run();
    let template = run.phases[0].clone();
    run.phases.clear();
    for (name, values) in phases {
        for (i, v) in values.iter().enumerate() {
            let mut p = template.clone();
            p.name = name.to_string();
            p.repeat = i as u32;
            p.metrics.get_mut("ttft").unwrap().p99 = *v;
            p.request_throughput = 20.0;
            run.phases.push(p);
        }
    }
    run
}

fn gate(a: &RunSummary, b: &RunSummary, specs: &[&str]) -> GateReport {
    let thresholds: Vec<Threshold> = specs.iter().map(|s| parse(s).unwrap()).collect();
    let named = |label, summary| Named { label, summary };
    evaluate(named("a", a), named("b", b), &thresholds)
}

fn outcomes(r: &GateReport) -> Vec<(String, String, Outcome)> {
    r.checks
        .iter()
        .map(|c| (c.phase.clone(), c.threshold.to_string(), c.outcome))
        .collect()
}

#[test]
fn without_repeats_the_threshold_alone_decides() {
    let a = run(&[("steady", &[100.0])]);
    let r = gate(&a, &run(&[("steady", &[111.0])]), &["ttft.p99>+10%"]);
    assert_eq!(r.checks[0].outcome, Outcome::Regressed);
    assert_eq!(r.checks[0].noise, None);
    assert!(r.noise_unknown());
    assert!((r.checks[0].change.unwrap() - 11.0).abs() < 1e-9);
    // At the threshold, or better, passes.
    let r = gate(&a, &run(&[("steady", &[110.0])]), &["ttft.p99>+10%"]);
    assert_eq!(r.checks[0].outcome, Outcome::Passed);
    let r = gate(&a, &run(&[("steady", &[50.0])]), &["ttft.p99>+10%"]);
    assert_eq!(r.checks[0].outcome, Outcome::Passed);
    // Absolute amounts: ms.
    let r = gate(&a, &run(&[("steady", &[121.0])]), &["ttft.p99>+20ms"]);
    assert_eq!(r.checks[0].outcome, Outcome::Regressed);
    assert_eq!(r.failures().count(), 1);
}

#[test]
fn lower_is_worse_for_throughput() {
    let a = run(&[("steady", &[100.0])]);
    let mut b = run(&[("steady", &[100.0])]);
    b.phases[0].request_throughput = 18.0;
    let r = gate(&a, &b, &["throughput<-5%", "throughput<-3/s"]);
    let got: Vec<Outcome> = r.checks.iter().map(|c| c.outcome).collect();
    assert_eq!(got, [Outcome::Regressed, Outcome::Passed]);
    assert!((r.checks[0].change.unwrap() + 10.0).abs() < 1e-9);
    // Faster is never a regression.
    b.phases[0].request_throughput = 40.0;
    assert_eq!(gate(&a, &b, &["throughput<-5%"]).failures().count(), 0);
}

#[test]
fn error_rate_moves_in_percentage_points() {
    let a = run(&[("steady", &[100.0])]);
    let mut b = a.clone();
    // 4 failed of 1204 in the sample: 0.33%; 20 of 1220: 1.64%.
    b.phases[0].requests.failed = 20;
    let r = gate(&a, &b, &["error_rate>+1pp", "error_rate>+2pp"]);
    let c = &r.checks[0];
    assert!((c.change.unwrap() - 100.0 * (20.0 / 1220.0 - 4.0 / 1204.0)).abs() < 1e-9);
    let got: Vec<Outcome> = r.checks.iter().map(|c| c.outcome).collect();
    assert_eq!(got, [Outcome::Regressed, Outcome::Passed]);
}

#[test]
fn with_repeats_a_change_must_also_be_beyond_noise() {
    let a = run(&[("steady", &[100.0, 130.0, 90.0])]);
    // +20% on average, but the repeats scatter more than that.
    let noisy = run(&[("steady", &[150.0, 100.0, 132.0])]);
    let r = gate(&a, &noisy, &["ttft.p99>+10%"]);
    let c = &r.checks[0];
    assert!(c.change.unwrap() > 10.0, "{c:?}");
    assert!(!c.noise.unwrap().beyond_noise(), "{c:?}");
    assert_eq!(c.outcome, Outcome::WithinNoise);
    assert!(!r.noise_unknown());
    assert_eq!(r.failures().count(), 0);
    // Clearly separated repeats: a regression.
    let slow = run(&[("steady", &[200.0, 210.0, 205.0])]);
    let r = gate(&a, &slow, &["ttft.p99>+10%"]);
    assert_eq!(r.checks[0].outcome, Outcome::Regressed);
    assert_eq!(
        (
            r.checks[0].baseline.unwrap().repeats,
            r.checks[0].candidate.unwrap().repeats
        ),
        (3, 3)
    );
    // Beyond noise but within the threshold: passes.
    let a = run(&[("steady", &[100.0, 100.1, 99.9])]);
    let b = run(&[("steady", &[105.0, 105.1, 104.9])]);
    let r = gate(&a, &b, &["ttft.p99>+10%"]);
    assert!(r.checks[0].noise.unwrap().beyond_noise());
    assert_eq!(r.checks[0].outcome, Outcome::Passed);
}

#[test]
fn one_sided_repeats_leave_the_noise_unknown() {
    let a = run(&[("steady", &[100.0, 101.0])]);
    let r = gate(&a, &run(&[("steady", &[150.0])]), &["ttft.p99>+10%"]);
    assert_eq!(r.checks[0].noise, None);
    assert_eq!(r.checks[0].outcome, Outcome::Regressed);
}

#[test]
fn phases_match_by_name_and_missing_ones_are_reported() {
    let a = run(&[("warm", &[10.0]), ("steady", &[100.0])]);
    let b = run(&[("steady", &[100.0]), ("burst", &[300.0])]);
    let r = gate(&a, &b, &["ttft.p99>+10%"]);
    let s = |p: &str, o| (p.to_string(), "ttft.p99>+10%".to_string(), o);
    assert_eq!(
        outcomes(&r),
        [
            s("warm", Outcome::MissingInCandidate),
            s("steady", Outcome::Passed),
            s("burst", Outcome::MissingInBaseline),
        ]
    );
    assert_eq!(r.failures().count(), 1);
    // A figure the candidate lacks (no successful request: no TTFT) fails too.
    let mut b = run(&[("warm", &[10.0]), ("steady", &[100.0])]);
    b.phases[1].metrics.remove("ttft");
    b.phases[1].goodput = None;
    let r = gate(&a, &b, &["ttft.p99>+10%", "goodput<-5%"]);
    let got: Vec<Outcome> = r.checks.iter().map(|c| c.outcome).collect();
    assert_eq!(
        got,
        [
            Outcome::Passed,
            Outcome::MissingInBaseline,
            Outcome::MissingInCandidate,
            Outcome::MissingInBaseline,
        ]
    );
}

#[test]
fn stress_phases_are_listed_not_gated() {
    let mut a = run(&[("steady", &[100.0]), ("knee", &[100.0])]);
    a.phases[1].step = Some(crate::model::StepRecord {
        index: 0,
        rate: 5.0,
    });
    let r = gate(&a, &a, &["ttft.p99>+10%"]);
    assert_eq!(r.checks.len(), 1);
    assert_eq!(r.not_gated, ["knee: a stress phase (compare its knee)"]);
}

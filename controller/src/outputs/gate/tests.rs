//! The gate's text, Markdown and JUnit agree on the same checks.

use super::*;
use crate::model::gate::{Outcome, Stat, Threshold};

fn report() -> GateReport {
    let ttft = Threshold {
        metric: GateMetric::Latency("ttft", Stat::P99),
        amount: Amount::Percent(10.0),
    };
    let errors = Threshold {
        metric: GateMetric::ErrorRate,
        amount: Amount::Absolute(0.5),
    };
    let check = |phase: &str, threshold, a, b, change, noise, outcome| GateCheck {
        phase: phase.into(),
        threshold,
        baseline: a,
        candidate: b,
        change,
        noise,
        outcome,
    };
    let s = |mean, repeats| Some(Sample { mean, repeats });
    let w = Welch {
        t: 0.8,
        df: 3.9,
        critical: 2.776,
    };
    GateReport {
        baseline: "runs/a".into(),
        candidate: "runs/b|<new>".into(),
        checks: vec![
            check(
                "steady",
                ttft,
                s(12.3, 1),
                s(45.6, 1),
                Some(270.7),
                None,
                Outcome::Regressed,
            ),
            check(
                "steady",
                errors,
                s(0.001, 1),
                s(0.002, 1),
                Some(0.1),
                None,
                Outcome::Passed,
            ),
            check(
                "burst",
                ttft,
                s(10.0, 3),
                s(12.0, 3),
                Some(20.0),
                Some(w),
                Outcome::WithinNoise,
            ),
            check(
                "cool",
                ttft,
                s(10.0, 1),
                None,
                None,
                None,
                Outcome::MissingInCandidate,
            ),
        ],
        not_gated: vec!["knee: a stress phase (compare its knee)".into()],
    }
}

#[test]
fn text_names_each_failure_and_the_missing_noise() {
    let t = text(&report());
    assert!(
        t.starts_with("gate: runs/b|<new> against baseline runs/a\n"),
        "{t}"
    );
    let row = t
        .lines()
        .find(|l| l.contains("steady") && l.contains("ttft"))
        .unwrap();
    for cell in [
        "ttft.p99>+10%",
        "12.30 ms",
        "45.60 ms",
        "+270.7%",
        "not estimated",
        "REGRESSED",
    ] {
        assert!(row.contains(cell), "{cell}: {row}");
    }
    let row = t.lines().find(|l| l.contains("error_rate")).unwrap();
    assert!(
        row.contains("0.10%") && row.contains("+0.10 pp") && row.ends_with("ok"),
        "{row}"
    );
    let row = t.lines().find(|l| l.contains("burst")).unwrap();
    assert!(
        row.contains("10.00 ms (mean of 3)") && row.contains("within (Welch t = 0.80, df 3.9)"),
        "{row}"
    );
    assert!(t.contains("not gated: knee"), "{t}");
    assert!(t.contains("noise could not be estimated"), "{t}");
    assert!(
        t.ends_with(
            "gate: REGRESSED: ttft.p99>+10% in phase steady: +270.7%; \
             ttft.p99>+10% in phase cool: missing in candidate\n"
        ),
        "{t}"
    );
}

#[test]
fn markdown_marks_failures_and_escapes_pipes() {
    let m = markdown::render(&[report()]);
    assert!(
        m.starts_with("### ❌ Regression gate failed: 2 of 4 checks\n"),
        "{m}"
    );
    assert!(
        m.contains("Candidate runs/b\\|<new> against baseline runs/a."),
        "{m}"
    );
    assert!(m.contains("| phase | threshold |"), "{m}");
    assert!(m.contains("| steady | `ttft.p99>+10%` | 12.30 ms | 45.60 ms | +270.7% | not estimated | ❌ **REGRESSED** |"), "{m}");
    assert!(m.contains("| within noise |"), "{m}");
    let passed = GateReport {
        checks: report().checks[1..2].to_vec(),
        not_gated: Vec::new(),
        ..report()
    };
    assert!(markdown::render(&[passed]).starts_with("### ✅ Regression gate passed\n"));
}

#[test]
fn junit_has_a_case_per_check_and_escapes_markup() {
    let x = junit::render(&[report()]);
    assert!(
        x.contains(r#"<testsuites name="stampede regression gate" tests="4" failures="2""#),
        "{x}"
    );
    assert!(
        x.contains(r#"<testsuite name="runs/b|&lt;new&gt; against runs/a" tests="4" failures="2""#),
        "{x}"
    );
    assert_eq!(x.matches("<testcase ").count(), 4, "{x}");
    assert_eq!(x.matches("<failure ").count(), 2, "{x}");
    assert!(x.contains(r#"name="ttft.p99&gt;+10%""#), "{x}");
    assert!(x.contains(r#"type="missing in candidate""#), "{x}");
}

use super::*;
use std::path::Path;

fn plan(text: &str) -> Plan {
    let path = Path::new("plan.toml");
    stampede_plan::parse(text, path)
        .and_then(|raw| raw.validate_without_files(path))
        .unwrap_or_else(|e| panic!("{e}"))
}

const PLAN: &str = r#"
[run]
name = "bench.v2"
slo = ["ttft.p99 < 500ms", "error_rate < 1%"]
[target.simulator]
[[phase]]
name = "steady"
kind = "constant"
rate = 10.0
duration = "10s"
slo = ["e2e.mean <= 2s", "itl.p99.9 < 40ms"]
[[phase]]
name = "knee"
kind = "stress"
from = 5.0
to = 50.0
step_duration = "5s"
slo = ["ttft.p99 < 300ms"]
"#;

const OPTS: RuleOptions = RuleOptions {
    window: Duration::from_secs(30),
    hold: Duration::ZERO,
};

fn find<'a>(rules: &'a [Rule], phase: &str, objective: &str, alert: bool) -> &'a Rule {
    rules
        .iter()
        .find(|r| {
            r.alert.is_some() == alert
                && r.labels["objective"] == objective
                && r.expr.contains(&format!("phase=\"{phase}\""))
        })
        .unwrap_or_else(|| panic!("no rule for {phase} / {objective}: {rules:#?}"))
}

#[test]
fn every_objective_of_every_phase_gets_a_recording_and_an_alert() {
    let file = rules(&plan(PLAN), &OPTS).unwrap();
    assert_eq!(file.groups.len(), 1);
    let g = &file.groups[0];
    assert_eq!(g.name, "stampede-objectives-bench.v2");
    // steady: 4 objectives (2 run-wide + 2 own); knee: its ttft replaces the run's.
    assert_eq!(g.rules.len(), 2 * (4 + 2), "{g:#?}");
    // Every recording precedes every alert (a group evaluates in order).
    let first_alert = g.rules.iter().position(|r| r.alert.is_some()).unwrap();
    assert!(
        g.rules[..first_alert]
            .iter()
            .all(|r| r.record.as_deref() == Some(OBSERVED))
    );
    assert!(
        g.rules[first_alert..]
            .iter()
            .all(|r| r.alert.as_deref() == Some(ALERT))
    );
    let sel = r#"run=~"bench\\.v2-.*",phase="steady""#;
    assert_eq!(
        find(&g.rules, "steady", "ttft.p99 < 500ms", false).expr,
        format!(
            "histogram_quantile(0.99, sum by (run, phase, le) \
             (rate(stampede_controller_ttft_seconds_bucket{{{sel}}}[30s])))"
        )
    );
    assert_eq!(
        find(&g.rules, "steady", "e2e.mean <= 2s", false).expr,
        format!(
            "sum by (run, phase) (rate(stampede_controller_e2e_seconds_sum{{{sel}}}[30s]))\n/\n\
             sum by (run, phase) (rate(stampede_controller_e2e_seconds_count{{{sel}}}[30s]))"
        )
    );
    assert!(
        find(&g.rules, "steady", "itl.p99.9 < 40ms", false)
            .expr
            .starts_with("histogram_quantile(0.999, ")
    );
}

#[test]
fn the_error_rate_is_failed_over_completed_with_missing_counters_as_zero() {
    let file = rules(&plan(PLAN), &OPTS).unwrap();
    let expr = &find(&file.groups[0].rules, "steady", "error_rate < 1%", false).expr;
    let sel = r#"{run=~"bench\\.v2-.*",phase="steady"}[30s]"#;
    let failed =
        format!("sum by (run, phase) (rate(stampede_controller_requests_failed_total{sel}))");
    let ok = format!("sum by (run, phase) (rate(stampede_controller_requests_ok_total{sel}))");
    let failed_or_0 = format!("({failed} or 0 * {ok})");
    let ok_or_0 = format!("({ok} or 0 * {failed})");
    assert_eq!(
        *expr,
        format!("{failed_or_0}\n/\n({ok_or_0} + {failed_or_0})")
    );
}

#[test]
fn alerts_fire_when_the_observed_value_breaks_the_objective() {
    let file = rules(&plan(PLAN), &OPTS).unwrap();
    let rules = &file.groups[0].rules;
    for (phase, objective, tail) in [
        ("steady", "ttft.p99 < 500ms", ">= 0.5"),
        ("steady", "e2e.mean <= 2s", "> 2"),
        ("steady", "itl.p99.9 < 40ms", ">= 0.04"),
        ("steady", "error_rate < 1%", ">= 0.01"),
        ("knee", "ttft.p99 < 300ms", ">= 0.3"),
    ] {
        let a = find(rules, phase, objective, true);
        assert_eq!(
            a.expr,
            format!(
                "stampede:objective_observed{{objective=\"{objective}\",plan=\"bench.v2\",\
                 phase=\"{phase}\"}} {tail}"
            )
        );
        assert_eq!(a.labels["plan"], "bench.v2");
        assert!(a.annotations["summary"].contains(objective), "{a:?}");
        assert!(a.hold.is_none());
        let severity = if phase == "knee" { "info" } else { "warning" };
        assert_eq!(a.labels["severity"], severity);
    }
    assert!(
        find(rules, "knee", "ttft.p99 < 300ms", true).annotations["description"].contains("knee")
    );
}

#[test]
fn other_comparisons_invert_too() {
    assert_eq!(broken(Op::Gt), "<=");
    assert_eq!(broken(Op::Ge), "<");
    let p = plan(
        r#"
[run]
slo = ["tpot.p50 > 1ms", "schedule_lag.p99 >= 1s"]
[target.simulator]
[[phase]]
name = "b"
kind = "baseline"
duration = "1s"
"#,
    );
    let file = rules(&p, &OPTS).unwrap();
    let exprs: Vec<&str> = file.groups[0]
        .rules
        .iter()
        .map(|r| r.expr.as_str())
        .collect();
    assert!(
        exprs
            .iter()
            .any(|e| e.contains("stampede_controller_tpot_seconds_bucket"))
    );
    assert!(
        exprs
            .iter()
            .any(|e| e.contains("stampede_controller_schedule_lag_seconds_bucket"))
    );
    assert!(
        exprs.iter().any(|e| e.ends_with("} <= 0.001")),
        "{exprs:#?}"
    );
    assert!(exprs.iter().any(|e| e.ends_with("} < 1")), "{exprs:#?}");
}

#[test]
fn statistics_the_live_metrics_cannot_give_are_refused_by_name() {
    for (objective, needle) in [
        ("ttft.max < 1s", "a maximum cannot be read"),
        ("ntpot.p99 < 60ms", "no ntpot histogram"),
    ] {
        let p = plan(&format!(
            "[target.simulator]\n[[phase]]\nname = \"warm\"\nkind = \"baseline\"\n\
             duration = \"1s\"\nslo = [\"{objective}\"]\n"
        ));
        let e = rules(&p, &OPTS).unwrap_err().to_string();
        assert!(e.contains("phase \"warm\""), "{e}");
        assert!(e.contains(objective), "{e}");
        assert!(e.contains(needle), "{e}");
    }
}

#[test]
fn a_plan_without_objectives_or_a_zero_window_is_an_error() {
    let p = plan(
        "[target.simulator]\n[[phase]]\nname = \"b\"\nkind = \"baseline\"\nduration = \"1s\"\n",
    );
    let e = rules(&p, &OPTS).unwrap_err();
    assert!(matches!(e, RulesError::NoObjectives { .. }), "{e}");
    assert!(e.to_string().contains("no objectives"), "{e}");
    let zero = RuleOptions {
        window: Duration::ZERO,
        hold: Duration::ZERO,
    };
    let e = rules(&plan(PLAN), &zero).unwrap_err().to_string();
    assert!(e.contains("window must be at least 1ms"), "{e}");
}

#[test]
fn names_are_escaped_for_promql_strings_and_regular_expressions() {
    assert_eq!(promql_escape(r#"a "b" \c"#), r#"a \"b\" \\c"#);
    assert_eq!(regex_escape("a.b+c"), r"a\.b\+c");
    let p = plan(
        r#"
[run]
slo = ["e2e.p50 < 1s"]
[target.simulator]
[[phase]]
name = 'say "hi"'
kind = "baseline"
duration = "1s"
"#,
    );
    let file = rules(&p, &OPTS).unwrap();
    assert!(
        file.groups[0].rules[0]
            .expr
            .contains(r#"phase="say \"hi\"""#),
        "{file:#?}"
    );
}

#[test]
fn the_yaml_forms_read_back() {
    let opts = RuleOptions {
        window: Duration::from_millis(1500),
        hold: Duration::from_secs(60),
    };
    let p = plan(PLAN);
    let text = prometheus_rule_yaml(&p, &opts, "bench").unwrap();
    assert!(text.starts_with("# Generated by `controller monitoring rules`"));
    let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(v["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(v["kind"], "PrometheusRule");
    assert_eq!(v["metadata"]["name"], "stampede-objectives-bench.v2");
    assert_eq!(v["metadata"]["namespace"], "bench");
    let rules = &v["spec"]["groups"][0]["rules"];
    assert_eq!(rules.as_sequence().unwrap().len(), 12);
    assert!(rules[0]["expr"].as_str().unwrap().contains("[1500ms]"));
    assert_eq!(rules[11]["for"], "60s");
    assert!(rules[0].get("for").is_none() && rules[0].get("annotations").is_none());

    let plain: serde_yaml::Value =
        serde_yaml::from_str(&rule_file_yaml(&p, &opts).unwrap()).unwrap();
    assert_eq!(plain["groups"], v["spec"]["groups"]);
}

use crate::names::MAX_NAME_CHARS;
use crate::*;
use stampede_common::DEFAULT_TRACE_SAMPLE_RATIO;
use std::path::Path;
use std::time::Duration;

const GOOD: &str = r#"
[run]
name = "t"
[agents]
local = 2
[target.simulator]
ttft = "20ms"
[[phase]]
kind = "baseline"
duration = "2s"
[[phase]]
name = "steady"
kind = "constant"
rate = 20.0
duration = "3s"
"#;

fn check(text: &str) -> Result<Plan, PlanError> {
    parse(text, Path::new("p.toml"))?.validate(Path::new("p.toml"))
}

#[test]
fn without_a_workload_the_mix_is_the_request_and_replays_ignore_eos() {
    let plan = check(GOOD).unwrap();
    let steady = &plan.phases[1];
    let mix = plan.mix_for(steady);
    assert_eq!(mix.len(), 1);
    let e = &mix[0];
    assert_eq!(
        (&e.input, &e.output, e.ignore_eos),
        (
            &crate::workload::Length::Fixed(plan.request.prompt_tokens),
            &crate::workload::Length::Fixed(plan.request.max_tokens),
            false
        )
    );
    let mut replay = steady.clone();
    replay.kind = PhaseKind::Replay {
        time_scale: 1.0,
        trace: None,
    };
    assert!(plan.mix_for(&replay)[0].ignore_eos);
}

const PHASES: &str = r#"
[run]
slo = ["ttft.p99 < 1s", "error_rate < 2%"]
[target.simulator]
[[phase]]
name = "knee"
kind = "stress"
from = 10.0
to = 500.0
step_duration = "5s"
slo = ["ttft.p99 < 200ms"]
[[phase]]
kind = "soak"
rate = 30.0
duration = "10m"
drift_windows = 30
max_drift = 0.25
"#;

#[test]
fn stress_and_soak_phases_validate_with_their_objectives() {
    let plan = check(PHASES).unwrap();
    let PhaseKind::Stress(s) = plan.phases[0].kind else {
        panic!("{:?}", plan.phases[0].kind)
    };
    assert_eq!((s.from, s.to, s.max_steps), (10.0, 500.0, 12));
    assert_eq!(
        s.search,
        Search::Adaptive {
            factor: 2.0,
            precision: 0.05
        }
    );
    assert_eq!(plan.phases[0].duration, Duration::from_secs(5));
    let slo: Vec<&str> = plan.phases[0].slo.iter().map(|o| o.text.as_str()).collect();
    assert_eq!(slo, ["error_rate < 2%", "ttft.p99 < 200ms"]);
    assert_eq!(
        plan.phases[1].kind,
        PhaseKind::Soak {
            rate: 30.0,
            arrival: Arrival::Uniform,
            drift_windows: Some(30),
            max_drift: Some(0.25)
        }
    );
    assert_eq!(plan.phases[1].slo.len(), 2);
    assert_eq!(
        plan.phases[1].measured_windows(Duration::from_secs(1)),
        (0, u32::MAX)
    );
    let mut soak = plan.phases[1].clone();
    (soak.warmup, soak.cooldown) = (Duration::from_millis(2500), Duration::from_secs(30));
    assert_eq!(soak.measured_windows(Duration::from_secs(1)), (3, 570));
    assert_eq!(plan.phases[1].name, "soak-1");
    let step = plan.phases[0].stress_step(42.0);
    assert_eq!(
        step.kind,
        PhaseKind::Constant {
            rate: 42.0,
            arrival: Arrival::Uniform
        }
    );
}

#[test]
fn stress_and_soak_mistakes_name_the_key() {
    for (from, to, key, needle) in [
        (
            "step_duration = \"5s\"",
            "duration = \"5s\"",
            "phase[0].duration",
            "does not apply to kind \"stress\"",
        ),
        (
            "step_duration = \"5s\"\n",
            "",
            "phase[0].step_duration",
            "length of each step",
        ),
        ("to = 500.0", "to = 5.0", "phase[0].to", "at least `from`"),
        (
            "to = 500.0",
            "to = 500.0\nsearch = \"linear\"",
            "phase[0].step",
            "rate added per step",
        ),
        (
            "to = 500.0",
            "to = 500.0\nfactor = 1.0",
            "phase[0].factor",
            "above 1",
        ),
        (
            "to = 500.0",
            "to = 500.0\nsearch = \"bisect\"",
            "phase[0].search",
            "\"adaptive\" or \"linear\"",
        ),
        (
            "to = 500.0",
            "to = 500.0\nmin_achieved = 1.5",
            "phase[0].min_achieved",
            "fraction",
        ),
        (
            "drift_windows = 30",
            "drift_windows = 0",
            "phase[1].drift_windows",
            "at least 1",
        ),
        (
            "max_drift = 0.25",
            "max_drift = -1.0",
            "phase[1].max_drift",
            "positive",
        ),
        (
            "rate = 30.0",
            "rate = 30.0\nfrom = 1.0",
            "phase[1].from",
            "does not apply to kind \"soak\"",
        ),
        (
            "slo = [\"ttft.p99 < 200ms\"]",
            "slo = [\"ttft.p99 < soon\"]",
            "phase[0].slo[0]",
            "not a duration",
        ),
        (
            "\"error_rate < 2%\"",
            "\"errors < 2%\"",
            "run.slo[1]",
            "not <metric>.<statistic>",
        ),
    ] {
        let text = PHASES.replacen(from, to, 1);
        let e = check(&text).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains(needle), "{from} -> {to}: {e}");
    }
}

#[test]
fn good_plan_validates() {
    let plan = check(GOOD).unwrap();
    assert_eq!(plan.agents.count, 2);
    assert_eq!(plan.phases.len(), 2);
    assert_eq!(
        plan.phases[1].kind,
        PhaseKind::Constant {
            rate: 20.0,
            arrival: Arrival::Uniform
        }
    );
    assert_eq!(plan.phases[0].name, "baseline-0");
    assert_eq!(plan.target.model, SIMULATOR_MODEL);
}

fn err(text: &str) -> String {
    check(text).unwrap_err().to_string()
}

#[test]
fn unknown_key_is_named() {
    let e = err(&GOOD.replace("rate = 20.0", "rate = 20.0\nratee = 3"));
    assert!(e.contains("ratee"), "{e}");
    assert!(e.contains("p.toml"), "{e}");
}

#[test]
fn shard_weights_are_cores_unless_equal() {
    let weights = |extra: &str| check(&GOOD.replace("local = 2", &format!("local = 2\n{extra}")));
    assert_eq!(
        weights("").unwrap().agents.shard_weights,
        ShardWeights::Cores
    );
    let equal = weights("shard_weights = \"equal\"").unwrap();
    assert_eq!(equal.agents.shard_weights, ShardWeights::Equal);
    let e = weights("shard_weights = \"gpus\"").unwrap_err().to_string();
    assert!(
        e.contains("agents.shard_weights") && e.contains("gpus"),
        "{e}"
    );
}

#[test]
fn negative_rate_is_named() {
    let e = err(&GOOD.replace("rate = 20.0", "rate = -5.0"));
    assert!(e.contains("phase[1].rate") && e.contains("-5"), "{e}");
}

#[test]
fn wrong_type_is_named() {
    let e = err(&GOOD.replace("rate = 20.0", "rate = \"fast\""));
    assert!(e.contains("rate") && e.contains("fast"), "{e}");
}

#[test]
fn missing_target_is_named() {
    let e = err(&GOOD.replace("[target.simulator]\nttft = \"20ms\"", ""));
    assert!(e.contains("`target`"), "{e}");
}

#[test]
fn bad_duration_is_named() {
    let e = err(&GOOD.replace("duration = \"3s\"", "duration = \"3 parsecs\""));
    assert!(e.contains("duration") && e.contains("3 parsecs"), "{e}");
}

#[test]
fn ramp_and_arrivals_validate() {
    let ramp = GOOD.replace(
        "kind = \"baseline\"",
        "kind = \"ramp\"\nfrom = 0.0\nto = 50.0\narrival = \"gamma\"\nburstiness = 0.5",
    );
    let plan = check(&ramp).unwrap();
    assert_eq!(
        plan.phases[0].kind,
        PhaseKind::Ramp {
            from: 0.0,
            to: 50.0,
            steps: None,
            arrival: Arrival::Gamma { burstiness: 0.5 }
        }
    );
    let e = err(&GOOD.replace("rate = 20.0", "rate = 20.0\narrival = \"gamma\""));
    assert!(e.contains("phase[1].burstiness"), "{e}");
    let e = err(&GOOD.replace("rate = 20.0", "rate = 20.0\narrival = \"bursty\""));
    assert!(
        e.contains("phase[1].arrival") && e.contains("bursty"),
        "{e}"
    );
    let e = err(&GOOD.replace("kind = \"baseline\"", "kind = \"ramp\"\nfrom = 5.0"));
    assert!(e.contains("phase[0].to"), "{e}");
}

#[test]
fn request_options_validate() {
    let with = |extra: &str| {
        GOOD.replace(
            "[target.simulator]",
            &format!("[target]\n{extra}\n[target.simulator]"),
        )
    };
    let plan = check(&with(
        "api_key_env = \"MY_KEY\"\nhttp2 = true\nheaders = { x-team = \"infra\" }",
    ))
    .unwrap();
    assert_eq!(plan.target.api_key_env.as_deref(), Some("MY_KEY"));
    assert!(plan.target.http2);
    assert_eq!(plan.target.headers["x-team"], "infra");
    let e = err(&with("headers = { Authorization = \"Bearer sk-123\" }"));
    assert!(
        e.contains("target.headers.Authorization") && !e.contains("sk-123"),
        "{e}"
    );
    let e = err(&with("api_key_env = \"1BAD\""));
    assert!(e.contains("target.api_key_env"), "{e}");
    let e = err(&with("ca_file = \"/nonexistent/ca.pem\""));
    assert!(
        e.contains("target.ca_file") && e.contains("/nonexistent/ca.pem"),
        "{e}"
    );
    let e = err(&GOOD.replacen(
        "[[phase]]",
        "[request]\ntimeout = \"1s\"\nfirst_token_timeout = \"2s\"\n[[phase]]",
        1,
    ));
    assert!(e.contains("request.first_token_timeout"), "{e}");
}

#[test]
fn cost_is_validated() {
    let plan = check(&format!("{GOOD}\n[cost]\ngpu_hour_price = 2.5\ngpus = 4\n")).unwrap();
    let cost = plan.cost.unwrap();
    assert_eq!(
        (cost.gpu_hour_price, cost.gpus, cost.currency.as_str()),
        (2.5, 4, "USD")
    );
    let e = err(&format!(
        "{GOOD}\n[cost]\ngpu_hour_price = -1.0\ngpus = 4\n"
    ));
    assert!(e.contains("cost.gpu_hour_price") && e.contains("-1"), "{e}");
    let e = err(&format!("{GOOD}\n[cost]\ngpu_hour_price = 1.0\n"));
    assert!(e.contains("cost.gpus"), "{e}");
}

#[test]
fn field_of_other_kind_is_refused() {
    let e = err(&GOOD.replace("kind = \"baseline\"", "kind = \"baseline\"\nusers = 4"));
    assert!(e.contains("phase[0].users"), "{e}");
}

#[test]
fn tracing_is_off_unless_enabled_and_its_ratio_is_checked() {
    assert_eq!(check(GOOD).unwrap().tracing, None);
    let traced = |body: &str| {
        GOOD.replace(
            "name = \"t\"",
            &format!("name = \"t\"\n[run.tracing]\n{body}"),
        )
    };
    let plan = check(&traced("enabled = true")).unwrap();
    assert_eq!(
        plan.tracing,
        Some(Tracing {
            sample_ratio: DEFAULT_TRACE_SAMPLE_RATIO
        })
    );
    let plan = check(&traced("enabled = true\nsample_ratio = 1.0")).unwrap();
    assert_eq!(plan.tracing, Some(Tracing { sample_ratio: 1.0 }));
    assert_eq!(check(&traced("sample_ratio = 0.5")).unwrap().tracing, None);
    for bad in ["1.5", "-0.1", "nan"] {
        let e = err(&traced(&format!("enabled = true\nsample_ratio = {bad}")));
        assert!(e.contains("run.tracing.sample_ratio"), "{e}");
    }
    let e = err(&traced("enable = true"));
    assert!(e.contains("enable"), "{e}");
}

#[test]
fn an_unknown_kind_is_named_before_the_keys_it_would_not_read() {
    let e = err(&GOOD.replace("kind = \"constant\"", "kind = \"steady\""));
    assert!(
        e.contains("phase[1].kind") && e.contains("\"steady\"") && e.contains("\"baseline\""),
        "{e}"
    );
}

#[test]
fn phase_accessors_read_the_load_of_each_kind() {
    let plan = check(GOOD).unwrap();
    let (baseline, steady) = (&plan.phases[0], &plan.phases[1]);
    assert_eq!((baseline.users(), baseline.offered_rate()), (Some(1), None));
    assert_eq!((steady.users(), steady.offered_rate()), (None, Some(20.0)));
    assert!(steady.replayed().is_none());
    let ramp = Phase {
        kind: PhaseKind::Ramp {
            from: 0.0,
            to: 40.0,
            steps: Some(4),
            arrival: Arrival::Uniform,
        },
        duration: Duration::from_secs(8),
        ..steady.clone()
    };
    assert_eq!(ramp.offered_rate(), Some(20.0));
    let at = |s: u64| ramp.offered_rate_at(Duration::from_secs(s));
    assert_eq!(
        (at(0), at(3), at(8)),
        (Some(0.0), Some(40.0 / 3.0), Some(40.0))
    );
}

/// Longest error message a huge value may give.
const SHORT: usize = 1000;

#[test]
fn a_huge_malformed_plan_gives_a_short_error_with_its_position() {
    let huge = "x".repeat(5_000_000);
    for (text, needle) in [
        (format!("[run]\nname = \"{huge}\n"), "line 2"),
        (format!("[run]\nname = {huge}\n"), "line 2"),
        (
            GOOD.replace("rate = 20.0", &format!("rate = \"{huge}\"")),
            "line 14",
        ),
        (
            GOOD.replace("duration = \"3s\"", &format!("duration = \"{huge}\"")),
            "line 15",
        ),
        (format!("[run]\nname = \"a\"\n\"{huge}\" = 1\n"), "line 3"),
    ] {
        let e = err(&text);
        assert!(
            e.len() < SHORT && e.contains(needle),
            "{} bytes: {}",
            e.len(),
            e.chars().take(600).collect::<String>()
        );
        assert!(e.contains("…"), "{e}");
    }
}

#[test]
fn the_run_name_is_a_short_safe_file_name() {
    let named = |name: &str| check(&GOOD.replace("name = \"t\"", &format!("name = {name:?}")));
    let longest = "n".repeat(MAX_NAME_CHARS);
    assert_eq!(named(&longest).unwrap().name, longest);
    assert_eq!(named("nightly-2.1_a").unwrap().name, "nightly-2.1_a");
    for (bad, needle) in [
        ("n".repeat(MAX_NAME_CHARS + 1), "at most 200 characters"),
        (String::new(), "letters, digits"),
        (".".into(), "must not start with '.'"),
        ("..".into(), "must not start with '.'"),
        ("a/b".into(), "letters, digits"),
        ("a\tb".into(), "letters, digits"),
    ] {
        let e = named(&bad).unwrap_err().to_string();
        assert!(
            e.contains("`run.name`") && e.contains(needle),
            "{bad:?}: {e}"
        );
    }
}

#[test]
fn a_phase_name_fits_in_a_file_name() {
    let named = |name: &str| check(&GOOD.replace("name = \"steady\"", &format!("name = {name:?}")));
    let longest = "p".repeat(MAX_NAME_CHARS);
    assert_eq!(named(&longest).unwrap().phases[1].name, longest);
    for (bad, needle) in [
        ("p".repeat(MAX_NAME_CHARS + 1), "at most 200 characters"),
        ("a\tb".into(), "control characters"),
        ("a/b".into(), "slashes"),
    ] {
        let e = named(&bad).unwrap_err().to_string();
        assert!(
            e.contains("`phase[1].name`") && e.contains(needle),
            "{bad:?}: {e}"
        );
    }
}

const URL_PLAN: &str = r#"
[target]
url = "URL"
model = "m"
[[phase]]
kind = "baseline"
duration = "2s"
"#;

#[test]
fn a_target_url_ending_in_v1_is_refused_with_the_base_to_use() {
    for (url, base) in [
        ("http://host:8000/v1", "http://host:8000"),
        ("http://host:8000/v1/", "http://host:8000"),
        ("https://gw/llama/v1", "https://gw/llama"),
    ] {
        let e = err(&URL_PLAN.replace("URL", url));
        assert!(
            e.contains(&format!("`target.url` = {url:?}"))
                && e.contains("must not end in /v1")
                && e.contains(&format!("use {base:?}")),
            "{url}: {e}"
        );
    }
}

#[test]
fn a_target_url_may_carry_a_route_prefix() {
    for (url, base) in [
        ("http://gw:80/llama", "http://gw:80/llama"),
        ("http://gw:80/llama/", "http://gw:80/llama"),
        ("http://gw/v1beta", "http://gw/v1beta"),
        ("http://gw:80", "http://gw:80"),
    ] {
        let plan = check(&URL_PLAN.replace("URL", url)).unwrap();
        assert_eq!(plan.target.endpoint, Endpoint::Url(base.into()), "{url}");
    }
}

#[test]
fn a_huge_value_is_quoted_by_an_excerpt() {
    let huge = "é".repeat(1_000_000);
    for text in [
        GOOD.replace("name = \"t\"", &format!("name = \"{huge}\"")),
        GOOD.replace("name = \"steady\"", &format!("name = \"{huge}\"")),
        GOOD.replace("kind = \"constant\"", &format!("kind = \"{huge}\"")),
        URL_PLAN.replace("URL", &format!("http://h/{huge}/v1")),
    ] {
        let e = err(&text);
        assert!(
            e.len() < SHORT,
            "{} bytes: {}",
            e.len(),
            e.chars().take(600).collect::<String>()
        );
        assert!(e.contains("éé…\"") && e.contains("characters"), "{e}");
    }
}

#[test]
fn a_cooldown_error_quotes_the_cooldown_as_written() {
    let e = err(&GOOD.replace(
        "duration = \"3s\"",
        "duration = \"3s\"\nwarmup = \"2s\"\ncooldown = \"1000ms\"",
    ));
    assert!(e.contains("`phase[1].cooldown` = \"1000ms\""), "{e}");
    let e = err(&GOOD.replace(
        "duration = \"3s\"",
        "duration = \"3s\"\nwarmup = \"3000ms\"",
    ));
    assert!(e.contains("`phase[1].warmup` = \"3000ms\""), "{e}");
}

#[test]
fn a_key_of_another_kind_shows_its_value_as_written() {
    let e = err(&GOOD.replace("rate = 20.0", "rate = 20.0\nusers = 4"));
    assert!(e.contains("`phase[1].users` = 4:"), "{e}");
    let e = err(&GOOD.replace("rate = 20.0", "rate = 20.0\nburstiness = 0.5"));
    assert!(e.contains("`phase[1].burstiness` = 0.5:"), "{e}");
    let e = err(&GOOD.replace("rate = 20.0", "rate = 20.0\ntrace = { path = \"t.csv\" }"));
    assert!(
        e.contains("`phase[1].trace` = { path = \"t.csv\" }:"),
        "{e}"
    );
}

#[test]
fn durations_are_quoted_as_written() {
    for (from, to, needle) in [
        (
            "name = \"t\"",
            "name = \"t\"\nwindow = \"0.005s\"",
            "`run.window` = \"0.005s\"",
        ),
        (
            "name = \"t\"",
            "name = \"t\"\nwindow = \"0ms\"",
            "`run.window` = \"0ms\"",
        ),
        (
            "name = \"t\"",
            "name = \"t\"\n[request]\ntimeout = \"1s\"\nfirst_token_timeout = \"2000ms\"",
            "`request.first_token_timeout` = \"2000ms\"",
        ),
    ] {
        let e = err(&GOOD.replacen(from, to, 1));
        assert!(e.contains(needle), "{to}: {e}");
    }
}

#[test]
fn records_are_off_unless_sampled_and_their_keys_are_checked() {
    assert_eq!(check(GOOD).unwrap().records, None);
    let with = |body: &str| format!("{GOOD}\n[records]\n{body}\n");
    assert_eq!(check(&with("sample = 0")).unwrap().records, None);
    assert_eq!(
        check(&with("sample = 0.01")).unwrap().records,
        Some(Records {
            sample: 0.01,
            max_per_window: 10_000
        })
    );
    let plan = check(&with("sample = 1.0\nmax_per_window = 5")).unwrap();
    assert_eq!(plan.records.map(|r| r.max_per_window), Some(5));
    for bad in ["1.5", "-0.1", "nan"] {
        let e = err(&with(&format!("sample = {bad}")));
        assert!(
            e.contains("records.sample") && e.to_lowercase().contains(bad),
            "{e}"
        );
    }
    let e = err(&with("sample = 1.0\nmax_per_window = 0"));
    assert!(e.contains("records.max_per_window"), "{e}");
    let e = err(&with("samples = 1.0"));
    assert!(e.contains("samples"), "{e}");
}

#[test]
fn windows_per_report_follow_the_fleet_unless_the_plan_says() {
    let plan = check(GOOD).unwrap();
    assert_eq!(plan.windows_per_report, None);
    // 1 s windows: one window per message up to 1,000 agents, then enough
    // per message that the controller takes at most 1,000 messages a second.
    for (agents, per) in [
        (1, 1),
        (1_000, 1),
        (1_001, 2),
        (10_000, 10),
        (1_000_000, 60),
    ] {
        assert_eq!(plan.windows_per_report(agents), per, "{agents} agents");
    }
    let short =
        check(&GOOD.replacen("name = \"t\"", "name = \"t\"\nwindow = \"100ms\"", 1)).unwrap();
    assert_eq!(short.windows_per_report(100), 1);
    assert_eq!(short.windows_per_report(1_000), 10);
    let every = |text: &str| GOOD.replacen("name = \"t\"", &format!("name = \"t\"\n{text}"), 1);
    let set = check(&every("report_every = \"5s\"")).unwrap();
    assert_eq!(set.windows_per_report, Some(5));
    assert_eq!(set.windows_per_report(10_000), 5);
    assert_eq!(
        check(&every("window = \"500ms\"\nreport_every = \"2s\""))
            .unwrap()
            .windows_per_report,
        Some(4)
    );
    for (text, needle) in [
        ("report_every = \"1500ms\"", "whole number of windows"),
        ("report_every = \"0s\"", "longer than zero"),
        ("report_every = \"61s\"", "at most 60 windows"),
        (
            "window = \"2s\"\nreport_every = \"1s\"",
            "whole number of windows",
        ),
    ] {
        let e = err(&every(text));
        assert!(
            e.contains("run.report_every") && e.contains(needle),
            "{text}: {e}"
        );
    }
}

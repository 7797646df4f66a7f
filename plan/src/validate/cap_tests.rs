//! The concurrency cap of open-loop phases and the request options of
//! `[request]`: what is accepted and what is refused, with the key named.

use crate::*;
use std::path::Path;

const OPEN: &str = r#"
[agents]
local = 2
[target.simulator]
[[phase]]
kind = "constant"
rate = 20.0
duration = "3s"
max_concurrency = 4
"#;

fn check(text: &str) -> Result<Plan, PlanError> {
    parse(text, Path::new("p.toml"))?.validate(Path::new("p.toml"))
}

fn err(text: &str) -> String {
    check(text).unwrap_err().to_string()
}

#[test]
fn open_loop_phases_take_a_cap_of_at_least_the_agents() {
    assert_eq!(check(OPEN).unwrap().phases[0].max_concurrency, Some(4));
    let ramp = OPEN.replace(
        "kind = \"constant\"\nrate = 20.0",
        "kind = \"ramp\"\nfrom = 1.0\nto = 9.0",
    );
    assert_eq!(check(&ramp).unwrap().phases[0].max_concurrency, Some(4));
    let e = err(&OPEN.replace("max_concurrency = 4", "max_concurrency = 1"));
    assert!(
        e.contains("phase[0].max_concurrency") && e.contains("below the 2 agents"),
        "{e}"
    );
    let e = err(&OPEN.replace("max_concurrency = 4", "max_concurrency = 0"));
    assert!(
        e.contains("phase[0].max_concurrency") && e.contains("at least 1"),
        "{e}"
    );
}

#[test]
fn closed_loops_refuse_a_cap() {
    for kind in ["kind = \"concurrency\"\nusers = 2", "kind = \"baseline\""] {
        let e = err(&OPEN.replace("kind = \"constant\"\nrate = 20.0", kind));
        assert!(
            e.contains("phase[0].max_concurrency") && e.contains("its users"),
            "{e}"
        );
    }
}

#[test]
fn request_options_reach_the_mix_and_are_checked_like_a_workload_entry() {
    let plan = check(&OPEN.replace(
        "[target.simulator]",
        "[target.simulator]\n[request]\nignore_eos = true\ntemperature = 0.5\nextra_body = { top_p = 0.9 }",
    ))
    .unwrap();
    let e = &plan.mix_for(&plan.phases[0])[0];
    assert_eq!((e.ignore_eos, e.temperature), (true, Some(0.5)));
    assert_eq!(e.options.extra_body_json, r#"{"top_p":0.9}"#);
    let with = |extra: &str| {
        OPEN.replace(
            "[target.simulator]",
            &format!("[target.simulator]\n[request]\n{extra}"),
        )
    };
    let e = err(&with("temperature = 3.0"));
    assert!(
        e.contains("request.temperature") && e.contains("between 0 and 2"),
        "{e}"
    );
    let e = err(&with("extra_body = { stream = false }"));
    assert!(
        e.contains("request.extra_body.stream") && e.contains("sets this field itself"),
        "{e}"
    );
    let e = err(&format!(
        "{}\n[[workload]]\nprofile = \"chat\"\n",
        with("temperature = 0.5")
    ));
    assert!(
        e.contains("request.temperature") && e.contains("per entry"),
        "{e}"
    );
}

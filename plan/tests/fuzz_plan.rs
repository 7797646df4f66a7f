//! Property tests of the plan parser: any text, and any value under any
//! known key, gives a plan or a `PlanError` — never a panic. Bounded case
//! counts keep this to seconds in CI.

use proptest::prelude::*;
use stampede_plan::{self as plan, PlanError};
use std::path::Path;

fn check(text: &str) {
    let path = Path::new("fuzz.toml");
    match plan::parse(text, path) {
        Ok(raw) => match raw.validate(path) {
            Ok(_) => {}
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains("fuzz.toml"), "error names no file: {msg}");
                assert!(matches!(
                    e,
                    PlanError::Invalid { .. } | PlanError::Parse { .. }
                ));
            }
        },
        Err(e) => assert!(e.to_string().contains("fuzz.toml"), "{e}"),
    }
}

/// TOML values of every type, including awkward ones.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        prop_oneof![Just(0i64), Just(1), Just(-1), Just(u32::MAX as i64 + 1)]
            .prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| if v.is_finite() {
            format!("{v:?}")
        } else {
            "nan".into()
        }),
        prop_oneof![
            Just("inf"),
            Just("-inf"),
            Just("nan"),
            Just("1e308"),
            Just("-0.0")
        ]
        .prop_map(String::from),
        any::<bool>().prop_map(|v| v.to_string()),
        "[a-z0-9 .:_-]{0,12}".prop_map(|v| format!("{v:?}")),
        prop_oneof![
            Just("\"0s\""),
            Just("\"1ms\""),
            Just("\"10ms\""),
            Just("\"1h\""),
            Just("\"99999999999h\""),
            Just("\"1s 1s\""),
            Just("\"-1s\""),
            Just("\"uniform\""),
            Just("\"poisson\""),
            Just("\"gamma\""),
            Just("\"constant\""),
            Just("\"ramp\""),
            Just("\"baseline\""),
            Just("\"concurrency\""),
            Just("\"chat\""),
            Just("\"completions\""),
            Just("\"127.0.0.1:0\""),
            Just("\"[::1]:70000\""),
            Just("\"http://127.0.0.1:1\""),
            Just("\"fixed\""),
            Just("\"lognormal\""),
            Just("\"empirical\""),
        ]
        .prop_map(String::from),
        proptest::collection::vec(any::<i32>(), 0..4).prop_map(|v| format!("{v:?}")),
        Just("{}".to_string()),
        Just("{ dist = \"uniform\", min = 5, max = 1 }".to_string()),
        Just("{ dist = \"normal\", mean = 1e300, stddev = -1 }".to_string()),
        Just("{ groups = 0, tokens = 4294967295 }".to_string()),
    ]
}

const RUN: &[&str] = &["name", "window", "output_dir", "seed", "repeat"];
const AGENTS: &[&str] = &[
    "local",
    "remote",
    "listen",
    "join_timeout",
    "max_in_flight",
    "reconnect_grace",
    "halt_after",
    "join_token_env",
    "allow_plaintext",
];
const TARGET: &[&str] = &[
    "url",
    "model",
    "api",
    "api_key_env",
    "http2",
    "insecure_tls",
];
const SIM: &[&str] = &["ttft", "itl", "output_tokens", "listen"];
const REQUEST: &[&str] = &[
    "prompt_tokens",
    "max_tokens",
    "stream",
    "timeout",
    "first_token_timeout",
    "connect_timeout",
];
const PHASE: &[&str] = &[
    "kind",
    "name",
    "duration",
    "rate",
    "from",
    "to",
    "steps",
    "arrival",
    "burstiness",
    "users",
    "requests",
    "drain",
];
const WORKLOAD: &[&str] = &[
    "profile",
    "name",
    "weight",
    "input",
    "output",
    "shared_prefix",
    "ignore_eos",
    "temperature",
];
const COST: &[&str] = &["gpu_hour_price", "gpus", "currency"];

fn table(header: &'static str, keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::collection::vec((proptest::sample::select(keys), value()), 0..6).prop_map(move |kv| {
        let mut seen = std::collections::BTreeSet::new();
        let mut s = format!("{header}\n");
        for (k, v) in kv {
            if seen.insert(k) {
                s.push_str(&format!("{k} = {v}\n"));
            }
        }
        s
    })
}

fn plan_text() -> impl Strategy<Value = String> {
    (
        table("[run]", RUN),
        table("[agents]", AGENTS),
        table("[target]", TARGET),
        prop::option::of(table("[target.simulator]", SIM)),
        table("[request]", REQUEST),
        proptest::collection::vec(table("[[phase]]", PHASE), 0..3),
        proptest::collection::vec(table("[[workload]]", WORKLOAD), 0..2),
        prop::option::of(table("[cost]", COST)),
    )
        .prop_map(
            |(run, agents, target, sim, request, phases, workload, cost)| {
                let mut s = run + &agents + &target + &sim.unwrap_or_default() + &request;
                s.extend(phases);
                s.extend(workload);
                s + &cost.unwrap_or_default()
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_text_is_a_plan_or_an_error(text in "\\PC{0,200}") {
        check(&text);
    }

    #[test]
    fn any_value_under_known_keys_is_a_plan_or_an_error(text in plan_text()) {
        check(&text);
    }
}

/// A value thousands of characters long, of one of several shapes.
fn huge_value() -> impl Strategy<Value = String> {
    let long = "é".repeat(20_000);
    prop_oneof![
        Just(format!("\"{long}\"")),
        Just(format!("\"{long}")),
        Just(long.clone()),
        Just(format!("[\"{long}\"]")),
        Just(format!("{{ \"{long}\" = 1 }}")),
        Just("9".repeat(20_000)),
    ]
}

/// Every section with its keys.
const SECTIONS: &[(&str, &[&str])] = &[
    ("[run]", RUN),
    ("[agents]", AGENTS),
    ("[target]", TARGET),
    ("[target.simulator]", SIM),
    ("[request]", REQUEST),
    ("[[phase]]", PHASE),
    ("[[workload]]", WORKLOAD),
    ("[cost]", COST),
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_huge_value_under_any_key_gives_a_short_error(
        (header, key) in proptest::sample::select(SECTIONS)
            .prop_flat_map(|(h, keys)| (Just(h), proptest::sample::select(keys))),
        value in huge_value(),
    ) {
        let text = format!("{header}\n{key} = {value}\n");
        let path = Path::new("fuzz.toml");
        let msg = match plan::parse(&text, path).and_then(|raw| raw.validate(path)) {
            Ok(_) => return Ok(()),
            Err(e) => e.to_string(),
        };
        prop_assert!(msg.len() < 1500, "{header} {key}: {} bytes: {}", msg.len(),
            msg.chars().take(400).collect::<String>());
    }
}

#[test]
fn a_well_formed_plan_still_validates() {
    // Guards the generator: the fixed keys it uses do exist.
    check(
        "[agents]\nlocal = 1\n[target.simulator]\n[[phase]]\nkind = \"constant\"\nrate = 1.0\nduration = \"1s\"\n",
    );
    let p = plan::parse(
        "[agents]\nlocal = 1\n[target.simulator]\n[[phase]]\nkind = \"constant\"\nrate = 1.0\nduration = \"1s\"\n",
        Path::new("x.toml"),
    )
    .unwrap();
    assert!(p.validate(Path::new("x.toml")).is_ok());
}

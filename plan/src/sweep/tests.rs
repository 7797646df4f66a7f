use super::*;

const PLAN: &str = r#"
[run]
name = "sw"
[agents]
local = 1
[target.simulator]
output_tokens = 16
[[phase]]
name = "warm"
kind = "baseline"
duration = "1s"
[[phase]]
name = "steady"
kind = "constant"
rate = 5.0
duration = "2s"

[sweep]
rate = [10, 20.0, 40]
exclude = []

[[sweep.cluster]]
name = "small"
context = "kind-small"
target.simulator.engine = { max_num_seqs = 2 }

[[sweep.cluster]]
name = "big"
target.simulator.engine = { max_num_seqs = 16 }

[[sweep.workload]]
name = "chat"
workload = [{ profile = "chat" }]

[[sweep.workload]]
name = "classify"
workload = [{ profile = "classification" }]
"#;

fn expand_text(text: &str) -> Result<Sweep, SweepError> {
    expand(text, Path::new("sweep.toml"))
}

fn err(text: &str) -> String {
    expand_text(text).unwrap_err().to_string()
}

fn engine(plan: &Plan) -> Option<u32> {
    match &plan.target.endpoint {
        crate::Endpoint::Simulator(s) => s.engine.as_ref().and_then(|e| e.max_num_seqs),
        crate::Endpoint::Url(_) => None,
    }
}

#[test]
fn full_factorial_in_slug_order() {
    let sweep = expand_text(PLAN).unwrap();
    assert_eq!(sweep.cells.len(), 12);
    assert_eq!(sweep.shape(), "2 cluster × 2 workload × 3 rate");
    assert_eq!(sweep.excluded, 0);
    let slugs: Vec<&str> = sweep.cells.iter().map(|c| c.slug.as_str()).collect();
    assert_eq!(slugs[0], "cluster=small,workload=chat,rate=10");
    assert_eq!(slugs[1], "cluster=small,workload=chat,rate=20");
    assert_eq!(slugs[3], "cluster=small,workload=classify,rate=10");
    assert_eq!(slugs[11], "cluster=big,workload=classify,rate=40");
    let unique: std::collections::BTreeSet<&&str> = slugs.iter().collect();
    assert_eq!(unique.len(), 12);
    for c in &sweep.cells {
        let big = c.slug.starts_with("cluster=big");
        assert_eq!(
            engine(&c.plan),
            Some(if big { 16 } else { 2 }),
            "{}",
            c.slug
        );
        assert_eq!(c.context.as_deref(), (!big).then_some("kind-small"));
        let rate = c.load.unwrap();
        assert_eq!(
            c.plan.phases[1].kind,
            PhaseKind::Constant {
                rate,
                arrival: crate::Arrival::Uniform
            }
        );
        // The baseline is left alone; the report phase is the one the rate set.
        assert_eq!(c.plan.phases[0].kind, PhaseKind::Baseline);
        assert_eq!(c.report_phase, "steady");
        let profile = if c.slug.contains("workload=chat") {
            "chat"
        } else {
            "classification"
        };
        assert_eq!(c.plan.workload.len(), 1);
        assert_eq!(c.plan.workload[0].name, profile, "{}", c.slug);
        assert_eq!(c.values.len(), 3);
        // The cell's plan text is a plain plan: it parses and validates alone.
        let again = crate::parse(&c.plan_text, Path::new("cell.toml"))
            .unwrap()
            .validate(Path::new("cell.toml"))
            .unwrap();
        assert_eq!(again.source, Path::new("cell.toml"));
        let again = Plan {
            source: c.plan.source.clone(),
            ..again
        };
        assert_eq!(again, c.plan);
        assert!(!c.plan_text.contains("[sweep"), "{}", c.plan_text);
    }
    assert_eq!(sweep.x_axis(), Some(2));
    assert!(!sweep.stop_on_failure);
    assert_eq!(sweep.name(), "sw");
}

#[test]
fn exclude_leaves_out_matching_cells() {
    let text = PLAN.replace(
        "exclude = []",
        "exclude = [{ cluster = \"small\", rate = 40 }, { workload = \"classify\", rate = 10.0 }]",
    );
    let sweep = expand_text(&text).unwrap();
    assert_eq!(sweep.excluded, 4);
    assert_eq!(sweep.cells.len(), 8);
    for c in &sweep.cells {
        assert!(
            !(c.slug.contains("cluster=small") && c.slug.ends_with("rate=40")),
            "{}",
            c.slug
        );
        assert!(
            !(c.slug.contains("workload=classify") && c.slug.ends_with("rate=10")),
            "{}",
            c.slug
        );
    }
    let all = PLAN.replace(
        "exclude = []",
        "exclude = [{ rate = 10 }, { rate = 20 }, { rate = 40 }]",
    );
    let e = err(&all);
    assert!(
        e.contains("sweep.exclude") && e.contains("every cell"),
        "{e}"
    );
}

#[test]
fn exclude_mistakes_name_the_entry() {
    for (exclude, key, needle) in [
        (
            "[{ cluster = \"medium\" }]",
            "sweep.exclude[0].cluster",
            "small, big",
        ),
        ("[{ rate = 30 }]", "sweep.exclude[0].rate", "10, 20, 40"),
        (
            "[{ rate = 10 }, { model = \"m\" }]",
            "sweep.exclude[1].model",
            "not a swept axis",
        ),
        ("[{}]", "sweep.exclude[0]", "at least one"),
        (
            "[{ rate = \"10\" }]",
            "sweep.exclude[0].rate",
            "not a value",
        ),
    ] {
        let e = err(&PLAN.replace("exclude = []", &format!("exclude = {exclude}")));
        assert!(e.contains(key) && e.contains(needle), "{exclude}: {e}");
    }
}

#[test]
fn model_slugs_are_safe_directory_names_and_unique() {
    let text = PLAN.replace(
        "rate = [10, 20.0, 40]",
        "rate = [10]\nmodel = [\"meta-llama/Llama-3.1-8B\", \"Qwen/Qwen3 8B\"]",
    );
    let sweep = expand_text(&text).unwrap();
    assert_eq!(
        sweep.cells[0].slug,
        "cluster=small,model=meta-llama_Llama-3.1-8B,workload=chat,rate=10"
    );
    assert_eq!(sweep.cells[0].plan.target.model, "meta-llama/Llama-3.1-8B");
    assert!(
        sweep
            .cells
            .iter()
            .any(|c| c.slug.contains("model=Qwen_Qwen3_8B"))
    );
    for c in &sweep.cells {
        assert!(!c.slug.contains('/') && !c.slug.contains(' '), "{}", c.slug);
    }
    let e = err(&text.replace("Qwen/Qwen3 8B", "meta-llama Llama-3.1-8B"));
    assert!(
        e.contains("sweep.model[1]") && e.contains("sweep.model[0]"),
        "{e}"
    );
    let e = err(&PLAN.replace("rate = [10, 20.0, 40]", "rate = [10, 10.0]"));
    assert!(e.contains("sweep.rate[1]"), "{e}");
}

#[test]
fn axis_value_mistakes_name_the_axis_and_value() {
    for (from, to, key, needle) in [
        (
            "name = \"big\"\ntarget.simulator.engine",
            "name = \"big\"\ntarget.simulator.engin",
            "sweep.cluster[1]",
            "engin",
        ),
        (
            "name = \"big\"",
            "name = \"big one\"",
            "sweep.cluster[1].name",
            "big one",
        ),
        (
            "name = \"classify\"\n",
            "",
            "sweep.workload[1].name",
            "(missing)",
        ),
        (
            "rate = [10, 20.0, 40]",
            "rate = [10, -1]",
            "sweep.rate[1]",
            "-1",
        ),
        (
            "rate = [10, 20.0, 40]",
            "rate = []",
            "sweep.rate",
            "at least one",
        ),
        (
            "rate = [10, 20.0, 40]",
            "rate = [10]\nusers = [0]",
            "sweep.users[0]",
            "at least 1",
        ),
        (
            "name = \"chat\"",
            "name = \"chat\"\ncontext = \"x\"",
            "sweep.workload[0].context",
            "cluster values only",
        ),
        (
            "rate = [10, 20.0, 40]",
            "rate = [10]\ncolour = [1]",
            "colour",
            "unknown field",
        ),
    ] {
        let e = err(&PLAN.replacen(from, to, 1));
        assert!(e.contains(key) && e.contains(needle), "{to}: {e}");
    }
    let e = err("[run]\nname = \"x\"\n[sweep]\n");
    assert!(e.contains("at least one of"), "{e}");
}

#[test]
fn invalid_cells_are_listed_by_slug() {
    // Valid overrides, but the small cluster's plan is invalid.
    let text = PLAN.replace("max_num_seqs = 2", "max_num_seqs = 0");
    match expand_text(&text).unwrap_err() {
        SweepError::Cells { total, invalid } => {
            assert_eq!(total, 12);
            assert_eq!(invalid.len(), 6);
            assert!(invalid.iter().all(|(s, _)| s.starts_with("cluster=small")));
        }
        e => panic!("{e}"),
    }
    let e = err(&text);
    assert!(
        e.contains("6 of 12")
            && e.contains("cell cluster=small,workload=chat,rate=10")
            && e.contains("target.simulator.engine.max_num_seqs"),
        "{e}"
    );
    // A load axis needs a phase to set.
    let e = err(&PLAN.replace(
        "kind = \"constant\"\nrate = 5.0",
        "kind = \"concurrency\"\nusers = 2",
    ));
    assert!(
        e.contains("sweep.rate") && e.contains("\"constant\" or \"soak\""),
        "{e}"
    );
}

#[test]
fn report_phase_is_chosen_or_checked() {
    let sweep = expand_text(&PLAN.replace("exclude = []", "report_phase = \"warm\"")).unwrap();
    assert!(sweep.cells.iter().all(|c| c.report_phase == "warm"));
    let e = err(&PLAN.replace("exclude = []", "report_phase = \"cold\""));
    assert!(
        e.contains("sweep.report_phase") && e.contains("warm, steady"),
        "{e}"
    );
    // Without a load axis: the last phase.
    let sweep = expand_text(&PLAN.replace("rate = [10, 20.0, 40]", "")).unwrap();
    assert_eq!(sweep.cells.len(), 4);
    assert_eq!(sweep.cells[0].report_phase, "steady");
    assert_eq!(sweep.cells[0].load, None);
    assert_eq!(sweep.x_axis(), Some(1));
}

#[test]
fn target_axis_values_are_target_keys() {
    let text = r#"
[target]
model = "m"
[[phase]]
kind = "constant"
rate = 1.0
duration = "1s"
[sweep]
[[sweep.target]]
name = "vllm"
url = "http://127.0.0.1:8000"
[[sweep.target]]
name = "llmd"
url = "http://127.0.0.1:8001/"
api = "completions"
"#;
    let sweep = expand_text(text).unwrap();
    assert_eq!(sweep.cells.len(), 2);
    assert_eq!(
        sweep.cells[1].plan.target.endpoint,
        crate::Endpoint::Url("http://127.0.0.1:8001".into())
    );
    assert_eq!(sweep.cells[1].plan.target.api, crate::Api::Completions);
    let e = err(&text.replace("api = ", "apx = "));
    assert!(
        e.contains("sweep.target[1]") && e.contains("[target] keys"),
        "{e}"
    );
}

#[test]
fn identity_ignores_output_dir_and_key_order() {
    let a = expand_text(PLAN).unwrap();
    let moved = PLAN.replace("name = \"sw\"", "name = \"sw\"\noutput_dir = \"elsewhere\"");
    let reordered = moved.replace(
        "[agents]\nlocal = 1\n[target.simulator]\noutput_tokens = 16",
        "[target.simulator]\noutput_tokens = 16\n[agents]\nlocal = 1",
    );
    assert_ne!(reordered, moved);
    let b = expand_text(&reordered).unwrap();
    for (x, y) in a.cells.iter().zip(&b.cells) {
        assert_eq!(x.identity, y.identity);
    }
    assert_eq!(b.output_dir(), Path::new("elsewhere"));
    let c = expand_text(&PLAN.replace("duration = \"2s\"", "duration = \"3s\"")).unwrap();
    assert_ne!(a.cells[0].identity, c.cells[0].identity);
    let d = expand_text(&PLAN.replace("exclude = []", "report_phase = \"warm\"")).unwrap();
    assert_ne!(a.cells[0].identity, d.cells[0].identity);
}

#[test]
fn merge_replaces_arrays_and_merges_tables() {
    let mut base: toml::Table = "a = { b = 1, c = [1, 2] }\nd = 4".parse().unwrap();
    let over: toml::Table = "a = { c = [3], e = 5 }".parse().unwrap();
    merge(&mut base, &over);
    let want: toml::Table = "a = { b = 1, c = [3], e = 5 }\nd = 4".parse().unwrap();
    assert_eq!(base, want);
}

#[test]
fn is_sweep_detects_the_table() {
    assert!(is_sweep(PLAN));
    assert!(!is_sweep("[run]\nname = \"x\""));
    assert!(!is_sweep("not toml ["));
}

#[test]
fn a_cell_directory_name_must_fit_in_a_file_name() {
    let long = "w".repeat(150);
    let text = PLAN
        .replace("name = \"chat\"", &format!("name = \"{long}\""))
        .replace("name = \"classify\"", &format!("name = \"{long}x\""))
        .replace(
            "rate = [10, 20.0, 40]",
            &format!("rate = [10]\nmodel = [\"{}\"]", "m".repeat(150)),
        );
    let e = err(&text);
    assert!(
        e.contains("`sweep`") && e.contains("255 bytes") && e.contains("cluster=small,model=mmm"),
        "{e}"
    );
    assert!(e.len() < 1000, "{e}");
    let e = err(&PLAN.replace(
        "name = \"chat\"",
        &format!("name = \"{}\"", "w".repeat(201)),
    ));
    assert!(
        e.contains("sweep.workload[0].name") && e.contains("at most 200 characters"),
        "{e}"
    );
}

//! `[[target.simulator.models]]`: more models of the built-in simulator, so a
//! multi-model phase can run with no server of its own. Each has the keys and
//! defaults of `[target.simulator]`; names are required and unique (the first
//! model is `target.model`).

use super::Ctx;
use super::target::sim_timing;
use crate::{PlanError, RawSimulator, SimModelSpec};

/// The extra models of `s`, beside the first one named `first`.
pub(super) fn extra_models(
    cx: &Ctx<'_>,
    s: &RawSimulator,
    first: &str,
) -> Result<Vec<SimModelSpec>, PlanError> {
    let mut out: Vec<SimModelSpec> = Vec::new();
    for (i, m) in s.models.iter().flatten().enumerate() {
        let at = format!("target.simulator.models[{i}]");
        let name = match m.name.as_deref() {
            None => {
                return Err(cx.invalid(
                    format!("{at}.name"),
                    super::MISSING,
                    "every extra model needs a name",
                ));
            }
            Some("") => return Err(cx.invalid(format!("{at}.name"), "\"\"", "must not be empty")),
            Some(n) => n,
        };
        if name == first || out.iter().any(|o| o.name == name) {
            return Err(cx.invalid(
                format!("{at}.name"),
                format!("{name:?}"),
                "model names must be unique (the first model is `target.model`, default \"stampede-sim\")",
            ));
        }
        let (ttft, itl, output_tokens) = sim_timing(
            cx,
            &at,
            m.ttft.as_ref(),
            m.itl.as_ref(),
            m.output_tokens,
            m.engine.as_ref(),
        )?;
        out.push(SimModelSpec {
            name: name.to_string(),
            ttft,
            itl,
            output_tokens,
            engine: m.engine.clone(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::{Endpoint, PlanError, parse};
    use std::path::Path;
    use std::time::Duration;

    const PLAN: &str = r#"
[target]
model = "fast"
[target.simulator]
ttft = "20ms"
[[target.simulator.models]]
name = "slow"
ttft = "80ms"
[target.simulator.models.engine]
max_num_seqs = 4
[[target.simulator.models]]
name = "plain"
[[phase]]
kind = "constant"
rate = 10.0
duration = "2s"
"#;

    fn check(text: &str) -> Result<crate::Plan, PlanError> {
        parse(text, Path::new("p.toml"))?.validate(Path::new("p.toml"))
    }

    fn err(text: &str) -> String {
        check(text).unwrap_err().to_string()
    }

    #[test]
    fn extra_models_take_the_simulator_defaults() {
        let plan = check(PLAN).unwrap();
        let Endpoint::Simulator(spec) = &plan.target.endpoint else {
            panic!("simulator")
        };
        assert_eq!(plan.target.model, "fast");
        let names: Vec<_> = spec.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["slow", "plain"]);
        let slow = &spec.models[0];
        assert_eq!(slow.ttft, Duration::from_millis(80));
        assert_eq!(slow.itl, Duration::from_millis(5));
        assert_eq!(slow.output_tokens, 64);
        assert_eq!(slow.engine.as_ref().and_then(|e| e.max_num_seqs), Some(4));
        assert_eq!(spec.models[1].engine, None);
    }

    #[test]
    fn bad_extra_models_are_named() {
        for (from, to, key, value) in [
            (
                "name = \"plain\"",
                "name = \"slow\"",
                "target.simulator.models[1].name",
                "\"slow\"",
            ),
            (
                "name = \"plain\"",
                "name = \"fast\"",
                "target.simulator.models[1].name",
                "\"fast\"",
            ),
            (
                "name = \"plain\"",
                "name = \"\"",
                "target.simulator.models[1].name",
                "\"\"",
            ),
            (
                "name = \"plain\"",
                "output_tokens = 3",
                "target.simulator.models[1].name",
                "(missing)",
            ),
            (
                "max_num_seqs = 4",
                "max_num_seqs = 0",
                "target.simulator.models[0].engine.max_num_seqs",
                "0",
            ),
            (
                "name = \"plain\"",
                "name = \"plain\"\noutput_tokens = 0",
                "target.simulator.models[1].output_tokens",
                "0",
            ),
        ] {
            let e = err(&PLAN.replace(from, to));
            assert!(
                e.contains("p.toml") && e.contains(key) && e.contains(value),
                "{to}: {e}"
            );
        }
        let e = err(&PLAN.replace("name = \"plain\"", "name = \"plain\"\ntffT = \"1s\""));
        assert!(e.contains("tffT"), "{e}");
    }
}

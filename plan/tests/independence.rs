//! Agents and the simulator never link the plan: they get what they need over
//! the wire (stampede-common), so a change to the plan's schema or validation
//! cannot change what runs on a load-generating node. This test fails when
//! `agent/` or `sim/` gains a dependency on stampede-plan, directly (any
//! section of its `Cargo.toml`, renamed or not) or through another crate
//! (the resolved graph, as `cargo tree` prints it, dev-dependencies included).

use std::path::{Path, PathBuf};
use std::process::Command;

const PLAN: &str = "stampede-plan";
/// Directories of the crates that must stay free of the plan, and their packages.
const FREE: &[(&str, &str)] = &[("agent", "stampede-agent"), ("sim", "stampede-sim")];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the plan crate sits in the workspace")
        .to_path_buf()
}

/// Dotted paths of every key named `stampede-plan` or value `"stampede-plan"`.
fn mentions(value: &toml::Value, at: &str, found: &mut Vec<String>) {
    match value {
        toml::Value::String(s) if s == PLAN => found.push(at.to_string()),
        toml::Value::Table(t) => {
            for (k, v) in t {
                let path = format!("{at}.{k}");
                if k == PLAN {
                    found.push(path.clone());
                }
                mentions(v, &path, found);
            }
        }
        toml::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                mentions(v, &format!("{at}[{i}]"), found);
            }
        }
        _ => {}
    }
}

#[test]
fn agent_and_sim_manifests_do_not_name_the_plan() {
    for (dir, _) in FREE {
        let path = workspace().join(dir).join("Cargo.toml");
        let text = std::fs::read_to_string(&path).expect("read manifest");
        let manifest: toml::Value = toml::from_str(&text).expect("parse manifest");
        let mut found = Vec::new();
        mentions(&manifest, "", &mut found);
        assert!(
            found.is_empty(),
            "{} names {PLAN} at {found:?}: agents and the simulator must not link the plan",
            path.display()
        );
    }
}

#[test]
fn agent_and_sim_do_not_depend_on_the_plan_transitively() {
    for (_, package) in FREE {
        let out = Command::new(env!("CARGO"))
            .current_dir(workspace())
            .args(["tree", "--offline", "--package", package])
            .args(["--edges", "normal,build,dev", "--prefix", "none"])
            .args(["--format", "{p}"])
            .output()
            .expect("run cargo tree");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "cargo tree --package {package} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("{package} "))),
            "cargo tree printed no {package}: {stdout}"
        );
        let plan = format!("{PLAN} ");
        assert!(
            !stdout.lines().any(|l| l.starts_with(&plan)),
            "{package} depends on {PLAN}, directly or through another crate; \
             `cargo tree --invert {PLAN} --package {package} --edges normal,build,dev` shows the path"
        );
    }
}

//! Plan fragments: `include = ["scenarios/x.toml"]` at the top of a plan.
//!
//! Scenario presets (platform × hardware × deployment method × model) are plan fragments a
//! user includes and then overrides, so a plan states only what differs. Resolution happens
//! on the TOML tree before the plan schema sees it:
//! - paths are relative to the file that names them; included files may include others
//!   (at most [`MAX_DEPTH`] deep, cycles refused);
//! - fragments apply in the order listed, then the including file on top;
//! - tables merge key by key, recursively; any other value — a string, a number, an array,
//!   including arrays of tables such as `[[phase]]` — is replaced as a whole by the later
//!   file (so a plan that lists its own phases gets exactly those phases).
//!
//! A run stores the resolved plan (no `include` left), so its results directory does not
//! depend on the fragment files. Paths inside a fragment's values (datasets, certificates)
//! are read relative to the top plan, like every other plan path.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::PlanError;

/// How deep includes may nest.
pub const MAX_DEPTH: usize = 8;

const KEY: &str = "include";

/// Resolves the includes of the plan `text` read from `path`. Returns the merged tree, or
/// `None` when the plan includes nothing (so callers keep the text as written).
pub fn resolve(text: &str, path: &Path) -> Result<Option<Table>, PlanError> {
    resolve_table(parse_table(text, path)?, path)
}

/// [`resolve`] for a plan already parsed into a TOML table.
pub fn resolve_table(table: Table, path: &Path) -> Result<Option<Table>, PlanError> {
    if !table.contains_key(KEY) {
        return Ok(None);
    }
    let mut stack = vec![canonical(path)];
    expand(table, path, &mut stack).map(Some)
}

/// The plan text with its includes resolved: the text itself when it includes nothing.
pub fn flatten(text: &str, path: &Path) -> Result<String, PlanError> {
    match resolve(text, path)? {
        None => Ok(text.to_owned()),
        Some(table) => toml::to_string(&table).map_err(|e| PlanError::Parse {
            path: path.to_path_buf(),
            message: format!("cannot write the resolved plan: {e}"),
        }),
    }
}

fn parse_table(text: &str, path: &Path) -> Result<Table, PlanError> {
    text.parse::<Table>()
        .map_err(|e| PlanError::toml(path, Some(text), e))
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn invalid(path: &Path, value: impl std::fmt::Display, reason: impl Into<String>) -> PlanError {
    PlanError::Invalid {
        path: path.to_path_buf(),
        key: KEY.to_owned(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// The fragment paths named by `include` (a string or an array of strings).
fn targets(value: &Value, path: &Path) -> Result<Vec<String>, PlanError> {
    let strings = match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(invalid(path, other, "expected a file path (a string)")),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(invalid(
                path,
                other,
                "expected a file path or an array of file paths",
            ));
        }
    };
    if let Some(empty) = strings.iter().find(|s| s.trim().is_empty()) {
        return Err(invalid(path, format!("{empty:?}"), "empty file path"));
    }
    Ok(strings)
}

/// `table` (read from `path`) with its includes applied under it.
fn expand(mut table: Table, path: &Path, stack: &mut Vec<PathBuf>) -> Result<Table, PlanError> {
    let Some(value) = table.remove(KEY) else {
        return Ok(table);
    };
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut merged = Table::new();
    for target in targets(&value, path)? {
        let file = dir.join(&target);
        let key = canonical(&file);
        if stack.contains(&key) {
            return Err(invalid(
                path,
                format!("{target:?}"),
                format!("includes itself (through {})", show_chain(stack)),
            ));
        }
        if stack.len() > MAX_DEPTH {
            return Err(invalid(
                path,
                format!("{target:?}"),
                format!("includes nest deeper than {MAX_DEPTH} files"),
            ));
        }
        let text = std::fs::read_to_string(&file).map_err(|e| {
            invalid(
                path,
                format!("{target:?}"),
                format!("cannot read {}: {e}", file.display()),
            )
        })?;
        stack.push(key);
        let fragment = expand(parse_table(&text, &file)?, &file, stack)?;
        stack.pop();
        merge(&mut merged, fragment);
    }
    merge(&mut merged, table);
    Ok(merged)
}

fn show_chain(stack: &[PathBuf]) -> String {
    stack
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// Applies `over` on top of `base`: tables merge recursively, anything else is replaced.
fn merge(base: &mut Table, over: Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, text).expect("write");
        p
    }

    #[test]
    fn plan_without_include_is_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(dir.path(), "plan.toml", "[run]\nname = \"x\"\n");
        assert!(resolve("[run]\nname = \"x\"\n", &p).expect("ok").is_none());
        let text = "# comment kept\n[run]\nname = \"x\"\n";
        assert_eq!(flatten(text, &p).expect("ok"), text);
    }

    #[test]
    fn tables_merge_and_the_includer_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "scenarios/base.toml",
            r#"
[run]
name = "preset"
seed = 7
[target]
base_url = "http://gateway:80"
model = "llama-3b"
[[phase]]
name = "a"
[[phase]]
name = "b"
"#,
        );
        let text = r#"
include = "scenarios/base.toml"
[run]
name = "mine"
[[phase]]
name = "only"
"#;
        let p = write(dir.path(), "plan.toml", text);
        let t = resolve(text, &p).expect("ok").expect("includes");
        assert!(!t.contains_key("include"));
        assert_eq!(t["run"]["name"].as_str(), Some("mine"));
        assert_eq!(t["run"]["seed"].as_integer(), Some(7));
        assert_eq!(t["target"]["model"].as_str(), Some("llama-3b"));
        let phases = t["phase"].as_array().expect("phases");
        assert_eq!(phases.len(), 1, "arrays are replaced, not appended");
        assert_eq!(phases[0]["name"].as_str(), Some("only"));
    }

    #[test]
    fn fragments_apply_in_order_and_nest() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "f/inner.toml",
            "[run]\nseed = 1\nname = \"inner\"\n",
        );
        write(
            dir.path(),
            "f/outer.toml",
            "include = \"inner.toml\"\n[run]\nseed = 2\n",
        );
        write(dir.path(), "g.toml", "[run]\nseed = 3\nrepeat = 2\n");
        let text = "include = [\"f/outer.toml\", \"g.toml\"]\n";
        let p = write(dir.path(), "plan.toml", text);
        let t = resolve(text, &p).expect("ok").expect("includes");
        assert_eq!(t["run"]["seed"].as_integer(), Some(3));
        assert_eq!(t["run"]["name"].as_str(), Some("inner"));
        assert_eq!(t["run"]["repeat"].as_integer(), Some(2));
        let flat = flatten(text, &p).expect("flatten");
        assert!(!flat.contains("include"), "{flat}");
        assert_eq!(flat.parse::<Table>().expect("toml"), t);
    }

    #[test]
    fn errors_name_the_file_and_the_include() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(dir.path(), "plan.toml", "");
        let err = |text: &str| resolve(text, &p).expect_err("must fail").to_string();

        let e = err("include = \"missing.toml\"\n");
        assert!(e.contains("plan.toml") && e.contains("missing.toml"), "{e}");
        assert!(e.contains("`include`"), "{e}");

        let e = err("include = 3\n");
        assert!(e.contains("expected a file path"), "{e}");
        let e = err("include = [\"\"]\n");
        assert!(e.contains("empty file path"), "{e}");

        write(dir.path(), "bad.toml", "[run\n");
        let e = err("include = \"bad.toml\"\n");
        assert!(e.contains("bad.toml"), "{e}");

        write(dir.path(), "a.toml", "include = \"b.toml\"\n");
        write(dir.path(), "b.toml", "include = \"a.toml\"\n");
        let e = err("include = \"a.toml\"\n");
        assert!(e.contains("includes itself"), "{e}");
        assert!(e.contains("a.toml") && e.contains("b.toml"), "{e}");
    }

    #[test]
    fn nesting_is_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in 0..=MAX_DEPTH + 1 {
            write(
                dir.path(),
                &format!("n{i}.toml"),
                &format!("include = \"n{}.toml\"\n", i + 1),
            );
        }
        write(dir.path(), &format!("n{}.toml", MAX_DEPTH + 2), "");
        let p = write(dir.path(), "plan.toml", "");
        let e = resolve("include = \"n0.toml\"\n", &p)
            .expect_err("too deep")
            .to_string();
        assert!(e.contains("nest deeper"), "{e}");
    }
}

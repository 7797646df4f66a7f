//! The architecture's rules (docs/architecture.md), checked on the sources.
//!
//! The controller's layers import only downwards:
//! a module may name its own layer and the layers below it, never one above.
//! This test reads every source file under `src/` and fails on the first
//! `crate::<layer>` path that points up, naming the file, line and both layers.

use stampede_tests::source::{code_only, rust_files};
use std::collections::{BTreeMap, BTreeSet};

/// Bottom to top.
const LAYERS: &[&str] = &[
    "model",
    "analysis",
    "results",
    "outputs",
    "orchestrate",
    "run",
    "sweep",
    "cli",
];

fn rank(layer: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == layer)
}

/// The first segment of a path after `crate::`: one name, or each name of a
/// `{a::x, b}` group (which must close on the same line).
fn named_layers(rest: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let Some(group) = rest.strip_prefix('{') else {
        return vec![ident(rest)];
    };
    let mut names = Vec::new();
    let (mut depth, mut item_start) = (0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                names.push(ident(&group[item_start..i]));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                names.push(ident(&group[item_start..i]));
                item_start = i + 1;
            }
            _ => {}
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

/// Every upward import in one file, as messages.
fn violations(file: &str, layer: &str, src: &str) -> Vec<String> {
    let own = rank(layer).expect("a known layer");
    let mut found = Vec::new();
    for (n, line) in code_only(src).lines().enumerate() {
        for (at, _) in line.match_indices("crate::") {
            for name in named_layers(&line[at + "crate::".len()..]) {
                match rank(&name) {
                    Some(r) if r > own => found.push(format!(
                        "{file}:{}: layer `{layer}` imports `crate::{name}`, a layer above it",
                        n + 1
                    )),
                    Some(_) => {}
                    None => found.push(format!(
                        "{file}:{}: `crate::{name}` is not a layer ({})",
                        n + 1,
                        LAYERS.join(", ")
                    )),
                }
            }
        }
        if line.contains("super::super::") {
            found.push(format!(
                "{file}:{}: `super::super::` — cross modules with `crate::<layer>::` paths",
                n + 1
            ));
        }
    }
    found
}

#[test]
fn every_module_imports_only_its_own_layer_or_below() {
    let src = stampede_tests::workspace_root().join("controller/src");
    let files = rust_files(&src);
    let mut found = Vec::new();
    let mut checked = 0;
    for path in &files {
        let rel = path.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("a component");
        let first = first.as_os_str().to_str().expect("utf-8 path");
        let layer = match first {
            // The crate root declares the layers; main is the binary over `cli`.
            "lib.rs" | "main.rs" => continue,
            dir => dir.strip_suffix(".rs").unwrap_or(dir),
        };
        assert!(
            rank(layer).is_some(),
            "src/{} is outside every layer ({}); place it in one",
            rel.display(),
            LAYERS.join(", ")
        );
        let text = std::fs::read_to_string(path).expect("read source");
        found.extend(violations(&format!("src/{}", rel.display()), layer, &text));
        checked += 1;
    }
    assert!(
        checked > 50,
        "only {checked} files checked under {}",
        src.display()
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_check_finds_upward_imports_and_ignores_comments_and_strings() {
    let src = "use crate::model::RunSummary;\n\
               use crate::orchestrate::runner::Orchestrator;\n\
               // crate::cli::main in a comment\n\
               let s = \"crate::sweep in a string\";\n\
               fn f() -> crate::analysis::merge::Aggregate { todo!() }\n\
               use crate::{model::X, cli::{a, b}};\n\
               use super::super::x;\n";
    let found = violations("src/results/x.rs", "results", src);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].contains("src/results/x.rs:2:") && found[0].contains("crate::orchestrate"));
    assert!(found[1].contains(":6:") && found[1].contains("crate::cli"));
    assert!(found[2].contains(":7:") && found[2].contains("super::super"));
}

/// A controller module, as `layer/module` (or `layer` for a layer's own
/// `mod.rs`), for a production source file; `None` for test files.
fn module_of(rel: &std::path::Path) -> Option<String> {
    let stem = rel.with_extension("");
    let parts: Vec<&str> = stem
        .iter()
        .map(|c| c.to_str().expect("utf-8 path"))
        .collect();
    if parts.contains(&"tests") || matches!(parts[0], "lib" | "main") {
        return None;
    }
    Some(match parts.as_slice() {
        [layer] | [layer, "mod"] => (*layer).to_string(),
        [layer, module, ..] => format!("{layer}/{module}"),
        [] => return None,
    })
}

#[test]
fn controller_modules_form_no_import_cycle() {
    let src = stampede_tests::workspace_root().join("controller/src");
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in rust_files(&src) {
        let rel = path.strip_prefix(&src).expect("under src");
        let Some(module) = module_of(rel) else {
            continue;
        };
        let text = std::fs::read_to_string(&path).expect("read source");
        let code = stampede_tests::source::production_only(&code_only(&text));
        let entry = uses.entry(module).or_default();
        for (at, _) in code.match_indices("crate::") {
            let names: Vec<&str> = code[at + "crate::".len()..]
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or_default()
                .split("::")
                .take(2)
                .collect();
            entry.insert(names.join("/"));
        }
    }
    let modules: BTreeSet<String> = uses.keys().cloned().collect();
    // Depth-first search for a back edge; the cycle is the path from its target.
    fn visit(
        m: &str,
        uses: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if !done.insert(m.to_string()) {
            return None;
        }
        path.push(m.to_string());
        for next in uses.get(m).into_iter().flatten() {
            // `crate::layer::Type` names the layer; a module path names a module.
            let target = if uses.contains_key(next) {
                next.clone()
            } else {
                next.split('/').next().unwrap_or_default().to_string()
            };
            if target != m
                && uses.contains_key(&target)
                && let Some(c) = visit(&target, uses, path, done)
            {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for m in &modules {
        let cycle = visit(m, &uses, &mut Vec::new(), &mut done);
        assert!(
            cycle.is_none(),
            "import cycle: {}",
            cycle.unwrap().join(" → ")
        );
    }
    assert!(modules.len() > 40, "only {} modules found", modules.len());
}
/// The longest a production function may be, in lines.
const MAX_FN_LINES: usize = 120;
/// The longest a production source file may be, in lines (test code aside).
const MAX_FILE_LINES: usize = 900;

#[test]
fn production_functions_and_files_stay_small() {
    let root = stampede_tests::workspace_root();
    let mut found = Vec::new();
    let mut checked = 0;
    for krate in [
        "common",
        "rxtime",
        "runtime",
        "plan",
        "sim",
        "agent",
        "controller",
    ] {
        let src = root.join(krate).join("src");
        if !src.is_dir() {
            continue;
        }
        for path in rust_files(&src) {
            let rel = path.strip_prefix(&root).expect("under the workspace");
            // Test modules in files of their own.
            let is_test = rel.components().any(|c| c.as_os_str() == "tests")
                || rel.file_name().is_some_and(|n| n == "tests.rs");
            if is_test {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            let code = stampede_tests::source::production_only(&code_only(&text));
            let lines = code.lines().filter(|l| !l.trim().is_empty()).count();
            if lines > MAX_FILE_LINES {
                found.push(format!(
                    "{}: {lines} lines of production code (at most {MAX_FILE_LINES})",
                    rel.display()
                ));
            }
            for (name, line, len) in stampede_tests::source::functions(&code) {
                if len > MAX_FN_LINES {
                    found.push(format!(
                        "{}:{line}: fn {name} is {len} lines (at most {MAX_FN_LINES})",
                        rel.display()
                    ));
                }
            }
            checked += 1;
        }
    }
    assert!(
        checked > 100,
        "only {checked} files checked under {}",
        root.display()
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_size_check_sees_functions_and_skips_test_code() {
    let text = "fn short() {\n    let s = \"}\";\n}\n\
                #[cfg(test)]\nmod tests {\n    fn long() {\n\n\n\n    }\n}\n\
                fn decl();\nfn three(x: u8) -> u8 {\n    x\n}\n";
    let code = stampede_tests::source::production_only(&code_only(text));
    let fns = stampede_tests::source::functions(&code);
    assert_eq!(
        fns,
        vec![("short".to_string(), 1, 3), ("three".to_string(), 13, 3)]
    );
}

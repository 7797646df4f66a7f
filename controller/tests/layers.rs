//! The controller's layers import only downwards (docs/architecture.md):
//! a module may name its own layer and the layers below it, never one above.
//! This test reads every source file under `src/` and fails on the first
//! `crate::<layer>` path that points up, naming the file, line and both layers.

use std::path::{Path, PathBuf};

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

/// Source text with comments, string and char literals blanked out (line
/// breaks kept), so that only code is checked.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let blank = |out: &mut String, c: u8| out.push(if c == b'\n' { '\n' } else { ' ' });
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if b[i] == b'r' && (b[i..].starts_with(b"r#\"") || b[i..].starts_with(b"r\"")) {
            let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
            let end: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            i += 2 + hashes;
            while i < b.len() && !b[i..].starts_with(&end) {
                blank(&mut out, b[i]);
                i += 1;
            }
            i += end.len();
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                if i < b.len() {
                    blank(&mut out, b[i]);
                }
                i += 1;
            }
            i += 1;
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('x', '\n', '\u{..}'); lifetimes are left alone.
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
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

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_imports_only_its_own_layer_or_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
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

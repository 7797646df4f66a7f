//! `controller report` on a committed run directory gives byte-identical
//! outputs: stats.txt, summary.json, the CSVs, the HDR logs and the llm-d
//! reports. Any change to what a report says — a refactor that should not
//! change it, or a deliberate format change — shows here first. After a
//! deliberate change, `STAMPEDE_BLESS=1` rewrites the expected files.

use stampede_tests::{bin, workspace_root};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Files under `dir`, relative to it, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// The first line where `a` and `b` differ, for the failure message.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    a.lines()
        .zip(b.lines())
        .enumerate()
        .find(|(_, (x, y))| x != y)
        .map_or_else(
            || format!("lengths {} vs {}", a.len(), b.len()),
            |(i, (x, y))| format!("line {}:\n  expected {x}\n  got      {y}", i + 1),
        )
}

#[test]
fn a_committed_run_rebuilds_byte_for_byte() {
    let golden = workspace_root().join("tests/golden/report");
    let dir = tempfile::tempdir().unwrap();
    for name in ["plan.toml", "manifest.json", "windows.jsonl"] {
        std::fs::copy(golden.join(name), dir.path().join(name)).unwrap();
    }
    let status = Command::new(bin("controller"))
        .arg("report")
        .arg(dir.path())
        .output()
        .expect("controller report");
    assert!(status.status.success(), "{status:?}");
    let expected_dir = golden.join("expected");
    let bless = std::env::var_os("STAMPEDE_BLESS").is_some();
    let expected = files(&expected_dir);
    assert!(expected.len() >= 10, "expected files: {expected:?}");
    let mut differ = Vec::new();
    for rel in &expected {
        let want = std::fs::read(expected_dir.join(rel)).unwrap();
        let got = std::fs::read(dir.path().join(rel))
            .unwrap_or_else(|e| panic!("{} not rebuilt: {e}", rel.display()));
        if got != want {
            if bless {
                std::fs::write(expected_dir.join(rel), &got).unwrap();
            }
            differ.push(format!(
                "{}: {}",
                rel.display(),
                first_difference(&want, &got)
            ));
        }
    }
    assert!(
        bless || differ.is_empty(),
        "the rebuilt report differs (STAMPEDE_BLESS=1 rewrites after a deliberate change):\n{}",
        differ.join("\n")
    );
}

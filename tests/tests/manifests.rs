//! The Kubernetes manifests drive the real binaries: the plans shipped in
//! ConfigMaps must pass `controller validate`, and the container arguments
//! must be accepted by the binaries' command lines. `manifests/validate.sh`
//! checks the Kubernetes side offline; this checks the stampede side, so a
//! renamed flag or plan key fails here rather than in a cluster.

use stampede_tests::{Proc, bin, workspace_root};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where the pods mount the `controller certs` Secrets.
const TLS_MOUNT: &str = "/etc/stampede/tls/";

/// Every plan.toml under manifests/.
fn plans(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            plans(&path, found);
        } else if path.file_name().is_some_and(|n| n == "plan.toml") {
            found.push(path);
        }
    }
}

fn run(cmd: Command) -> (Option<i32>, String) {
    Proc::spawn(cmd).wait_exit(Duration::from_secs(30))
}

#[test]
fn shipped_plans_validate_with_certs_from_controller_certs() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    let mut certs = Command::new(bin("controller"));
    certs
        .args(["certs", "--host", "stampede-controller", "--out"])
        .arg(&tls);
    let (code, out) = run(certs);
    assert_eq!(code, Some(0), "{out}");

    let mut found = Vec::new();
    plans(&workspace_root().join("manifests"), &mut found);
    assert!(found.len() >= 2, "base and simulator plans: {found:?}");
    for plan in found {
        let text = std::fs::read_to_string(&plan).unwrap();
        assert!(
            text.contains(TLS_MOUNT),
            "{}: the pods mount the certificates at {TLS_MOUNT}",
            plan.display()
        );
        // The same files, where this test wrote them.
        let local = dir.path().join("plan.toml");
        let tls_dir = format!("{}/", tls.display());
        std::fs::write(&local, text.replace(TLS_MOUNT, &tls_dir)).unwrap();
        let mut validate = Command::new(bin("controller"));
        validate.arg("validate").arg(&local);
        let (code, out) = run(validate);
        assert_eq!(code, Some(0), "{}:\n{out}", plan.display());
        assert!(
            out.contains("remote agent(s)"),
            "{}:\n{out}",
            plan.display()
        );
    }
}

/// The `args:` lists of a manifest, by container (a small reader for our own
/// files: block lists of scalars, comments allowed).
fn container_args(yaml: &str) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    let mut lines = yaml.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() != "args:" {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let mut args = Vec::new();
        while let Some(next) = lines.peek() {
            let t = next.trim_start();
            if t.starts_with('#') {
                lines.next();
                continue;
            }
            if next.len() - t.len() < indent || !t.starts_with("- ") {
                break;
            }
            args.push(t[2..].trim().trim_matches('"').to_string());
            lines.next();
        }
        all.push(args);
    }
    all
}

#[test]
fn container_args_are_accepted_by_the_binaries() {
    let root = workspace_root().join("manifests");
    let cases = [
        ("base/agent.yaml", "agent"),
        ("base/controller.yaml", "controller"),
        ("components/simulator/sim.yaml", "stampede-sim"),
    ];
    for (file, binary) in cases {
        let yaml = std::fs::read_to_string(root.join(file)).unwrap();
        let lists = container_args(&yaml);
        assert_eq!(lists.len(), 1, "{file}: one args list, got {lists:?}");
        let args = &lists[0];
        assert!(args.len() >= 4, "{file}: {args:?}");
        // clap parses every flag and value up to --help and refuses an
        // unknown flag or a bad value with exit 2; --help itself exits 0.
        let mut cmd = Command::new(bin(binary));
        cmd.args(args).arg("--help");
        let (code, out) = run(cmd);
        assert_eq!(code, Some(0), "{file}: {binary} {args:?}:\n{out}");
        // The check bites: one misspelt flag is refused.
        let mut bad = args.clone();
        let flag = bad.iter().position(|a| a.starts_with("--")).unwrap();
        bad[flag].push('x');
        let mut cmd = Command::new(bin(binary));
        cmd.args(&bad).arg("--help");
        let (code, out) = run(cmd);
        assert_eq!(code, Some(2), "{file}: {binary} {bad:?}:\n{out}");
    }
}

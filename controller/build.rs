//! Records the git revision the controller is built from (for the run
//! manifest). Fails soft: outside a git checkout the revision is "unknown".
//! A build without the checkout (the container image) passes the revision in
//! `STAMPEDE_GIT_REVISION`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=STAMPEDE_GIT_REVISION");
    if let Ok(rev) = std::env::var("STAMPEDE_GIT_REVISION")
        && !rev.trim().is_empty()
    {
        println!("cargo:rustc-env=STAMPEDE_GIT_REVISION={}", rev.trim());
        return;
    }
    let rev = git(&["rev-parse", "HEAD"]).map_or_else(
        || "unknown".to_string(),
        |rev| match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(_) => format!("{rev}-dirty"),
            None => rev,
        },
    );
    println!("cargo:rustc-env=STAMPEDE_GIT_REVISION={rev}");
    // Rebuild when HEAD moves (commit, checkout); worktrees keep HEAD apart.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/logs/HEAD");
    }
    println!("cargo:rerun-if-changed=build.rs");
}

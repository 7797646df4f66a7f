//! An API key given to a run never lands in its results or its output: the
//! plan names the environment variable, agents read it, and the manifest's
//! environment copy redacts it.

use stampede_tests::{Proc, bin, plan_file};
use std::process::Command;
use std::time::Duration;

const SECRET: &str = "sk-stampede-test-9f8e7d6c5b4a";

#[test]
fn api_key_appears_in_no_output_file_and_no_log() {
    let plan = r#"
[run]
name = "secret"
[agents]
local = 2
[target]
api_key_env = "STAMPEDE_TEST_API_KEY"
[target.simulator]
ttft = "2ms"
itl = "1ms"
output_tokens = 4
[request]
max_tokens = 4
[[phase]]
kind = "constant"
rate = 20.0
duration = "2s"
"#;
    let (dir, path) = plan_file(plan);
    let out = dir.path().join("run");
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .env("STAMPEDE_TEST_API_KEY", SECRET)
        .env("RUST_LOG", "debug");
    let (code, output) = Proc::spawn(cmd).wait_exit(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{output}");
    assert!(
        !output.contains(SECRET),
        "the key is in the controller's output"
    );

    let mut files = 0;
    let mut stack = vec![out.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            files += 1;
            let hay = String::from_utf8_lossy(&bytes);
            assert!(!hay.contains(SECRET), "the key is in {}", path.display());
        }
    }
    assert!(files >= 5, "only {files} result files");
    // The manifest does record that the variable exists (redacted), so the
    // check above looked where a leak would be.
    let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    assert!(manifest.contains("STAMPEDE_TEST_API_KEY"), "{manifest}");
}

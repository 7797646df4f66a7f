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

/// Only the variables that shape a run are recorded; the value of a variable
/// the plan names is written nowhere, whatever its name; credentials in URLs
/// (a proxy, a metrics page) are redacted wherever a URL is recorded.
#[test]
fn environment_is_recorded_by_allowlist_and_no_credential_is_written() {
    const KEY: &str = "sk-ordinary-name-5a4b3c";
    const DB_PASS: &str = "db-pass-7e6d";
    const PROXY_PASS: &str = "proxy-pass-1f2e";
    const SCRAPE_PASS: &str = "scrape-pass-3c4d";
    let plan = format!(
        r#"
[run]
name = "allowlist"
[agents]
local = 1
[target]
api_key_env = "LLM_BEARER"
[target.simulator]
ttft = "2ms"
itl = "1ms"
output_tokens = 4
[request]
max_tokens = 4
[server_metrics]
urls = ["http://metrics:{SCRAPE_PASS}@127.0.0.1:1/metrics"]
[[phase]]
kind = "constant"
rate = 10.0
duration = "1s"
"#
    );
    let (dir, path) = plan_file(&plan);
    let out = dir.path().join("run");
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .env("LLM_BEARER", KEY)
        .env("STAMPEDE_CARRIES_THE_KEY", format!("x-{KEY}"))
        .env("DATABASE_URL", format!("postgres://app:{DB_PASS}@db/app"))
        .env("HTTPS_PROXY", format!("http://me:{PROXY_PASS}@127.0.0.1:9"))
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("RUST_LOG", "debug");
    let (code, output) = Proc::spawn(cmd).wait_exit(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{output}");
    for secret in [KEY, DB_PASS, PROXY_PASS, SCRAPE_PASS] {
        assert!(
            !output.contains(secret),
            "{secret} in the output:\n{output}"
        );
        for path in files_under(&out) {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            assert!(!text.contains(secret), "{secret} in {}", path.display());
        }
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let env = manifest["environment"].as_object().unwrap();
    assert!(!env.contains_key("DATABASE_URL"), "{env:?}");
    assert!(!env.contains_key("LLM_BEARER"), "{env:?}");
    assert_eq!(env["HTTPS_PROXY"], "http://<redacted>@127.0.0.1:9");
    assert_eq!(env["STAMPEDE_CARRIES_THE_KEY"], "<redacted>");
    assert_eq!(env["RUST_LOG"], "debug");
    let raw = std::fs::read_to_string(out.join("windows.jsonl")).unwrap();
    assert!(
        raw.contains("http://<redacted>@127.0.0.1:1/metrics"),
        "the failed scrape is recorded, redacted"
    );
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 5, "only {} result files", files.len());
    files
}

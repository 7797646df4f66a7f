//! The `stampede-sim` binary: startup line, serving, SIGTERM shutdown, bad flags.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_stampede-sim");

#[tokio::test]
async fn prints_address_serves_and_stops_on_sigterm() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--ttft", "2ms", "--itl", "1ms"])
        .args(["--output-tokens", "4", "--model", "bin-model"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn stampede-sim");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("join")
    .expect("read line");
    let url = line
        .trim_end()
        .strip_prefix("stampede-sim listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "{url}"
    );

    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let v: serde_json::Value = client
        .post(format!("{url}/v1/completions"))
        .json(&serde_json::json!({"model": "bin-model", "prompt": "hi"}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(v["usage"]["completion_tokens"], 4);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || {
        for _ in 0..500 {
            if let Some(status) = child.try_wait().expect("wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        None
    })
    .await
    .expect("join");
    let status = status.expect("exits within 5 s after SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn bad_flags_exit_with_2() {
    for args in [
        &["--ttft", "soon"][..],
        &["--listen", "not-an-address"],
        &["--output-tokens", "0"],
        &["--bogus"],
    ] {
        let out = Command::new(BIN).args(args).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

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

#[test]
fn config_file_is_read_and_flags_override_it() {
    let dir = std::env::temp_dir().join(format!("stampede-sim-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "listen = \"127.0.0.1:0\"\nmodel = \"file-model\"\n[engine]\nmax_num_seqs = 4\n[faults]\nerror_503 = 1.0\n",
    )
    .expect("write");
    let mut child = Command::new(BIN)
        .args(["--config", good.to_str().expect("utf8"), "--fault-503", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("line");
    let url = line.trim_end().replace("stampede-sim listening on ", "");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (status, faults) = rt.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let c = reqwest::Client::new();
        let status = c
            .post(format!("{url}/v1/completions"))
            .json(&serde_json::json!({"model": "file-model", "prompt": "hi", "max_tokens": 1}))
            .send()
            .await
            .expect("send")
            .status();
        let faults: serde_json::Value = c
            .get(format!("{url}/sim/faults"))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        (status, faults)
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200, "the flag turned the file's 503 rate off");
    assert_eq!(faults["error_503"], 0.0);

    for (name, text, args) in [
        ("typo.toml", "tfft = \"1ms\"\n", &[][..]),
        ("rate.toml", "[faults]\nhang = 2.0\n", &[]),
        ("ok.toml", "", &["--step-base", "1ms"]), // engine flag without the engine
        ("ok2.toml", "", &["--jitter", "1.5"]),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        let out = Command::new(BIN)
            .args([
                "--config",
                path.to_str().expect("utf8"),
                "--listen",
                "127.0.0.1:0",
            ])
            .args(args)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{name} {args:?}");
        assert!(out.stdout.is_empty(), "{name}");
        assert!(!out.stderr.is_empty(), "{name}");
    }
    let missing = Command::new(BIN)
        .args(["--config", "/nonexistent/stampede.toml"])
        .output()
        .expect("run");
    assert_eq!(missing.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

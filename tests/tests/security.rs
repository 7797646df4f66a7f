//! mTLS and the join token between agents and the controller, with real
//! processes on loopback: certificates from `controller certs`, a run that
//! succeeds over mTLS with the token, and every refusal — no client
//! certificate, a certificate from another CA, a wrong or missing token, a
//! plaintext agent — ending the agent with a non-zero exit code and the
//! reason. Plaintext beyond loopback is refused on both sides.

use stampede_tests::{Proc, bin, start_remote_controller};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Run `controller certs --out DIR`; returns DIR.
fn certs(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("certs").arg("--out").arg(&out);
    let (code, text) = Proc::spawn(cmd).wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{text}");
    out
}

fn plan(dir: &Path, remote: u32) -> PathBuf {
    let text = format!(
        r#"
[run]
name = "mtls"
window = "500ms"
[agents]
remote = {remote}
join_timeout = "90s"
tls = {{ ca = "certs/ca.pem", cert = "certs/controller.pem", key = "certs/controller.key" }}
join_token_file = "certs/join-token"
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
"#
    );
    let path = dir.join("plan.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// An agent command for `url`; `tls` is the directory of its CA, cert and key.
fn agent(url: &str, id: &str, ca: Option<&Path>, identity: Option<&Path>) -> Command {
    let mut cmd = Command::new(bin("agent"));
    cmd.args(["--controller", url, "--id", id, "--give-up-after", "20s"])
        .env_remove("STAMPEDE_JOIN_TOKEN");
    if let Some(ca) = ca {
        cmd.arg("--ca").arg(ca.join("ca.pem"));
    }
    if let Some(dir) = identity {
        cmd.arg("--cert")
            .arg(dir.join("agent.pem"))
            .arg("--key")
            .arg(dir.join("agent.key"));
    }
    cmd
}

fn refused(mut cmd: Command, why: &str) {
    let (code, out) = Proc::spawn({
        cmd.env("RUST_LOG", "warn");
        cmd
    })
    .wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("refused this agent") && out.contains(why),
        "{out}"
    );
}

#[test]
fn a_run_over_mtls_with_the_token_succeeds_and_strangers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ours = certs(dir.path(), "certs");
    let theirs = certs(dir.path(), "other");
    let token = std::fs::read_to_string(ours.join("join-token")).unwrap();
    let path = plan(dir.path(), 2);
    let out = dir.path().join("run");
    let (mut controller, url) = start_remote_controller(&path, &out);
    assert!(url.starts_with("https://"), "{url}");

    // Refusals, each ending the agent at once with the reason.
    let mut no_cert = agent(&url, "x1", Some(&ours), None);
    no_cert
        .arg("--join-token-file")
        .arg(ours.join("join-token"));
    refused(no_cert, "no client certificate");

    let mut foreign = agent(&url, "x2", Some(&ours), Some(&theirs));
    foreign
        .arg("--join-token-file")
        .arg(ours.join("join-token"));
    refused(foreign, "client certificate not accepted");

    let mut distrusting = agent(&url, "x3", Some(&theirs), Some(&ours));
    distrusting
        .arg("--join-token-file")
        .arg(ours.join("join-token"));
    refused(distrusting, "invalid peer certificate");

    let mut wrong_token = agent(&url, "x4", Some(&ours), Some(&ours));
    wrong_token
        .arg("--join-token-file")
        .arg(theirs.join("join-token"));
    refused(wrong_token, "wrong join token");

    refused(agent(&url, "x5", Some(&ours), Some(&ours)), "no join token");

    let mut plaintext = agent(&url.replace("https://", "http://"), "x6", None, None);
    plaintext.env("STAMPEDE_JOIN_TOKEN", token.trim());
    refused(plaintext, "requires TLS");

    // Two real agents: the token from a file and from the environment.
    let mut a = agent(&url, "a", Some(&ours), Some(&ours));
    a.arg("--join-token-file").arg(ours.join("join-token"));
    let mut b = agent(
        &url.replace("127.0.0.1", "localhost"),
        "b",
        Some(&ours),
        Some(&ours),
    );
    b.env("STAMPEDE_JOIN_TOKEN", token.trim());
    let mut agents = [Proc::spawn(a), Proc::spawn(b)];

    let (code, output) = controller.wait_exit(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{output}");
    for name in ["x1", "x2", "x3", "x4", "x5", "x6"] {
        assert!(
            !output.contains(&format!("agent {name} joined")),
            "{output}"
        );
    }
    assert!(output.contains("refused an agent connection"), "{output}");
    for p in &mut agents {
        let (code, text) = p.wait_exit(Duration::from_secs(30));
        assert_eq!(code, Some(0), "{text}");
        assert!(
            !text.contains(token.trim()),
            "the token is in an agent's output"
        );
    }
    assert!(
        !output.contains(token.trim()),
        "the token is in the controller's output"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let r = &summary["phases"][0]["requests"];
    assert_eq!(r["sent"].as_u64(), Some(40), "{summary:#}");
    assert_eq!(r["ok"].as_u64(), Some(40), "{summary:#}");
    assert_eq!(summary["agents"].as_array().map(Vec::len), Some(2));
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            assert!(
                !text.contains(token.trim()),
                "the token is in {}",
                path.display()
            );
            assert!(
                !text.contains("PRIVATE KEY"),
                "a key is in {}",
                path.display()
            );
        }
    }
    // `controller report` rebuilds the run without the certificate files.
    let mut report = Command::new(bin("controller"));
    report.arg("report").arg(&out);
    let (code, text) = Proc::spawn(report).wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn a_controller_refuses_plaintext_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.toml");
    std::fs::write(
        &path,
        "[agents]\nremote = 1\n[target]\nurl = \"http://127.0.0.1:9\"\nmodel = \"m\"\n[[phase]]\nkind = \"baseline\"\nduration = \"1s\"\n",
    )
    .unwrap();
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("run")
        .arg(&path)
        .arg("--out")
        .arg(dir.path().join("run"))
        .args(["--listen", "0.0.0.0:0"]);
    let (code, out) = Proc::spawn(cmd).wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("refusing to serve agents in plaintext on 0.0.0.0:0")
            && out.contains("agents.tls"),
        "{out}"
    );
    assert!(
        !dir.path().join("run").exists(),
        "a refused run left a directory"
    );
}

#[test]
fn an_agent_refuses_plaintext_beyond_loopback_and_half_tls() {
    // 192.0.2.0/24 is TEST-NET-1: never dialed, the agent refuses first.
    let (code, out) = Proc::spawn(agent("http://192.0.2.1:7600", "p", None, None))
        .wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("refusing to dial http://192.0.2.1:7600 in plaintext")
            && out.contains("--allow-plaintext"),
        "{out}"
    );
    let (code, out) = Proc::spawn(agent("https://127.0.0.1:7600", "p", None, None))
        .wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("no --ca"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("token");
    std::fs::write(&short, "tiny").unwrap();
    let mut cmd = agent("http://127.0.0.1:7600", "p", None, None);
    cmd.arg("--join-token-file").arg(&short);
    let (code, out) = Proc::spawn(cmd).wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("at least 16") && !out.contains("tiny\n"),
        "{out}"
    );
}

//! The agent binary raises its soft open-files limit to the hard limit at
//! start: each request in flight holds a connection, and a soft limit of a
//! few hundred would cap its concurrency.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// (soft, hard) "Max open files" of a process, from `/proc/<pid>/limits`.
fn open_files(pid: u32) -> Option<(String, String)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line["Max open files".len()..].split_whitespace();
    Some((fields.next()?.to_string(), fields.next()?.to_string()))
}

#[test]
fn the_agent_starts_with_its_soft_open_files_limit_at_the_hard_one() {
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
    if hard.is_some_and(|h| h <= 256) {
        eprintln!("skipped: the hard open-files limit ({hard:?}) leaves nothing to raise");
        return;
    }
    // The shell lowers its soft limit and becomes the agent. No controller
    // listens on port 1: the agent keeps dialing until killed.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "ulimit -Sn 256 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_agent"))
        .args(["--controller", "http://127.0.0.1:1", "--id", "limits"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("start the agent");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = None;
    while Instant::now() < deadline {
        // Until the shell has become the agent, its limits are not the agent's.
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", child.id()));
        if comm.is_ok_and(|c| c.trim() == "agent") {
            seen = open_files(child.id());
        }
        if seen.as_ref().is_some_and(|(soft, hard)| soft == hard) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let (soft, hard) = seen.expect("the agent's /proc limits");
    assert_eq!(
        soft, hard,
        "the agent kept a soft limit of {soft} under {hard}"
    );
    assert_ne!(soft, "256");
}

//! An agent whose controller is not there retries with capped, jittered
//! backoff and gives up with a clear error after the configured time.

use stampede_tests::{Proc, bin};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

#[test]
fn gives_up_after_the_configured_time_with_a_clear_error() {
    // A port with nothing listening: bind, read the port, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut cmd = Command::new(bin("agent"));
    cmd.args(["--controller", &url, "--give-up-after", "2s"]);
    let started = Instant::now();
    let (code, out) = Proc::spawn(cmd).wait_exit(Duration::from_secs(30));
    let took = started.elapsed();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("unreachable") && out.contains(&url), "{out}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "gave up after {took:?}"
    );
}

#[test]
fn retries_are_spaced_by_backoff_not_a_busy_loop() {
    // A "controller" that accepts TCP and hangs up at once: every attempt fails
    // after connecting, so the attempts counted are the agent's retry schedule.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let attempts = Arc::new(AtomicU32::new(0));
    std::thread::spawn({
        let attempts = attempts.clone();
        move || {
            for conn in listener.incoming() {
                attempts.fetch_add(1, Ordering::Relaxed);
                drop(conn);
            }
        }
    });
    let mut cmd = Command::new(bin("agent"));
    cmd.args(["--controller", &url, "--give-up-after", "3s"]);
    let (code, out) = Proc::spawn(cmd).wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(1), "{out}");
    let n = attempts.load(Ordering::Relaxed);
    // Delays drawn from [d/2, d] with d = 100 ms · 2ⁿ (cap 5 s): 3 s allows
    // about 5–7 attempts, each of which may open two TCP connections (the
    // dial, then the channel's reconnect for the session call). A loop without
    // backoff would make hundreds.
    assert!((3..=24).contains(&n), "{n} TCP connections in 3 s\n{out}");
}

#[test]
fn sigterm_ends_the_agent_gracefully() {
    // What Kubernetes sends a pod being deleted: the agent stops its work and exits 0
    // instead of dying by the signal.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(bin("agent"));
    cmd.args(["--controller", &format!("http://127.0.0.1:{port}")])
        .args(["--give-up-after", "60s"])
        .env("RUST_LOG", "debug");
    let mut agent = Proc::spawn(cmd);
    agent.wait_for_line("retrying", Duration::from_secs(20));
    let status = Command::new("kill")
        .args(["-TERM", &agent.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let started = Instant::now();
    let (code, out) = agent.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{out}");
    assert!(started.elapsed() < Duration::from_secs(5), "{out}");
}

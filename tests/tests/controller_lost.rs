//! A controller can be lost *without its connection being closed*: its
//! process is frozen (SIGSTOP, a stalled VM) and its kernel keeps the socket
//! open, or its host is cut off by the network and nothing answers at all.
//! `faults.rs` covers the easy case, a killed controller, whose kernel closes
//! the connection at once. Here the agent gets no such sign and must notice
//! on its own, and its dead-man's switch (`agents.halt_after`,
//! docs/protocol.md, "The dead-man's switch") must then stop the load, so a
//! lost controller leaves nothing running against the target.
//!
//! - A frozen controller: the switch fires within 12 s of the SIGSTOP, and the
//!   simulator's own count shows no request started after it.
//! - A controller cut off by a real partition: the test builds two network
//!   namespaces of its own joined by a veth pair (the controller in one, the
//!   simulator and the agent in the other) and takes the link down, with
//!   windows gathered ten to a message so that no report is due for seconds.
//!   The switch fires within 9 s of the cut. Without user and network
//!   namespaces on the machine, this case says so and is skipped.

use stampede_tests::{Proc, bin, plan_file, remote_agent, sim_requests_started, start_sim};
use std::process::Command;
use std::time::{Duration, Instant};

/// What the agent logs when its dead-man's switch stops a phase's load.
const SWITCH: &str = "dead-man's switch";

/// Every line `p` printed so far, without waiting.
fn lines(p: &mut Proc) -> &[String] {
    p.wait_for_count("", 0, Duration::ZERO)
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(n)..].join("\n")
}

/// Poll `done` every 50 ms for at most `limit`; the time it took.
fn poll(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if done() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A plan of one remote agent and one 40 s phase at 20 req/s, with the
/// dead-man's switch at 2 s.
fn plan(name: &str, target: &str, run_extra: &str, agents_extra: &str) -> String {
    format!(
        r#"
[run]
name = "{name}"
{run_extra}
[agents]
remote = 1
halt_after = "2s"
{agents_extra}
[target]
url = "{target}"
model = "stampede-sim"
[request]
max_tokens = 8
timeout = "2s"
[[phase]]
name = "long"
kind = "constant"
rate = 20.0
duration = "40s"
"#
    )
}

#[test]
fn a_frozen_controller_is_noticed_and_its_load_stops() {
    let (_sim, sim_url) = start_sim(&["--ttft", "5ms", "--itl", "1ms", "--output-tokens", "8"]);
    let plan = plan("frozen-controller", &sim_url, "window = \"500ms\"", "");
    let (dir, path) = plan_file(&plan);
    let (mut controller, url) =
        stampede_tests::start_remote_controller(&path, &dir.path().join("run"));
    let mut agent = remote_agent(&url, "a", &["--give-up-after", "60s"]);
    let running = poll(Duration::from_secs(60), || {
        sim_requests_started(&sim_url) >= 20
    });
    assert!(
        running.is_some(),
        "the phase never got going: {} requests started\nagent:\n{}\ncontroller:\n{}",
        sim_requests_started(&sim_url),
        tail(&lines(&mut agent).join("\n"), 30),
        tail(&lines(&mut controller).join("\n"), 30)
    );
    let early = lines(&mut agent).join("\n");
    assert!(
        !early.contains(SWITCH),
        "halted before the freeze:\n{early}"
    );

    // Frozen: its kernel keeps the connection open and acknowledges bytes,
    // but nothing in the process answers.
    controller.signal("-STOP");
    let frozen = Instant::now();
    let halted = poll(Duration::from_secs(30), || {
        lines(&mut agent).iter().any(|l| l.contains(SWITCH))
    });
    let at_halt = sim_requests_started(&sim_url);
    let log = lines(&mut agent).join("\n");
    let Some(halted) = halted else {
        panic!(
            "no {SWITCH:?} line {:.1} s after the controller froze; agent:\n{}",
            frozen.elapsed().as_secs_f64(),
            tail(&log, 40)
        );
    };
    eprintln!(
        "frozen controller: freeze -> halt {:.2} s",
        halted.as_secs_f64()
    );
    assert!(
        halted <= Duration::from_secs(12),
        "the switch took {halted:?} after the freeze (at most 12 s); agent:\n{}",
        tail(&log, 40)
    );

    // Requests in flight at the switch end within milliseconds (2 s at
    // most); none starts after it while the controller stays frozen.
    std::thread::sleep(Duration::from_secs(3));
    let settled = sim_requests_started(&sim_url);
    std::thread::sleep(Duration::from_secs(3));
    let later = sim_requests_started(&sim_url);
    let log = lines(&mut agent).join("\n");
    assert_eq!(
        later,
        settled,
        "requests still started 3-6 s after the switch; agent:\n{}",
        tail(&log, 40)
    );
    assert!(
        settled - at_halt <= 3,
        "{} requests started after the switch line ({at_halt} -> {settled}); agent:\n{}",
        settled - at_halt,
        tail(&log, 40)
    );
    assert!(!log.contains("panicked"), "{log}");

    controller.signal("-CONT");
    controller.child.kill().expect("kill the controller");
    controller.child.wait().expect("reap the controller");
}

/// Run by `unshare` as PID 1 of its own user, network, PID and mount
/// namespaces ("A"): it makes namespace B, joins A and B with a veth pair,
/// starts the simulator and the agent in A and the controller in B, logs to
/// files in `$D`, takes the link down when `$D/cut` appears, then waits to
/// be killed. When it dies, so does every process in its PID namespace.
const NAMESPACES_SH: &str = r#"set -eu
ip link set lo up
unshare -n sleep 300 &
B=$!
n=0
until [ "$(readlink /proc/$B/ns/net)" != "$(readlink /proc/self/ns/net)" ]; do
  n=$((n + 1)); [ "$n" -lt 100 ] || { echo "namespace B never appeared" >&2; exit 1; }
  sleep 0.05
done
ip link add v0 type veth peer name v1
ip link set v1 netns "$B"
ip addr add 10.77.0.1/30 dev v0
ip link set v0 up
nsenter -t "$B" -n sh -c 'ip link set lo up && ip addr add 10.77.0.2/30 dev v1 && ip link set v1 up'
echo "namespaces ready"
"$SIM" --listen 127.0.0.1:18000 --ttft 5ms --itl 1ms --output-tokens 8 >"$D/sim.log" 2>&1 &
nsenter -t "$B" -n "$CONTROLLER" run "$D/plan.toml" --out "$D/run" --listen 10.77.0.2:7600 \
  >"$D/controller.log" 2>&1 &
n=0
until grep -q "controller listening on" "$D/controller.log"; do
  n=$((n + 1)); [ "$n" -lt 1200 ] || { echo "the controller never listened" >&2; exit 1; }
  sleep 0.05
done
"$AGENT" --controller http://10.77.0.2:7600 --id a --allow-plaintext --give-up-after 60s \
  >"$D/agent.log" 2>&1 &
echo "started"
n=0
until [ -e "$D/cut" ]; do
  n=$((n + 1)); [ "$n" -lt 2400 ] || { echo "never told to cut" >&2; exit 1; }
  sleep 0.05
done
ip link set v0 down
echo "link cut"
sleep 120
"#;

/// The run of [`NAMESPACES_SH`]: its output, and its processes' logs.
struct Partition {
    /// `unshare`; dropping it kills the script, and with it the namespace's
    /// every process (`--kill-child`, PID namespace), also on a failed
    /// assertion.
    script: Proc,
    dir: tempfile::TempDir,
}

impl Partition {
    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// The script's output and the tail of every log, for a failure message.
    fn logs(&mut self) -> String {
        let script = lines(&mut self.script).join("\n");
        let mut text = format!("script:\n{script}");
        for name in ["agent.log", "controller.log", "sim.log"] {
            text += &format!("\n{name}:\n{}", tail(&self.log(name), 30));
        }
        text
    }

    /// Wait for the script to print `needle`; `false` if it exited first.
    fn await_script(&mut self, needle: &str, limit: Duration) -> bool {
        let printed = |p: &mut Proc| lines(p).iter().any(|l| l.contains(needle));
        let ok = poll(limit, || {
            printed(&mut self.script) || self.script.child.try_wait().ok().flatten().is_some()
        });
        assert!(
            ok.is_some(),
            "no {needle:?} within {limit:?}\n{}",
            self.logs()
        );
        if printed(&mut self.script) {
            return true;
        }
        // It exited: every line it wrote, then.
        let (_, output) = self.script.wait_exit(Duration::from_secs(5));
        output.contains(needle)
    }

    /// Wait for a line containing `needle` in the log `name`; the time it took.
    fn await_log(&self, name: &str, needle: &str, limit: Duration) -> Option<Duration> {
        let path = self.dir.path().join(name);
        poll(limit, || {
            std::fs::read_to_string(&path).is_ok_and(|t| t.contains(needle))
        })
    }
}

/// Start [`NAMESPACES_SH`] with a plan for the controller; `None` (having
/// said why) when this machine cannot make the namespaces.
fn partition() -> Option<Partition> {
    if let Err(e) = Command::new("unshare").arg("--version").output() {
        eprintln!("SKIPPED a_controller_cut_off_by_the_network: no unshare(1): {e}");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // Windows gathered ten to a message: no report is due for seconds.
    let plan = plan(
        "cut-off-controller",
        "http://127.0.0.1:18000",
        "window = \"1s\"\nreport_every = \"10s\"",
        "allow_plaintext = true",
    );
    std::fs::write(dir.path().join("plan.toml"), plan).expect("write plan");
    let script = dir.path().join("namespaces.sh");
    std::fs::write(&script, NAMESPACES_SH).expect("write script");
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "--net", "--pid", "--fork"])
        .args(["--kill-child", "--mount-proc", "sh"])
        .arg(&script)
        .env("D", dir.path())
        .env("SIM", bin("stampede-sim"))
        .env("CONTROLLER", bin("controller"))
        .env("AGENT", bin("agent"));
    let mut net = Partition {
        script: Proc::spawn(cmd),
        dir,
    };
    if !net.await_script("namespaces ready", Duration::from_secs(30)) {
        eprintln!(
            "SKIPPED a_controller_cut_off_by_the_network: cannot make user and network \
             namespaces joined by a veth pair here (unshare -rn, ip link add ... type veth):\n{}",
            lines(&mut net.script).join("\n")
        );
        return None;
    }
    Some(net)
}

#[test]
fn a_controller_cut_off_by_the_network_is_noticed_within_seconds() {
    let Some(mut net) = partition() else {
        return;
    };
    assert!(
        net.await_script("started", Duration::from_secs(60)),
        "the script failed\n{}",
        net.logs()
    );
    // The first message of ten windows has reached the controller: the phase
    // runs and the session works; the next message is 10 s away.
    let reported = net.await_log("controller.log", "  long [", Duration::from_secs(60));
    assert!(
        reported.is_some(),
        "no window report reached the controller\n{}",
        net.logs()
    );
    assert!(
        !net.log("agent.log").contains(SWITCH),
        "halted before the cut\n{}",
        net.logs()
    );

    std::fs::write(net.dir.path().join("cut"), "").expect("write the cut trigger");
    let cut = Instant::now();
    let halted = net.await_log("agent.log", SWITCH, Duration::from_secs(30));
    let Some(halted) = halted else {
        panic!(
            "no {SWITCH:?} line {:.1} s after the cut\n{}",
            cut.elapsed().as_secs_f64(),
            net.logs()
        );
    };
    eprintln!(
        "controller cut off by the network: cut -> halt {:.2} s",
        halted.as_secs_f64()
    );
    assert!(
        net.await_script("link cut", Duration::from_secs(5)),
        "the link was not taken down\n{}",
        net.logs()
    );
    assert!(
        halted <= Duration::from_secs(9),
        "the switch took {halted:?} after the cut (at most 9 s)\n{}",
        net.logs()
    );
    let agent = net.log("agent.log");
    assert!(!agent.contains("panicked"), "{agent}");
}

//! A 10-second network cut between an agent and the controller, mid-phase:
//! the agent keeps its load going, reconnects, resends what was not
//! acknowledged, and the run ends with nothing lost or counted twice —
//! sent = ok + Σ errors, and ok equals what the simulator served. Once with
//! each window sent alone, once with windows gathered four to a message
//! (`run.report_every`), where the cut also catches windows still gathering.

use stampede_tests::{Proc, bin, get_json, plan_file, start_sim};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A TCP proxy that can cut every connection and refuse new ones.
struct Proxy {
    addr: String,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c, k) = (cut.clone(), conns.clone());
        std::thread::spawn(move || {
            for down in listener.incoming().map_while(Result::ok) {
                if c.load(Ordering::SeqCst) {
                    drop(down);
                    continue;
                }
                let Ok(up) = TcpStream::connect(&upstream) else {
                    continue;
                };
                for s in [&down, &up] {
                    if let Ok(s) = s.try_clone() {
                        k.lock().unwrap().push(s);
                    }
                }
                pipe(down.try_clone().unwrap(), up.try_clone().unwrap());
                pipe(up, down);
            }
        });
        Proxy { addr, cut, conns }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

#[test]
fn ten_second_cut_loses_and_doubles_nothing() {
    cut_for_ten_seconds("");
}

#[test]
fn ten_second_cut_loses_and_doubles_nothing_with_windows_gathered() {
    cut_for_ten_seconds("report_every = \"2s\"");
}

fn cut_for_ten_seconds(run_extra: &str) {
    let (_sim, sim_url) = start_sim(&["--ttft", "5ms", "--itl", "1ms", "--output-tokens", "8"]);
    let plan = format!(
        r#"
[run]
name = "cut"
window = "500ms"
{run_extra}
[agents]
remote = 2
reconnect_grace = "40s"
# Through a cut this long the agent keeps its load going.
halt_after = "30s"
[target]
url = "{sim_url}"
model = "stampede-sim"
[request]
max_tokens = 8
timeout = "10s"
[[phase]]
kind = "constant"
rate = 20.0
duration = "16s"
"#
    );
    let (dir, path) = plan_file(&plan);
    let out = dir.path().join("run");
    let (mut controller, addr) = stampede_tests::start_remote_controller(&path, &out);
    let upstream = addr.trim_start_matches("http://").to_string();
    // Agent "a" goes through the proxy; agent "b" dials directly.
    let proxy = Proxy::start(upstream);
    let mut agents: Vec<Proc> = [("a", proxy.addr.clone()), ("b", addr.clone())]
        .into_iter()
        .map(|(id, url)| {
            let mut cmd = Command::new(bin("agent"));
            cmd.args(["--controller", &url, "--id", id]);
            Proc::spawn(cmd)
        })
        .collect();
    controller.wait_for_line("phase constant-0", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    proxy.cut();
    std::thread::sleep(Duration::from_secs(10));
    proxy.restore();

    let (code, output) = controller.wait_exit(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("reconnected"), "{output}");
    for a in &mut agents {
        let (code, out) = a.wait_exit(Duration::from_secs(30));
        assert_eq!(code, Some(0), "{out}");
    }
    let summary = stampede_tests::read_json(&out.join("summary.json"));
    let phase = &summary["phases"][0];
    let (sent, ok) = stampede_tests::assert_reconciles(phase);
    assert_eq!(
        phase["lost_agents"].as_array().map(Vec::len),
        Some(0),
        "{phase}"
    );
    assert_eq!(
        sent, 320,
        "20 req/s for 16 s, the cut agent's share included"
    );
    let served = get_json(&format!("{sim_url}/sim/stats"))["requests_served"]
        .as_u64()
        .unwrap();
    assert_eq!(ok, served, "merged ok vs the simulator's served count");
}

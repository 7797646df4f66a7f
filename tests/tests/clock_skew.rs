//! Agents whose clocks are off by ±200 ms still start a phase together: the
//! controller estimates each offset and hands each agent the start instant
//! in its own clock. The spread is observed independently, by a server that
//! timestamps every request's arrival with the one real clock of this machine.

use stampede_tests::{Proc, bin, plan_file};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Arrivals = Arc<Mutex<Vec<(Instant, String)>>>;

/// A minimal keep-alive HTTP/1.1 server answering non-streamed chat
/// completions, recording (arrival time, User-Agent) of every request.
fn recording_server() -> (String, Arrivals) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let arrivals: Arrivals = Arc::default();
    let log = arrivals.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().map_while(Result::ok) {
            let log = log.clone();
            std::thread::spawn(move || serve(conn, &log));
        }
    });
    (url, arrivals)
}

fn serve(conn: TcpStream, log: &Arrivals) {
    let _ = conn.set_nodelay(true);
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let at = Instant::now();
        let (mut length, mut agent) = (0usize, String::new());
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (name, value) = h.split_once(':').unwrap_or((h, ""));
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "user-agent" => agent = value.trim().to_string(),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        // Only completions count (the controller also asks for /v1/models).
        if line.starts_with("POST ") && line.contains("/v1/chat/completions") {
            log.lock().unwrap().push((at, agent));
        }
        let reply = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"ok"}}],"usage":{"prompt_tokens":4,"completion_tokens":1}}"#;
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            reply.len()
        );
        if out
            .write_all(head.as_bytes())
            .and_then(|()| out.write_all(reply.as_bytes()))
            .is_err()
        {
            return;
        }
    }
}

#[test]
fn skewed_agents_start_within_5_ms() {
    let (url, arrivals) = recording_server();
    let rate = 20.0;
    let plan = format!(
        r#"
[run]
name = "skew"
[agents]
remote = 2
[target]
url = "{url}"
model = "m"
[request]
stream = false
prompt_tokens = 4
max_tokens = 1
timeout = "5s"
[[phase]]
kind = "constant"
rate = {rate}
duration = "2s"
"#
    );
    let (dir, path) = plan_file(&plan);
    let out = dir.path().join("run");
    let (mut controller, addr) = stampede_tests::start_remote_controller(&path, &out);
    // Shard order follows agent ids: "a-ahead" is shard 0, "b-behind" shard 1.
    let mut agents: Vec<Proc> = [("a-ahead", "200"), ("b-behind", "-200")]
        .iter()
        .map(|(id, skew)| {
            let mut cmd = Command::new(bin("agent"));
            cmd.args([
                "--controller",
                &addr,
                "--id",
                id,
                &format!("--clock-skew-ms={skew}"),
            ]);
            Proc::spawn(cmd)
        })
        .collect();
    let (code, output) = controller.wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{output}");
    for a in &mut agents {
        let (code, output) = a.wait_exit(Duration::from_secs(15));
        assert_eq!(code, Some(0), "{output}");
    }

    // The controller's offset estimates.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let offsets: BTreeMap<String, f64> = summary["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap().to_string(),
                a["clock_offset_ms"].as_f64().unwrap(),
            )
        })
        .collect();
    assert!((offsets["a-ahead"] - 200.0).abs() < 5.0, "{offsets:?}");
    assert!((offsets["b-behind"] + 200.0).abs() < 5.0, "{offsets:?}");

    // The independent observation: each agent's first request, minus its
    // intended offset within the phase (arrival k at k / rate, shard = k mod 2).
    let log = arrivals.lock().unwrap().clone();
    assert_eq!(log.len(), 40, "20 req/s for 2 s");
    let first = |tag: &str| {
        log.iter()
            .filter(|(_, ua)| ua.contains(tag))
            .map(|(t, _)| *t)
            .min()
            .unwrap()
    };
    let start_a = first("(a-ahead)");
    let start_b = first("(b-behind)") - Duration::from_secs_f64(1.0 / rate);
    let spread = if start_a > start_b {
        start_a - start_b
    } else {
        start_b - start_a
    };
    eprintln!("start spread {spread:?}; estimated offsets {offsets:?}");
    assert!(spread < Duration::from_millis(5), "start spread {spread:?}");
    // The spread the run records (agents' own start instants, translated
    // with the estimated offsets) agrees with the one observed here.
    let recorded = summary["phases"][0]["start_spread_ms"].as_f64().unwrap();
    assert!(recorded < 5.0, "recorded start spread {recorded} ms");
    let stats = std::fs::read_to_string(out.join("stats.txt")).unwrap();
    assert!(stats.contains("start spread"), "{stats}");
}

//! Support for workspace-level integration tests: the real `controller`,
//! `agent` and `stampede-sim` binaries run as separate processes on loopback.
//!
//! The binaries are built (or found up to date) once per test process with
//! the same cargo and profile as the test itself, so `cargo test` on a fresh
//! clone needs no separate build step.

pub mod source;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

/// Path of a workspace binary, built on first use.
pub fn bin(name: &str) -> PathBuf {
    static PROFILE_DIR: OnceLock<PathBuf> = OnceLock::new();
    PROFILE_DIR
        .get_or_init(|| {
            // The test executable lives in <target>/<profile>/deps/.
            let exe = std::env::current_exe().expect("current test executable");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("test executable in <target>/<profile>/deps")
                .to_path_buf();
            let target_dir = profile_dir
                .parent()
                .expect("<target>/<profile>")
                .to_path_buf();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
            let mut cmd = Command::new(cargo);
            cmd.current_dir(workspace_root())
                .args(["build", "--quiet", "--bins"])
                .args([
                    "-p",
                    "stampede-agent",
                    "-p",
                    "stampede-controller",
                    "-p",
                    "stampede-sim",
                ])
                .arg("--target-dir")
                .arg(&target_dir)
                // Set by `cargo test` for this executable, not for the outer
                // build: ring's build script tracks it, so passing it on would
                // rebuild ring and all that depends on it, here and again at
                // the next plain `cargo build`.
                .env_remove("CARGO_MANIFEST_DIR");
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("run cargo build for the binaries");
            assert!(status.success(), "building the binaries failed: {status}");
            profile_dir
        })
        .join(name)
}

/// A child process killed when dropped, with its output lines collected.
pub struct Proc {
    /// The child.
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far (stdout and stderr interleaved).
    pub seen: Vec<String>,
}

impl Proc {
    /// Send `sig` (as `kill` takes it, e.g. `-STOP`) to the process.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill {sig}");
    }

    /// Spawn `cmd` with stdout and stderr captured line by line.
    pub fn spawn(mut cmd: Command) -> Proc {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        for reader in [
            Box::new(out) as Box<dyn std::io::Read + Send>,
            Box::new(err),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(reader).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Proc {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Wait for a line containing `needle`; returns the line.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line containing {needle:?} within {timeout:?}; output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Wait until at least `n` lines seen so far contain `needle`, then take
    /// every line already arrived; returns all lines seen.
    pub fn wait_for_count(&mut self, needle: &str, n: usize, timeout: Duration) -> &[String] {
        let deadline = Instant::now() + timeout;
        while self.seen.iter().filter(|l| l.contains(needle)).count() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "fewer than {n} lines containing {needle:?} within {timeout:?}; output:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// Wait for the process to exit; returns its exit code and all its output.
    pub fn wait_exit(&mut self, timeout: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Give the reader threads a moment to hand over the last lines.
                let grace = Instant::now() + Duration::from_millis(500);
                while let Ok(line) = self
                    .lines
                    .recv_timeout(grace.saturating_duration_since(Instant::now()))
                {
                    self.seen.push(line);
                }
                return (status.code(), self.seen.join("\n"));
            }
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "process did not exit within {timeout:?}; output:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The URL at the end of a "... listening on http://ADDR" (or https://) line.
pub fn url_in(line: &str) -> String {
    line.split_whitespace()
        .find(|w| w.starts_with("http://") || w.starts_with("https://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string()
}

/// Start the simulator binary on an ephemeral loopback port; returns it and its URL.
pub fn start_sim(args: &[&str]) -> (Proc, String) {
    let mut cmd = Command::new(bin("stampede-sim"));
    cmd.args(["--listen", "127.0.0.1:0"]).args(args);
    let mut sim = Proc::spawn(cmd);
    let line = sim.wait_for_line("listening on", Duration::from_secs(30));
    let url = url_in(&line);
    (sim, url)
}

/// Requests the simulator at `sim_url` has started, by its own count.
pub fn sim_requests_started(sim_url: &str) -> u64 {
    get_json(&format!("{sim_url}/sim/stats"))["requests_started"]
        .as_u64()
        .expect("requests_started in /sim/stats")
}

/// GET a URL on loopback and parse the JSON body (blocking, std only).
pub fn get_json(url: &str) -> serde_json::Value {
    let body = get_text(url);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: bad JSON {body:?}: {e}"))
}

/// GET a URL on loopback and return the body (blocking, std only).
pub fn get_text(url: &str) -> String {
    request("GET", url, None)
}

/// One HTTP/1.1 request to loopback (blocking, std only); panics unless the
/// status is 200, and returns the body.
fn request(method: &str, url: &str, json_body: Option<&str>) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let body = json_body.unwrap_or("");
    let content = json_body.map_or(String::new(), |b| {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        )
    });
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{content}Connection: close\r\n\r\n{body}"
    )
    .expect("write");
    let mut resp = String::new();
    stream.read_to_string(&mut resp).expect("read");
    let (head, body) = resp.split_once("\r\n\r\n").expect("HTTP response");
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "{method} {url}: {head}\n{body}"
    );
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// The published llm-d Benchmark Report v0.2 JSON Schema, parsed: the file
/// named by `STAMPEDE_LLMD_SCHEMA` (which must exist when set), else the
/// reference data kept beside the repository (never copied into it), else
/// `None`, saying so: the reports were then checked with the typed model only.
pub fn llmd_schema() -> Option<serde_json::Value> {
    if let Some(path) = std::env::var_os("STAMPEDE_LLMD_SCHEMA").map(PathBuf::from) {
        assert!(
            path.is_file(),
            "STAMPEDE_LLMD_SCHEMA={}: no such file",
            path.display()
        );
        return Some(read_json(&path));
    }
    let path = workspace_root()
        .join("../shared/reference/llmd-benchmark-report-v0.2/br_v0_2_json_schema.json");
    if path.is_file() {
        Some(read_json(&path))
    } else {
        eprintln!(
            "published llm-d schema not found ({} absent, STAMPEDE_LLMD_SCHEMA unset): \
             only the typed model was checked",
            path.display()
        );
        None
    }
}

/// A temporary directory holding a plan file with `text`.
pub fn plan_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("plan.toml");
    std::fs::write(&path, text).expect("write plan");
    (dir, path)
}

/// Start `controller run PLAN --out OUT` listening on an ephemeral loopback
/// port for remote agents; returns it and the URL agents dial.
pub fn start_remote_controller(plan: &Path, out: &Path) -> (Proc, String) {
    start_remote_controller_env(plan, out, &[])
}

/// [`start_remote_controller`] with extra environment variables for the controller.
pub fn start_remote_controller_env(
    plan: &Path,
    out: &Path,
    env: &[(&str, &str)],
) -> (Proc, String) {
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("run")
        .arg(plan)
        .arg("--out")
        .arg(out)
        .args(["--listen", "127.0.0.1:0"])
        .envs(env.iter().copied());
    let mut controller = Proc::spawn(cmd);
    let line = controller.wait_for_line("controller listening on", Duration::from_secs(60));
    let url = url_in(&line);
    (controller, url)
}

/// Read and parse a JSON file (e.g. a run's `summary.json`).
pub fn read_json(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// Check a phase of `summary.json` accounts for every request:
/// sent = ok + Σ errors by class + lost (in flight on lost agents), and
/// failed = Σ errors. Returns (sent, ok).
pub fn assert_reconciles(phase: &serde_json::Value) -> (u64, u64) {
    let r = &phase["requests"];
    let count = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("count in {phase}"));
    let (sent, ok, failed) = (count(&r["sent"]), count(&r["ok"]), count(&r["failed"]));
    let lost = count(&r["lost"]);
    let errors: u64 = phase["errors"]
        .as_object()
        .unwrap_or_else(|| panic!("errors in {phase}"))
        .values()
        .map(count)
        .sum();
    assert_eq!(
        sent,
        ok + errors + lost,
        "sent = ok + Σ errors + lost: {phase}"
    );
    assert_eq!(failed, errors, "failed = Σ errors: {phase}");
    (sent, ok)
}

/// POST a JSON body to a URL on loopback and parse the JSON answer
/// (blocking, std only); panics unless the status is 200.
pub fn post_json(url: &str, body: &str) -> serde_json::Value {
    let answer = request("POST", url, Some(body));
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("POST {url}: bad JSON {answer:?}: {e}"))
}

/// Start `agent --controller URL --id ID` with `extra` arguments.
pub fn remote_agent(controller: &str, id: &str, extra: &[&str]) -> Proc {
    let mut cmd = Command::new(bin("agent"));
    cmd.args(["--controller", controller, "--id", id])
        .args(extra);
    Proc::spawn(cmd)
}

/// Check a finished run directory's books: for every phase of `summary.json`,
/// sent = ok + Σ errors by class and failed = Σ errors; no window report was
/// merged twice (no repeated (phase, agent, incarnation, sequence) in
/// `windows.jsonl`),
/// none was rejected or dropped, and the summary's sent count is exactly the
/// sum over the raw window records. Returns the summary.
pub fn check_books(run_dir: &Path) -> serde_json::Value {
    use std::collections::{BTreeMap, BTreeSet};
    let summary = read_json(&run_dir.join("summary.json"));
    let raw = std::fs::read_to_string(run_dir.join("windows.jsonl")).expect("windows.jsonl");
    let mut seen = BTreeSet::new();
    let mut raw_sent: BTreeMap<u64, u64> = BTreeMap::new();
    for line in raw.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("windows.jsonl line");
        if v["record"] == "window" {
            // A restarted agent numbers its reports anew: the process counts.
            let key = (
                v["phase"].as_u64().unwrap(),
                v["agent"].as_str().unwrap().to_string(),
                v["incarnation"].as_u64().unwrap_or(0),
                v["sequence"].as_u64().unwrap(),
            );
            assert!(seen.insert(key.clone()), "window {key:?} recorded twice");
            *raw_sent.entry(key.0).or_default() += v["counters"]["sent"].as_u64().unwrap();
        }
        assert_ne!(v["record"], "rejected", "a report was rejected: {v}");
    }
    for (i, phase) in summary["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .enumerate()
    {
        let (sent, _) = assert_reconciles(phase);
        assert_eq!(
            raw_sent.get(&(i as u64)).copied().unwrap_or(0),
            sent,
            "phase {i}: summary vs windows.jsonl"
        );
        for key in ["rejected_reports", "reports_dropped"] {
            assert_eq!(phase[key].as_u64(), Some(0), "phase {i} {key}\n{phase:#}");
        }
    }
    summary
}

/// A finished `controller run` of a plan written to a temporary directory.
pub struct Finished {
    /// Holds the plan and the results; removed when dropped.
    pub dir: tempfile::TempDir,
    /// The results directory.
    pub out: PathBuf,
    /// Exit code.
    pub code: Option<i32>,
    /// Everything the controller printed.
    pub output: String,
}

/// Write `plan` to a temporary directory and run `controller run` on it to the
/// end (at most `timeout`).
pub fn run_plan(plan: &str, timeout: Duration) -> Finished {
    run_plan_env(plan, timeout, &[])
}

/// [`run_plan`] with extra environment variables for the controller process.
pub fn run_plan_env(plan: &str, timeout: Duration, env: &[(&str, &str)]) -> Finished {
    let (dir, path) = plan_file(plan);
    let out = dir.path().join("run");
    let (code, output) = run_plan_file_env(&path, &out, timeout, env);
    Finished {
        dir,
        out,
        code,
        output,
    }
}

/// Run `controller run PLAN --out OUT` to the end (at most `timeout`); exit code and output.
pub fn run_plan_file(plan: &Path, out: &Path, timeout: Duration) -> (Option<i32>, String) {
    run_plan_file_env(plan, out, timeout, &[])
}

/// [`run_plan_file`] with extra environment variables for the controller process.
pub fn run_plan_file_env(
    plan: &Path,
    out: &Path,
    timeout: Duration,
    env: &[(&str, &str)],
) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("run").arg(plan).arg("--out").arg(out);
    cmd.envs(env.iter().copied());
    Proc::spawn(cmd).wait_exit(timeout)
}

/// Run `controller report RUN_DIR` and return its exit code and output.
pub fn report(run_dir: &Path) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("report").arg(run_dir);
    Proc::spawn(cmd).wait_exit(Duration::from_secs(60))
}

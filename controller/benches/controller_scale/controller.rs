//! The controller side, in a child process of its own so that its CPU and
//! memory are measured apart from the simulated agents': `run::run`, the
//! code behind `controller run`, on a plan of remote agents, listening on
//! 127.0.0.1. When the run is over (its outputs written, as `controller run`
//! writes them), the results path is timed piece by piece on the run's own
//! record and the figures are printed on one `BENCH {json}` line:
//! appending the window records to a fresh `windows.jsonl` (the live
//! path's serialization and write), rebuilding the run from the record,
//! and writing every output from it. The memory a rebuild needs is measured
//! in a process that does nothing else ([`rebuild_alone`]): this one still
//! holds what the run left.

use stampede_controller::results::rawlog::{self, RawLog, Record};
use stampede_controller::run::{self, RunOptions};
use stampede_controller::{outputs, results};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Printed when `run::run` has returned.
pub const RUN_DONE: &str = "BENCH run done";

/// The bench's role (`STAMPEDE_BENCH_ROLE`) that only rebuilds a run.
pub const REBUILD_ROLE: &str = "rebuild";

/// Rebuild the run in `dir` and print the peak resident memory it took
/// (`VmHWM`, KB) on a `BENCH {json}` line.
pub fn rebuild_alone(dir: &Path) -> ExitCode {
    if let Err(e) = results::rebuild(dir) {
        eprintln!("rebuild: {e}");
        return ExitCode::FAILURE;
    }
    let (_, peak_kb) = super::memory(std::process::id());
    println!(
        "BENCH {}",
        serde_json::json!({ "rebuild_peak_kb": peak_kb })
    );
    ExitCode::SUCCESS
}

/// The peak memory of rebuilding the run in `dir` in a process of its own.
fn rebuild_peak_kb(dir: &Path) -> Result<u64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::process::Command::new(exe)
        .arg(dir)
        .env(super::ROLE, REBUILD_ROLE)
        .output()
        .map_err(|e| format!("rebuild process: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let json = text
        .lines()
        .find_map(|l| l.strip_prefix("BENCH "))
        .ok_or_else(|| format!("rebuild process: {}", String::from_utf8_lossy(&out.stderr)))?;
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    v["rebuild_peak_kb"]
        .as_u64()
        .ok_or_else(|| format!("rebuild process printed {json}"))
}

/// Run the plan at `plan` into `out`, then time the results path.
pub fn main(plan: PathBuf, out: PathBuf) -> ExitCode {
    stampede_runtime::limits::raise_open_files();
    stampede_runtime::telemetry::init(stampede_runtime::telemetry::LogFormat::Plain);
    let runtime = stampede_runtime::runtime().expect("async runtime");
    let result = runtime.block_on(async {
        let text = std::fs::read_to_string(&plan).map_err(|e| e.to_string())?;
        let plan = stampede_plan::parse(&text, &plan)
            .and_then(|p| p.validate(&plan))
            .map_err(|e| e.to_string())?;
        let opts = RunOptions {
            out: Some(out.clone()),
            listen: Some(([127, 0, 0, 1], 0).into()),
            ..RunOptions::default()
        };
        let started = Instant::now();
        run::run(plan, &text, opts, CancellationToken::new())
            .await
            .map_err(|e| e.to_string())?;
        // The run is over, its outputs written: what a user waits for.
        println!("{RUN_DONE}");
        Ok::<_, String>(started.elapsed().as_secs_f64())
    });
    let figures = result.and_then(|run_s| results_path(&out, run_s));
    match figures {
        Ok(json) => {
            println!("BENCH {json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("controller: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Time the three parts of the results path on the run in `dir`.
fn results_path(dir: &Path, run_s: f64) -> Result<serde_json::Value, String> {
    let raw_path = dir.join(rawlog::FILE_NAME);
    let jsonl_bytes = std::fs::metadata(&raw_path)
        .map_err(|e| e.to_string())?
        .len();
    let records = rawlog::read(&raw_path).map_err(|e| e.to_string())?;
    let windows: Vec<(u32, String, _)> = records
        .iter()
        .filter_map(|(_, r)| match r {
            Record::Window { phase, agent, .. } => {
                let report = r.to_report().ok().flatten()?;
                Some((*phase, agent.clone(), report))
            }
            _ => None,
        })
        .collect();
    let again = dir.join("rewritten");
    std::fs::create_dir_all(&again).map_err(|e| e.to_string())?;
    let mut log = RawLog::create(&again).map_err(|e| e.to_string())?;
    let t = Instant::now();
    for (phase, agent, w) in &windows {
        log.append(&Record::window(*phase, agent, w))
            .map_err(|e| e.to_string())?;
    }
    log.sync().map_err(|e| e.to_string())?;
    let append_s = t.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&again).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let data = results::rebuild(dir).map_err(|e| e.to_string())?;
    let rebuild_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    outputs::write_all(dir, &data).map_err(|e| e.to_string())?;
    let outputs_s = t.elapsed().as_secs_f64();
    let stats_bytes = std::fs::metadata(dir.join("stats.txt")).map_or(0, |m| m.len());
    let rebuild_peak_kb = rebuild_peak_kb(dir)?;
    Ok(serde_json::json!({
        "run_s": run_s,
        "windows": windows.len(),
        "jsonl_bytes": jsonl_bytes,
        "append_s": append_s,
        "rebuild_s": rebuild_s,
        "rebuild_peak_kb": rebuild_peak_kb,
        "outputs_s": outputs_s,
        "stats_bytes": stats_bytes,
    }))
}

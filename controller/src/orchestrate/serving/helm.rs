//! The helm method: `helm upgrade --install … --wait` for each chart of the
//! plan (llm-d ships as several), and `helm uninstall` at teardown, in
//! reverse order.
//!
//! The controller runs the `helm` binary rather than reimplementing chart
//! rendering: the user's Helm and its repositories are what they deploy
//! with by hand too. `helm` is looked up on the search path given (the
//! process's `PATH` by default), so a missing Helm is reported before
//! anything starts, and tests point the search path at a fake. The argv
//! holds no secret: plan validation refuses secret-looking `set` keys.

use super::ServingError;
use stampede_plan::serving::Chart;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Bytes of helm's stderr kept for an error message.
const STDERR_TAIL: usize = 4096;

/// Find `helm` on `search_path` (a `PATH`-style list).
pub fn find(search_path: &OsStr) -> Result<PathBuf, ServingError> {
    std::env::split_paths(search_path)
        .map(|dir| dir.join("helm"))
        .find(|p| p.is_file())
        .ok_or_else(|| ServingError::HelmMissing {
            searched: search_path.to_string_lossy().into_owned(),
        })
}

fn context_args(context: Option<&str>) -> Vec<String> {
    context
        .map(|c| vec!["--kube-context".to_string(), c.to_string()])
        .unwrap_or_default()
}

/// Arguments of `helm upgrade --install` for `chart`.
pub fn install_args(
    chart: &Chart,
    namespace: &str,
    context: Option<&str>,
    timeout: Duration,
) -> Vec<String> {
    let mut a: Vec<String> = [
        "upgrade",
        "--install",
        &chart.release,
        &chart.chart,
        "--namespace",
        namespace,
        "--wait",
        "--timeout",
        &format!("{}s", timeout.as_secs().max(1)),
    ]
    .map(str::to_string)
    .to_vec();
    a.extend(context_args(context));
    for (flag, v) in [("--repo", &chart.repo), ("--version", &chart.version)] {
        if let Some(v) = v {
            a.extend([flag.to_string(), v.clone()]);
        }
    }
    for file in &chart.values {
        a.extend(["--values".to_string(), file.display().to_string()]);
    }
    for (k, v) in &chart.set {
        a.extend(["--set".to_string(), format!("{k}={v}")]);
    }
    a
}

/// Arguments of `helm uninstall` for `release`.
pub fn uninstall_args(release: &str, namespace: &str, context: Option<&str>) -> Vec<String> {
    let mut a: Vec<String> = ["uninstall", release, "--namespace", namespace, "--wait"]
        .map(str::to_string)
        .to_vec();
    a.extend(context_args(context));
    a
}

/// Run `helm` with `args`; `search_path` becomes the child's `PATH` (helm
/// plugins and credential helpers are looked up there too).
pub async fn run(
    helm: &PathBuf,
    args: &[String],
    search_path: &OsString,
    cancel: &CancellationToken,
) -> Result<(), ServingError> {
    let child = tokio::process::Command::new(helm)
        .args(args)
        .env("PATH", search_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ServingError::HelmSpawn {
            helm: helm.clone(),
            source,
        })?;
    let out = tokio::select! {
        () = cancel.cancelled() => return Err(ServingError::Interrupted),
        out = child.wait_with_output() => out.map_err(|source| ServingError::HelmSpawn {
            helm: helm.clone(),
            source,
        })?,
    };
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let start = stderr.len().saturating_sub(STDERR_TAIL);
    let start = (start..stderr.len())
        .find(|i| stderr.is_char_boundary(*i))
        .unwrap_or(stderr.len());
    Err(ServingError::Helm {
        command: format!("helm {}", args.join(" ")),
        status: out.status.to_string(),
        stderr: stderr[start..].trim().to_string(),
    })
}

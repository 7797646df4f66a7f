//! Fault actions and recovery in the outputs: the `stats.txt` section of a
//! phase with fault actions, and `faults.csv` (one row per episode), both
//! made from the [`FaultReport`] that `summary.json` carries.

use crate::model::{Episode, FaultReport};
use crate::outputs::tables::opt;
use crate::results::RunData;
use std::fmt::Write as _;
use std::path::Path;

/// File name of the episode table.
pub const CSV_FILE: &str = "faults.csv";

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.3} s"))
}

/// The `stats.txt` lines of a phase's fault actions and episodes.
pub fn text(s: &mut String, r: &FaultReport) {
    let _ = writeln!(s, "  faults      {} action(s)", r.actions.len());
    for a in &r.actions {
        let _ = writeln!(
            s,
            "    #{:<3} {:<36} planned {:.3} s, {}",
            a.index,
            a.action,
            a.at_s,
            a.outcome()
        );
    }
    for e in &r.episodes {
        episode_text(s, e);
    }
}

fn episode_text(s: &mut String, e: &Episode) {
    let restore = match (e.restore, e.restore_at_s) {
        (Some(i), Some(t)) => format!("restore #{i} at {t:.3} s"),
        _ => "no restoring action".into(),
    };
    let _ = writeln!(
        s,
        "  episode     fault #{} at {:.3} s, {restore}; windows {}..{}",
        e.fault, e.fault_at_s, e.windows.0, e.windows.1
    );
    match &e.band {
        Some(b) => {
            let ttft = match (b.ttft_p90_mean_ms, b.ttft_p90_upper_ms) {
                (Some(m), Some(u)) => format!("ttft p90 ≤ {u:.2} ms (mean {m:.2} ms)"),
                _ => "no ttft before the fault".into(),
            };
            let _ = writeln!(
                s,
                "    band      {} windows before the fault: error rate ≤ {:.2}% (mean {:.2}%), {ttft}",
                b.windows,
                b.error_rate_upper * 100.0,
                b.error_rate_mean * 100.0
            );
        }
        None => {
            let _ = writeln!(
                s,
                "    band      none: fewer than {} windows before the fault",
                crate::analysis::recovery::MIN_BAND_WINDOWS
            );
        }
    }
    if e.impacted {
        let _ = writeln!(
            s,
            "    impact    at {} (time to impact {})",
            secs(e.impact_at_s),
            secs(e.time_to_impact_s)
        );
        if e.recovered {
            let _ = writeln!(
                s,
                "    recovery  at {} (time to recovery {}, from the {})",
                secs(e.recovered_at_s),
                secs(e.time_to_recovery_s),
                if e.restore.is_some() {
                    "restore"
                } else {
                    "impact"
                }
            );
        } else {
            let _ = writeln!(s, "    recovery  NOT RECOVERED by the end of the phase");
        }
    } else {
        let _ = writeln!(s, "    impact    none: every window stayed in the band");
    }
    let errors: Vec<String> = e.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let injected = e
        .target_injected
        .map_or(String::new(), |n| format!("; the target injected {n}"));
    let _ = writeln!(
        s,
        "    requests  {} completed, {} failed{}, {} delayed{injected}",
        e.requests,
        e.failed,
        if errors.is_empty() {
            String::new()
        } else {
            format!(" ({})", errors.join(", "))
        },
        e.delayed
    );
}

/// Header of `faults.csv`.
pub fn csv_header() -> &'static str {
    "phase,phase_index,repeat,fault_action,fault_at_s,restore_action,restore_at_s,\
     band_windows,band_error_rate_upper,band_ttft_p90_upper_ms,impacted,impact_at_s,\
     time_to_impact_s,recovered,recovered_at_s,time_to_recovery_s,first_window,last_window,\
     requests,failed,delayed,target_injected"
}

fn csv_row(phase: &str, index: usize, repeat: u32, e: &Episode) -> String {
    let b = e.band.as_ref();
    [
        crate::outputs::tables::field(phase),
        index.to_string(),
        repeat.to_string(),
        e.fault.to_string(),
        format!("{:.6}", e.fault_at_s),
        opt(e.restore),
        opt(e.restore_at_s.map(|t| format!("{t:.6}"))),
        opt(b.map(|b| b.windows)),
        opt(b.map(|b| format!("{:.6}", b.error_rate_upper))),
        opt(b
            .and_then(|b| b.ttft_p90_upper_ms)
            .map(|v| format!("{v:.3}"))),
        e.impacted.to_string(),
        opt(e.impact_at_s.map(|t| format!("{t:.6}"))),
        opt(e.time_to_impact_s.map(|t| format!("{t:.6}"))),
        e.recovered.to_string(),
        opt(e.recovered_at_s.map(|t| format!("{t:.6}"))),
        opt(e.time_to_recovery_s.map(|t| format!("{t:.6}"))),
        e.windows.0.to_string(),
        e.windows.1.to_string(),
        e.requests.to_string(),
        e.failed.to_string(),
        e.delayed.to_string(),
        opt(e.target_injected),
    ]
    .join(",")
}

/// Write `faults.csv` into `dir` when any phase had fault actions.
pub fn write_csv(dir: &Path, data: &RunData) -> std::io::Result<()> {
    let phases: Vec<_> = data
        .summary
        .phases
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.faults.as_ref().map(|f| (i, p, f)))
        .collect();
    if phases.is_empty() {
        return Ok(());
    }
    let mut out = csv_header().to_string() + "\n";
    for (i, p, f) in phases {
        for e in &f.episodes {
            out.push_str(&csv_row(&p.name, i, p.repeat, e));
            out.push('\n');
        }
    }
    std::fs::write(dir.join(CSV_FILE), out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_row_have_the_same_columns() {
        let e = Episode {
            fault: 0,
            restore: None,
            fault_at_s: 1.5,
            restore_at_s: None,
            band: None,
            impacted: false,
            impact_at_s: None,
            time_to_impact_s: None,
            recovered: false,
            recovered_at_s: None,
            time_to_recovery_s: None,
            windows: (1, 9),
            requests: 10,
            failed: 2,
            errors: Default::default(),
            delayed: 0,
            target_injected: Some(2),
        };
        let row = csv_row("soak, \"a\"", 0, 0, &e);
        let split = |s: &str| {
            let mut n = 1;
            let mut quoted = false;
            for c in s.chars() {
                match c {
                    '"' => quoted = !quoted,
                    ',' if !quoted => n += 1,
                    _ => {}
                }
            }
            n
        };
        assert_eq!(split(csv_header()), split(&row), "{row}");
        let mut text = String::new();
        episode_text(&mut text, &e);
        assert!(text.contains("impact    none"), "{text}");
        assert!(text.contains("2 failed"), "{text}");
    }
}

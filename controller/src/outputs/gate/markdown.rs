//! The gate's result as Markdown, for a CI job summary (e.g. appended to
//! GitHub's `$GITHUB_STEP_SUMMARY`): one table per candidate, failed checks
//! marked, and why a check was decided without a noise estimate.

use super::{HEADER, NOISE_UNKNOWN, cells};
use crate::model::gate::GateReport;
use std::fmt::Write as _;

/// A table cell: pipes escaped, line breaks removed.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The Markdown summary of every candidate's gate.
pub fn render(reports: &[GateReport]) -> String {
    let mut s = String::new();
    for r in reports {
        let failed = r.failures().count();
        let verdict = if failed == 0 {
            "✅ Regression gate passed".to_string()
        } else {
            format!(
                "❌ Regression gate failed: {failed} of {} checks",
                r.checks.len()
            )
        };
        let _ = writeln!(s, "### {verdict}\n");
        let _ = writeln!(
            s,
            "Candidate {} against baseline {}.\n",
            cell(&r.candidate),
            cell(&r.baseline)
        );
        let _ = writeln!(s, "| {} |", HEADER.join(" | "));
        let _ = writeln!(s, "|{}", "---|".repeat(HEADER.len()));
        for c in &r.checks {
            let mut row = cells(c).map(|t| cell(&t));
            row[1] = format!("`{}`", row[1]);
            if c.outcome.fails() {
                row[6] = format!("❌ **{}**", row[6]);
            }
            let _ = writeln!(s, "| {} |", row.join(" | "));
        }
        let _ = writeln!(s);
        for n in &r.not_gated {
            let _ = writeln!(s, "Not gated: {}.\n", cell(n));
        }
        if r.noise_unknown() {
            let _ = writeln!(s, "Note: {NOISE_UNKNOWN}.\n");
        }
    }
    s
}

//! The gate's result as JUnit XML, the report format CI systems display:
//! one test suite per candidate, one test case per gated metric per phase,
//! a `<failure>` for each check that fails the gate.

use super::{cells, failure_text};
use crate::model::gate::GateReport;
use std::fmt::Write as _;

/// Text escaped for XML attributes and character data (also HTML's: the
/// pages of [`crate::outputs::html`] use it).
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot hold at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// The JUnit document of every candidate's gate.
pub fn render(reports: &[GateReport]) -> String {
    let tests: usize = reports.iter().map(|r| r.checks.len()).sum();
    let failures: usize = reports.iter().map(|r| r.failures().count()).sum();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuites name=\"stampede regression gate\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\">"
    );
    for r in reports {
        let _ = writeln!(
            s,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\">",
            esc(&format!("{} against {}", r.candidate, r.baseline)),
            r.checks.len(),
            r.failures().count()
        );
        for c in &r.checks {
            let [phase, threshold, baseline, candidate, change, noise, result] = cells(c);
            let _ = write!(
                s,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"0\">",
                esc(&phase),
                esc(&threshold)
            );
            if c.outcome.fails() {
                let detail = format!(
                    "baseline {baseline}, candidate {candidate}, change {change}, noise {noise}: {result}"
                );
                let _ = write!(
                    s,
                    "\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    ",
                    esc(&failure_text(c)),
                    esc(&result),
                    esc(&detail)
                );
            }
            let _ = writeln!(s, "</testcase>");
        }
        let _ = writeln!(s, "  </testsuite>");
    }
    let _ = writeln!(s, "</testsuites>");
    s
}

//! The pages' own checks: what comes from a plan cannot inject markup or
//! end a script, and a 1-hour soak at 1 s windows makes a page small
//! enough to mail.

use super::page::round;
use super::render::{href, script_json, text};
use super::run_page;
use crate::analysis::merge::Aggregate;
use crate::results::RunData;
use crate::results::tests::{START, run_dir};
use stampede_common::metric::Metric;

const EVIL: &str = "</script><img src=x onerror=alert(1)>";

/// A run of one phase rebuilt from a minimal record, then given `windows`
/// one-second windows of synthetic results.
fn synthetic(windows: u32) -> RunData {
    let dir = run_dir(&format!("{START}\n"));
    let mut data = crate::results::rebuild(dir.path()).unwrap();
    let p = &mut data.phases[0];
    for w in 0..windows {
        let mut a = Aggregate::default();
        for i in 0..50u64 {
            let v = 20_000 + (u64::from(w) * 7 + i * 131) % 9_000;
            for m in [Metric::Ttft, Metric::Itl, Metric::E2e] {
                a.record_n(m, v, 1);
            }
            p.acc.total.record_n(Metric::Ttft, v, 1);
        }
        a.counters.sent = 60;
        a.counters.ok = 58;
        a.counters.failed = 2;
        a.counters.output_tokens = 58 * 64;
        a.errors.insert("http_5xx:503".into(), 1);
        a.errors.insert("timeout_first_token".into(), 1);
        p.acc.windows.insert(w, (a, 1));
    }
    let s = &mut data.summary.phases[0];
    s.errors.insert("http_5xx:503".into(), u64::from(windows));
    s.errors
        .insert("timeout_first_token".into(), u64::from(windows));
    s.requests.failed = 2 * u64::from(windows);
    data
}

#[test]
fn a_one_hour_soak_at_one_second_windows_makes_a_page_under_2_mb() {
    let data = synthetic(3_600);
    let page = run_page(&data, &["windows.jsonl".into()]);
    eprintln!("1-hour soak page: {} bytes", page.len());
    assert!(page.len() < 2_000_000, "{} bytes", page.len());
    // Every window is in it: 3,600 x positions per time-series chart.
    let json = page
        .split("id=\"chart-data\">")
        .nth(1)
        .and_then(|s| s.split("</script>").next())
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let requests = v["charts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "chart-requests-time")
        .unwrap();
    assert_eq!(requests["x"].as_array().unwrap().len(), 3_600);
}

#[test]
fn plan_text_cannot_inject_markup_or_end_the_data_script() {
    let mut data = synthetic(3);
    data.summary.phases[0].name = EVIL.into();
    data.summary.run_id = EVIL.into();
    data.summary.target.url = format!("http://x/{EVIL}");
    let page = run_page(&data, &[format!("requests/{EVIL}")]);
    assert!(!page.contains("<img"), "markup injected");
    // Exactly the page's own three script elements end.
    assert_eq!(page.matches("</script>").count(), 3);
    assert!(page.contains("&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"));
    // The chart data carries the name, escaped for the script element, and
    // reads back unchanged.
    let json = page
        .split("id=\"chart-data\">")
        .nth(1)
        .and_then(|s| s.split("</script>").next())
        .unwrap();
    assert!(json.contains("\\u003c/script\\u003e"));
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    assert!(v.to_string().contains(EVIL));
}

#[test]
fn escapes_and_links_are_inert() {
    assert_eq!(text("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
    assert_eq!(
        script_json(r#"{"a":"</script>&"}"#),
        r#"{"a":"\u003c/script\u003e\u0026"}"#
    );
    assert_eq!(href("javascript:alert(1)"), "javascript%3Aalert%281%29");
    assert_eq!(href("cell a,10/report.html"), "cell%20a,10/report.html");
}

#[test]
fn chart_numbers_keep_four_significant_digits() {
    assert_eq!(round(123.456_78), 123.5);
    assert_eq!(round(0.000_123_456), 0.000_123_5);
    assert_eq!(round(98_765.4), 98_770.0);
    assert_eq!(round(0.0), 0.0);
}

#[test]
fn a_large_fleet_is_summarized_not_listed() {
    let mut data = synthetic(1);
    data.summary.agents = crate::outputs::report::tests::fleet(10_000, "fleet-agent-");
    let page = run_page(&data, &["windows.jsonl".into()]);
    let listed = page.matches("fleet-agent-").count();
    assert_eq!(
        listed,
        crate::outputs::report::AGENTS_LISTED,
        "agents on the page"
    );
    assert!(page.contains("fleet-agent-9<"), "the tenth agent is listed");
    assert!(page.contains("… and 9990 more (all in summary.json)"));
    assert!(page.contains("-3.000 to +3.000") && page.contains("up to 4.000"));
    data.summary
        .agents
        .truncate(crate::outputs::report::AGENTS_LISTED);
    let page = run_page(&data, &["windows.jsonl".into()]);
    assert!(!page.contains("more (all in summary.json)"));
}

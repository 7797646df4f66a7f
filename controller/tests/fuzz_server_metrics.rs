//! Property tests of server-metrics parsing and summarizing: any page —
//! arbitrary text, or well-formed pages with arbitrary names, labels and
//! values, counters that go up and down — is parsed or refused with an error
//! naming the page, and summarizing any sequence of scrapes never panics,
//! and its summary can always be written out; increases of non-negative
//! readings are never negative, and quantiles stay within the bucket bounds.

use proptest::prelude::*;
use stampede_controller::analysis::server_metrics::{Scrape, increase, parse, quantile, summarize};
use std::collections::BTreeMap;

const URL: &str = "http://127.0.0.1:9/metrics";

fn page() -> impl Strategy<Value = String> {
    let name = "vllm:[a-z_]{1,12}";
    let label = ("[a-z_]{1,6}", "[ -~&&[^\"\\\\]]{0,8}");
    let value = prop_oneof![
        (-1e9f64..1e9).prop_map(|v| v.to_string()),
        Just("NaN".to_string()),
        Just("+Inf".to_string()),
        Just("-Inf".to_string()),
    ];
    let kind = prop_oneof![
        Just("counter"),
        Just("gauge"),
        Just("histogram"),
        Just("untyped")
    ];
    proptest::collection::vec(
        (
            name,
            kind,
            proptest::collection::vec(label, 0..3),
            value,
            prop::option::of(prop_oneof![Just("0.1"), Just("1"), Just("+Inf"), Just("x")]),
        ),
        0..12,
    )
    .prop_map(|families| {
        let mut out = String::new();
        for (name, kind, labels, value, le) in families {
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            let mut ls: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            let sample = if let Some(le) = le {
                ls.push(format!("le=\"{le}\""));
                format!("{name}_bucket")
            } else {
                name
            };
            if ls.is_empty() {
                out.push_str(&format!("{sample} {value}\n"));
            } else {
                out.push_str(&format!("{sample}{{{}}} {value}\n", ls.join(",")));
            }
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_is_parsed_or_refused_naming_the_page(text in "(?s).{0,400}") {
        if let Err(e) = parse(URL, 0, &text, &[]) {
            prop_assert!(e.to_string().starts_with(URL));
        }
    }

    #[test]
    fn any_sequence_of_pages_summarizes_without_panicking(pages in proptest::collection::vec(page(), 1..5)) {
        let scrapes: Vec<Scrape> = pages
            .iter()
            .enumerate()
            .filter_map(|(i, p)| parse(URL, i as u64 * 1000, p, &[]).ok())
            .collect();
        let s = summarize(&scrapes, &BTreeMap::new());
        prop_assert_eq!(s.scrapes as usize, scrapes.len());
        // Whatever the pages held, the summary can be written out.
        prop_assert!(serde_json::to_string(&s).is_ok());
        for series in s.series.values().flatten() {
            if series.kind == "counter" {
                let inc = series.increase.unwrap();
                // Readings may be NaN or infinite; a finite increase is never negative.
                prop_assert!(!inc.is_finite() || inc >= 0.0 || series.resets > 0, "{series:?}");
            }
        }
    }

    #[test]
    fn increases_are_never_negative(readings in proptest::collection::vec(0f64..1e12, 0..20)) {
        let (inc, resets) = increase(&readings);
        prop_assert!(inc >= 0.0);
        prop_assert!(resets as usize <= readings.len().saturating_sub(1));
        // Without resets, the increase is last − first.
        if resets == 0 && readings.len() >= 2 {
            let direct = readings[readings.len() - 1] - readings[0];
            prop_assert!((inc - direct).abs() <= 1e-6 * direct.abs().max(1.0));
        }
    }

    #[test]
    fn quantiles_stay_within_the_finite_bounds(
        counts in proptest::collection::vec(0f64..1e6, 1..10),
        q in 0.0f64..=1.0,
    ) {
        // Cumulative buckets at bounds 1, 2, 3, ... then +Inf.
        let mut total = 0.0;
        let mut buckets: Vec<(f64, f64)> = counts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                total += c;
                ((i + 1) as f64, total)
            })
            .collect();
        buckets.push((f64::INFINITY, total));
        if let Some(v) = quantile(&buckets, q) {
            prop_assert!((0.0..=counts.len() as f64).contains(&v), "{v}");
        } else {
            prop_assert_eq!(total, 0.0);
        }
    }
}

//! Property tests of the dataset and trace loaders: any file content — raw
//! bytes-as-text, or line-structured records with arbitrary fields and
//! values — is loaded or refused with a message naming the file (and, for a
//! record, its line); never a panic. With `on_error = "skip"` nothing that
//! loads is lost: valid plus skipped records account for every record line.

use proptest::prelude::*;
use stampede_plan::dataset::{self, DataError, OnError, Options};
use stampede_plan::trace::{self, TraceError};
use std::path::Path;

const FILE: &str = "data/input.jsonl";

fn opts(format: dataset::Format, on_error: OnError) -> Options {
    Options {
        format,
        on_error,
        max_records: Some(50),
        max_tokens_required: false,
        seed: 7,
    }
}

/// Lines that look like records, with any of the fields wrong.
fn jsonl_line() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("\"hello world\"".to_string()),
        Just("\"\"".to_string()),
        (-5i64..2_000_000).prop_map(|n| n.to_string()),
        Just("null".to_string()),
        Just("[]".to_string()),
        Just("{\"role\":\"user\",\"content\":\"hi\"}".to_string()),
        "[ -~]{0,12}".prop_map(|s| format!("{s:?}")),
    ];
    let key = prop_oneof![
        Just("prompt"),
        Just("max_tokens"),
        Just("messages"),
        Just("other")
    ];
    prop_oneof![
        proptest::collection::vec((key, value), 0..4).prop_map(|kv| {
            let fields: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
            format!("{{{}}}", fields.join(", "))
        }),
        "[ -~]{0,30}",
        Just(String::new()),
    ]
}

fn assert_names_the_file(e: &DataError) -> Result<(), TestCaseError> {
    prop_assert!(e.to_string().starts_with(FILE), "{e}");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_text_is_loaded_or_refused_naming_the_file(text in "(?s).{0,300}") {
        for format in [dataset::Format::Jsonl, dataset::Format::ShareGpt] {
            for on_error in [OnError::Fatal, OnError::Skip] {
                if let Err(e) = dataset::parse(&text, Path::new(FILE), &opts(format, on_error)) {
                    assert_names_the_file(&e)?;
                }
            }
        }
        for format in [trace::Format::Csv, trace::Format::Jsonl] {
            if let Err(e) = trace::parse(&text, Path::new(FILE), format, Some(50)) {
                prop_assert!(e.to_string().starts_with(FILE), "{e}");
            }
        }
    }

    #[test]
    fn skipping_accounts_for_every_record_line(lines in proptest::collection::vec(jsonl_line(), 0..20)) {
        let text = lines.join("\n");
        let records = lines.iter().filter(|l| !l.trim().is_empty()).count();
        match dataset::parse(&text, Path::new(FILE), &opts(dataset::Format::Jsonl, OnError::Skip)) {
            Ok(d) => prop_assert_eq!(d.valid + d.skipped, records, "{:?}", d.problems),
            Err(e) => assert_names_the_file(&e)?,
        }
        match dataset::parse(&text, Path::new(FILE), &opts(dataset::Format::Jsonl, OnError::Fatal)) {
            Ok(d) => prop_assert_eq!(d.skipped, 0),
            Err(DataError::Record { line, .. }) => prop_assert!(line >= 1 && line <= lines.len()),
            Err(e) => assert_names_the_file(&e)?,
        }
    }

    #[test]
    fn trace_lines_with_any_values_name_their_line(
        rows in proptest::collection::vec((-3.0f64..1e6, -5i64..2_000_000, -5i64..2_000_000), 0..20),
    ) {
        let mut text = String::from("TIMESTAMP,ContextTokens,GeneratedTokens\n");
        for (t, i, o) in &rows {
            text.push_str(&format!("{t},{i},{o}\n"));
        }
        match trace::parse(&text, Path::new(FILE), trace::Format::Csv, None) {
            Ok(tr) => prop_assert_eq!(tr.records.len(), rows.len()),
            Err(TraceError::Record { line, .. }) => prop_assert!(line >= 1 && line <= rows.len() + 1),
            Err(e) => prop_assert!(e.to_string().starts_with(FILE), "{e}"),
        }
    }
}

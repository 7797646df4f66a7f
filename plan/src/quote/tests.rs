use super::*;

#[test]
fn short_text_is_kept_as_written() {
    assert_eq!(excerpt("\"abc\""), "\"abc\"");
    let limit = "é".repeat(EXCERPT_CHARS);
    assert_eq!(excerpt(&limit), limit.as_str());
    assert_eq!(message("unknown field `x`"), "unknown field `x`");
}

#[test]
fn long_text_is_cut_on_a_char_boundary_and_keeps_its_closing_quote() {
    let long = format!("\"{}\"", "é".repeat(500));
    let cut = excerpt(&long);
    assert!(
        cut.starts_with("\"éé") && cut.ends_with("é…\" (500 characters)"),
        "{cut}"
    );
    assert_eq!(cut.chars().filter(|c| *c == 'é').count(), EXCERPT_CHARS - 1);
    let bare = excerpt(&"x".repeat(300)).into_owned();
    assert!(bare.ends_with("x… (300 characters)"), "{bare}");
}

#[test]
fn a_message_cuts_each_long_quote_and_keeps_the_rest() {
    let long = "a\\\"b".repeat(100);
    let text = format!(
        "invalid type: string \"{long}\", expected u32; unknown field `{}`, expected `name`",
        "k".repeat(200)
    );
    let short = message(&text);
    assert!(
        short.starts_with("invalid type: string \"a\\\"b"),
        "{short}"
    );
    assert!(
        short.contains("…\" (400 characters), expected u32; unknown field `kkk"),
        "{short}"
    );
    assert!(
        short.ends_with("…` (200 characters), expected `name`"),
        "{short}"
    );
    let unclosed = format!("bad \"{}", "z".repeat(10_000));
    let unclosed = message(&unclosed);
    assert!(
        unclosed.chars().count() < MESSAGE_CHARS + 40,
        "{}",
        unclosed.len()
    );
    let plain = "word ".repeat(10_000);
    let plain = message(&plain);
    assert!(
        plain.chars().count() < MESSAGE_CHARS + 40,
        "{}",
        plain.len()
    );
}

#[test]
fn written_values_are_toml() {
    assert_eq!(written(&4u32), "4");
    assert_eq!(written(&0.5f64), "0.5");
    assert_eq!(written("1s"), "\"1s\"");
    let table = toml::Table::from_iter([("path".to_string(), toml::Value::from("t.csv"))]);
    assert_eq!(written(&table), "{ path = \"t.csv\" }");
}

#[test]
fn a_parse_error_shows_an_excerpt_of_its_line_around_the_column() {
    let text = format!("a = 1\nname = \"{}\" x\n", "y".repeat(10_000));
    let e = toml::from_str::<toml::Table>(&text).unwrap_err();
    let shown = parse_error(&text, e);
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(
        lines[0], "TOML parse error at line 2, column 10011",
        "{shown}"
    );
    assert!(
        lines[2].starts_with("2 | …yyy") && lines[2].ends_with("y\" x"),
        "{shown}"
    );
    let caret = lines[3].chars().position(|c| c == '^').unwrap();
    assert_eq!(lines[2].chars().nth(caret), Some('x'), "{shown}");
    assert!(shown.len() < 600, "{shown}");

    let text = "a = 1\nb = [\n";
    let e = toml::from_str::<toml::Table>(text).unwrap_err();
    let ours = parse_error(text, e.clone());
    assert_eq!(
        ours,
        e.to_string().trim_end(),
        "short lines look as the parser shows them"
    );
}

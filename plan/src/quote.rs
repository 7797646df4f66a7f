//! How plan text appears in error messages: as written, but short.
//!
//! A plan may hold a value, a key or a line megabytes long; an error quotes
//! at most [`EXCERPT_CHARS`] characters of any of them, cut on a character
//! boundary and marked with `…` and the full length, so a bad plan never
//! floods the terminal. Parser errors keep their line and column.

use serde::Serialize;
use std::borrow::Cow;
use std::fmt::Write as _;

/// Most characters of one value, key or line quoted in an error.
pub const EXCERPT_CHARS: usize = 120;

/// Most characters of a whole reason or parser message (the quotes inside
/// it are cut to [`EXCERPT_CHARS`] first).
const MESSAGE_CHARS: usize = 2000;

/// `text` as it is when short; else its first [`EXCERPT_CHARS`] characters,
/// `…` and its length. A closing quote (`"` or `` ` ``) is kept.
pub fn excerpt(text: &str) -> Cow<'_, str> {
    cut(text, EXCERPT_CHARS)
}

fn cut(text: &str, max: usize) -> Cow<'_, str> {
    let Some((end, _)) = text.char_indices().nth(max) else {
        return Cow::Borrowed(text);
    };
    let quote = text
        .chars()
        .next()
        .filter(|q| matches!(q, '"' | '`') && text.len() > 1 && text.ends_with(*q));
    let quotes = if quote.is_some() { 2 } else { 0 };
    let chars = text.chars().count() - quotes;
    let close = quote.map(String::from).unwrap_or_default();
    Cow::Owned(format!("{}…{close} ({chars} characters)", &text[..end]))
}

/// A reason or parser message made short: every quoted part (`"…"` with
/// its escapes, or `` `…` ``) cut to an excerpt, then the whole capped.
pub fn message(text: &str) -> Cow<'_, str> {
    if text.chars().nth(EXCERPT_CHARS).is_none() {
        return Cow::Borrowed(text);
    }
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find(['"', '`']) {
        out.push_str(&rest[..open]);
        rest = &rest[open..];
        let len = quoted_len(rest).unwrap_or(1);
        out.push_str(&excerpt(&rest[..len]));
        rest = &rest[len..];
    }
    out.push_str(rest);
    Cow::Owned(capped(&out).into_owned())
}

/// `text` capped at a message's length, for text already made of excerpts.
pub fn capped(text: &str) -> Cow<'_, str> {
    cut(text, MESSAGE_CHARS)
}

/// Bytes of the quoted part `s` starts with, closing quote included; `None`
/// when it is not closed.
fn quoted_len(s: &str) -> Option<usize> {
    let mut chars = s.char_indices();
    let (_, q) = chars.next()?;
    while let Some((i, c)) = chars.next() {
        if c == q {
            return Some(i + c.len_utf8());
        }
        if c == '\\' && q == '"' {
            chars.next();
        }
    }
    None
}

/// A value as the plan writes it, in TOML (`4`, `"1s"`, `{ path = "t.csv" }`),
/// cut to an excerpt: for errors about a key that is set where it must not be.
pub fn written<T: Serialize + ?Sized>(value: &T) -> String {
    match toml::Value::try_from(value) {
        Ok(v) => excerpt(&v.to_string()).into_owned(),
        Err(_) => "(set)".to_string(),
    }
}

/// The value of `key` in `table` (a raw plan table) as written, in TOML:
/// for errors about a key that is set where it must not be.
pub fn written_key<T: Serialize + ?Sized>(table: &T, key: &str) -> String {
    toml::Table::try_from(table)
        .ok()
        .and_then(|t| t.get(key).map(written))
        .unwrap_or_else(|| "(set)".to_string())
}

/// A TOML parser's error on `text`, with the offending line cut to an
/// excerpt around the column (the parser itself would echo the whole line).
pub fn parse_error(text: &str, mut e: toml::de::Error) -> String {
    let at = e.span().map(|span| position(text, span));
    e.set_input(None);
    let said = e.to_string();
    let said = message(said.trim_end());
    match at {
        Some(at) => format!("{at}\n{said}"),
        None => said.into_owned(),
    }
}

/// "TOML parse error at line L, column C" and the line's excerpt under it,
/// with carets under the span.
fn position(text: &str, span: std::ops::Range<usize>) -> String {
    let mut start = span.start.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = text[line_start..line_end].trim_end_matches('\r');
    let number = text[..line_start].matches('\n').count() + 1;
    let column = text[line_start..start].chars().count();
    let width = text
        .get(start..span.end.min(line_start + line.len()))
        .map_or(1, |s| s.chars().count().max(1));

    let total = line.chars().count();
    let from = column
        .saturating_sub(EXCERPT_CHARS / 4)
        .min(total.saturating_sub(EXCERPT_CHARS));
    let shown: String = line.chars().skip(from).take(EXCERPT_CHARS).collect();
    let (before, after) = (from > 0, from + EXCERPT_CHARS < total);
    let offset = column - from + usize::from(before);
    let carets = width
        .min((EXCERPT_CHARS + 1).saturating_sub(column - from))
        .max(1);

    let gutter = " ".repeat(number.to_string().len());
    let mut out = format!("TOML parse error at line {number}, column {}\n", column + 1);
    let _ = writeln!(out, "{gutter} |");
    let _ = writeln!(
        out,
        "{number} | {}{shown}{}",
        if before { "…" } else { "" },
        if after { "…" } else { "" }
    );
    let _ = write!(
        out,
        "{gutter} | {}{}",
        " ".repeat(offset),
        "^".repeat(carets)
    );
    out
}

#[cfg(test)]
mod tests;

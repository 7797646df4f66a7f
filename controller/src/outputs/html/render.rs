//! A [`Page`] as one self-contained HTML file: styles, uPlot, the chart
//! data and the page script are all inlined, so the file opens from disk
//! with no network. Tables are plain HTML (readable without JavaScript);
//! the script draws each chart into its placeholder.
//!
//! Everything from a plan or manifest is escaped: text with [`text`], the
//! chart data with [`script_json`] (no `<`, `>` or `&` survives into the
//! `<script>` element, so a phase name cannot end it).

use super::page::{Cell, Chart, Finding, Page, Section, Table};
/// Text escaped for HTML text and attribute values.
pub(crate) use crate::outputs::gate::junit::esc as text;
use std::fmt::Write as _;

const UPLOT_JS: &str = include_str!("../../../assets/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../../../assets/uplot/uPlot.min.css");
const PAGE_JS: &str = include_str!("../../../assets/report/page.js");
const PAGE_CSS: &str = include_str!("../../../assets/report/page.css");

/// A relative link to a file: every byte outside a small safe set is
/// percent-encoded, so a name cannot become a scheme (`javascript:`), a
/// query or a fragment.
pub fn href(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/,=@+".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// JSON made safe inside a `<script>` element: `<`, `>` and `&` as
/// `\u` escapes (JSON.parse reads them back unchanged).
pub fn script_json(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The whole page.
pub fn page(p: &Page) -> String {
    let charts: Vec<&Chart> = p.sections.iter().flat_map(|s| &s.charts).collect();
    let data = serde_json::json!({ "charts": charts });
    let mut out = String::with_capacity(128 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{UPLOT_CSS}\n{PAGE_CSS}</style>\n</head>\n<body>\n",
        text(&p.title)
    );
    let _ = write!(
        out,
        "<header>\n<h1>{}</h1>\n<p class=\"sub\">{}</p>\n</header>\n",
        text(&p.title),
        text(&p.subtitle)
    );
    findings(&mut out, &p.findings);
    nav(&mut out, &p.sections);
    for s in &p.sections {
        section(&mut out, s);
    }
    let _ = write!(
        out,
        "<pre id=\"render-result\" hidden></pre>\n\
         <script type=\"application/json\" id=\"chart-data\">{}</script>\n\
         <script>\n{UPLOT_JS}\n</script>\n<script>\n{PAGE_JS}</script>\n</body>\n</html>\n",
        script_json(&data.to_string())
    );
    out
}

fn findings(out: &mut String, list: &[Finding]) {
    if list.is_empty() {
        return;
    }
    out.push_str("<section id=\"findings\" class=\"findings\">\n");
    for f in list {
        let _ = writeln!(
            out,
            "<div class=\"finding {}\"><b>{}</b> {}</div>",
            f.tone.class(),
            text(&f.label),
            text(&f.text)
        );
    }
    out.push_str("</section>\n");
}

fn nav(out: &mut String, sections: &[Section]) {
    out.push_str("<nav>");
    for s in sections {
        let _ = write!(
            out,
            "<a href=\"#{}\">{}</a> ",
            text(&s.id),
            text(&s.heading)
        );
    }
    out.push_str("</nav>\n");
}

fn section(out: &mut String, s: &Section) {
    let _ = writeln!(
        out,
        "<section id=\"{}\">\n<h2>{}</h2>",
        text(&s.id),
        text(&s.heading)
    );
    if let Some(note) = &s.note {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", text(note));
    }
    for t in &s.tables {
        table(out, t);
    }
    if !s.charts.is_empty() {
        out.push_str("<div class=\"charts\">\n");
        for c in &s.charts {
            let _ = writeln!(
                out,
                "<figure class=\"chart\" id=\"{}\"><figcaption>{}</figcaption>\
                 <p class=\"nojs\">This chart needs JavaScript; the tables hold its figures.</p></figure>",
                text(&c.id),
                text(&c.title)
            );
        }
        out.push_str("</div>\n");
    }
    if !s.links.is_empty() {
        out.push_str("<ul class=\"links\">\n");
        for (label, href) in &s.links {
            let _ = writeln!(
                out,
                "<li><a href=\"{}\">{}</a></li>",
                self::href(href),
                text(label)
            );
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
}

fn table(out: &mut String, t: &Table) {
    out.push_str("<div class=\"table\"><table>\n");
    if !t.caption.is_empty() {
        let _ = writeln!(out, "<caption>{}</caption>", text(&t.caption));
    }
    out.push_str("<thead><tr>");
    for c in &t.columns {
        let _ = write!(out, "<th>{}</th>", text(c));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &t.rows {
        out.push_str("<tr>");
        for c in row {
            cell(out, c);
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>\n");
}

fn cell(out: &mut String, c: &Cell) {
    let class = c.tone.class();
    if class.is_empty() {
        out.push_str("<td>");
    } else {
        let _ = write!(out, "<td class=\"{class}\">");
    }
    match &c.href {
        Some(href) => {
            let _ = write!(
                out,
                "<a href=\"{}\">{}</a>",
                self::href(href),
                text(&c.text)
            );
        }
        None => out.push_str(&text(&c.text)),
    }
    out.push_str("</td>");
}

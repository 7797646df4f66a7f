//! A small strict checker of the Prometheus text exposition format (0.0.4): names, labels,
//! escaping, values, HELP/TYPE placement, unique series, and histogram invariants.

use std::collections::{BTreeMap, HashMap, HashSet};

/// Label pairs, sorted by name.
pub type Labels = Vec<(String, String)>;

/// Every parsed sample: (metric name, labels) → value.
pub type Series = BTreeMap<(String, Labels), f64>;

/// The parsed page: every series, and each family's type.
#[derive(Debug, Default)]
pub struct Page {
    pub series: Series,
    pub types: HashMap<String, String>,
}

impl Page {
    /// The value of `name` (labels ignored; the first match).
    pub fn get(&self, name: &str) -> Option<f64> {
        self.series
            .iter()
            .find(|((n, _), _)| n == name)
            .map(|(_, v)| *v)
    }
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad value {s:?}")),
    }
}

/// Parses `{a="x",b="y"}` starting at `s[0] == '{'`; returns labels and the rest.
fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    let mut rest = &s[1..];
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without '='")?;
        let name = &rest[..eq];
        if !valid_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, '\n')) => return Err("raw newline in label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((name.to_owned(), value));
        rest = &rest[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// Parses and checks a whole page.
pub fn parse(text: &str) -> Result<Page, String> {
    let mut page = Page::default();
    let mut helped = HashSet::new();
    let mut family: Option<(String, String)> = None;
    let mut seen_samples = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let err = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            if !valid_name(name) || !helped.insert(name.to_owned()) {
                return Err(err("bad or repeated HELP".into()));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (Some(name), Some(kind), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(err("malformed TYPE".into()));
            };
            if !valid_name(name)
                || !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind)
            {
                return Err(err("bad TYPE".into()));
            }
            if page
                .types
                .insert(name.to_owned(), kind.to_owned())
                .is_some()
                || seen_samples.contains(name)
            {
                return Err(err("TYPE repeated or after its samples".into()));
            }
            family = Some((name.to_owned(), kind.to_owned()));
            continue;
        }
        if line.starts_with('#') {
            continue; // comment
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| err("no value".into()))?;
        let name = &line[..name_end];
        if !valid_name(name) {
            return Err(err("bad metric name".into()));
        }
        let (mut labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(err)?
        } else {
            (Vec::new(), &line[name_end..])
        };
        let mut fields = rest.trim_start_matches(' ').split(' ');
        let value = parse_value(fields.next().unwrap_or("")).map_err(err)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| err("bad timestamp".into()))?;
        }
        if fields.next().is_some() {
            return Err(err("trailing fields".into()));
        }
        let base = match &family {
            Some((f, kind)) if kind == "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|b| b == f))
                .map(str::to_owned),
            Some((f, _)) if f == name => Some(f.clone()),
            _ => None,
        }
        .ok_or_else(|| err("sample outside its TYPE family".into()))?;
        seen_samples.insert(base);
        let mut names = HashSet::new();
        if !labels.iter().all(|(k, _)| names.insert(k.clone())) {
            return Err(err("duplicate label".into()));
        }
        labels.sort();
        if page
            .series
            .insert((name.to_owned(), labels), value)
            .is_some()
        {
            return Err(err("duplicate series".into()));
        }
    }
    check_histograms(&page)?;
    Ok(page)
}

/// Each histogram series (one per label set without `le`): a `+Inf` bucket, cumulative
/// buckets, `+Inf` = `_count`, and a `_sum`.
fn check_histograms(page: &Page) -> Result<(), String> {
    for (family, kind) in &page.types {
        if kind != "histogram" {
            continue;
        }
        let bucket = format!("{family}_bucket");
        let mut series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        for ((name, labels), v) in &page.series {
            if *name == bucket {
                let le = labels
                    .iter()
                    .find(|(k, _)| k == "le")
                    .ok_or_else(|| format!("{bucket} without le"))?;
                let rest: Labels = labels.iter().filter(|(k, _)| k != "le").cloned().collect();
                series
                    .entry(rest)
                    .or_default()
                    .push((parse_value(&le.1)?, *v));
            }
        }
        if series.is_empty() {
            return Err(format!("{family}: no +Inf bucket"));
        }
        for (labels, mut buckets) in series {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            if buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
                return Err(format!("{family}{labels:?}: no +Inf bucket"));
            }
            if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
                return Err(format!("{family}{labels:?}: buckets not cumulative"));
            }
            let of = |suffix: &str| {
                page.series
                    .get(&(format!("{family}{suffix}"), labels.clone()))
            };
            let count = of("_count").ok_or_else(|| format!("{family}{labels:?}: no _count"))?;
            if buckets.last().map(|b| b.1) != Some(*count) {
                return Err(format!("{family}{labels:?}: +Inf bucket != _count"));
            }
            of("_sum").ok_or_else(|| format!("{family}{labels:?}: no _sum"))?;
        }
    }
    Ok(())
}

/// Checks that every counter and histogram series of `later` is ≥ its value in `earlier`.
pub fn assert_monotonic(earlier: &Page, later: &Page) {
    for ((name, labels), v) in &earlier.series {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| later.types.get(*f).is_some_and(|k| k == "histogram"))
            .unwrap_or(name);
        let kind = later.types.get(family).map(String::as_str);
        if !matches!(kind, Some("counter" | "histogram")) {
            continue;
        }
        let now = later
            .series
            .get(&(name.clone(), labels.clone()))
            .unwrap_or_else(|| panic!("{name}{labels:?} disappeared"));
        assert!(now >= v, "{name}{labels:?} went down: {v} -> {now}");
    }
}

#[test]
fn checker_rejects_bad_pages() {
    assert!(parse("# TYPE a counter\na 1\n").is_ok());
    for bad in [
        "a 1\n",                                     // no TYPE
        "# TYPE a counter\na{x=\"1} 1\n",            // unterminated
        "# TYPE a counter\na{1x=\"1\"} 1\n",         // bad label name
        "# TYPE a counter\na one\n",                 // bad value
        "# TYPE a counter\na 1\na 2\n",              // duplicate series
        "# TYPE a counter\n# TYPE a counter\na 1\n", // repeated TYPE
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
}

//! `run.percentiles`: which percentiles every output shows.
//!
//! Unset, each output keeps its own long-standing set (summary.json and
//! phases.csv p50/p90/p95/p99/p99.9, stats.txt p50/p90/p99/p99.9,
//! windows.csv p50/p90/p99). Set, every output shows exactly the chosen ones.
//! A percentile is named by its digits in JSON and CSV (`p50`, `p999` for
//! 99.9, `p9999` for 99.99) and by its value in text (`p99.9`).

/// Most percentiles a plan may choose: each is a column of every table.
pub const MAX_PERCENTILES: usize = 16;

/// The name of percentile `p` in JSON keys and CSV columns: "p" and its
/// digits, e.g. `p999` for 99.9.
pub fn name(p: f64) -> String {
    format!("p{}", format!("{p}").replace('.', ""))
}

/// The label of percentile `p` in text, e.g. `p99.9`.
pub fn label(p: f64) -> String {
    format!("p{p}")
}

/// Check a chosen list: 1 to [`MAX_PERCENTILES`] values, each above 0 and
/// below 100, no two with the same name. Returns them in ascending order,
/// or the offending value and why.
pub fn validate(values: &[f64]) -> Result<Vec<f64>, (String, String)> {
    let shown = || format!("{values:?}");
    if values.is_empty() || values.len() > MAX_PERCENTILES {
        return Err((
            shown(),
            format!("choose 1 to {MAX_PERCENTILES} percentiles"),
        ));
    }
    if let Some(bad) = values.iter().find(|p| !(**p > 0.0 && **p < 100.0)) {
        return Err((
            bad.to_string(),
            "a percentile lies above 0 and below 100 (min and max are always shown)".into(),
        ));
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if let Some(w) = sorted.windows(2).find(|w| name(w[0]) == name(w[1])) {
        return Err((
            shown(),
            format!(
                "{} and {} are both named {}; list each once",
                w[0],
                w[1],
                name(w[0])
            ),
        ));
    }
    Ok(sorted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels() {
        assert_eq!(name(50.0), "p50");
        assert_eq!(name(99.9), "p999");
        assert_eq!(name(99.99), "p9999");
        assert_eq!(label(99.9), "p99.9");
        assert_eq!(label(75.0), "p75");
    }

    #[test]
    fn a_list_is_sorted_and_bad_ones_are_named() {
        assert_eq!(validate(&[99.0, 50.0]).unwrap(), vec![50.0, 99.0]);
        assert_eq!(validate(&[100.0]).unwrap_err().0, "100");
        assert_eq!(validate(&[0.0, 50.0]).unwrap_err().0, "0");
        assert!(validate(&[]).is_err());
        assert!(validate(&[f64::NAN]).is_err());
        let twice = validate(&[50.0, 50.0]).unwrap_err();
        assert!(twice.1.contains("p50"), "{twice:?}");
        // 9.95 and 99.5 share the digits 995.
        assert!(validate(&[9.95, 99.5]).is_err());
        assert!(validate(&[1.0; 17]).is_err());
    }
}

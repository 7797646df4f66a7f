//! Thresholds from the command line (`--fail-on 'ttft.p99>+10%'`) and from a
//! TOML file (`fail_on = [...]`, the same syntax), parsed and validated before
//! any run is read, with errors naming the flag or the file, key and value.
//!
//! Syntax: `METRIC>+AMOUNT` for figures that are worse when higher (latencies,
//! `error_rate`), `METRIC<-AMOUNT` for those worse when lower (throughputs).
//! AMOUNT is a percentage of the baseline (`10%`), or absolute: `ms` for
//! latencies, `pp` (percentage points) for `error_rate`, `/s` for throughputs.

use crate::model::gate::{Amount, GateMetric, LATENCY_METRICS, Stat, Threshold};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A threshold that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ThresholdError {
    /// A `--fail-on` value.
    #[error("--fail-on {spec:?}: {reason}")]
    Flag {
        /// The value given.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// The thresholds file is not TOML of the expected shape.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: Box<toml::de::Error>,
    },
    /// An entry of the thresholds file.
    #[error("{}: {key} = {value:?}: {reason}", path.display())]
    Entry {
        /// The file.
        path: PathBuf,
        /// The key, e.g. `fail_on[2]`.
        key: String,
        /// The value given.
        value: String,
        /// What is wrong.
        reason: String,
    },
}

/// The thresholds file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdsFile {
    /// Thresholds, in the `--fail-on` syntax.
    fail_on: Vec<String>,
}

/// Thresholds from `--fail-on` values (a metric at most once).
pub fn from_flags(specs: &[String]) -> Result<Vec<Threshold>, ThresholdError> {
    let mut out: Vec<Threshold> = Vec::new();
    for spec in specs {
        let flag = |reason: String| ThresholdError::Flag {
            spec: spec.clone(),
            reason,
        };
        let t = parse(spec).map_err(flag)?;
        check_unique(&out, t).map_err(flag)?;
        out.push(t);
    }
    Ok(out)
}

/// Thresholds from a thresholds file's `text` (a metric at most once).
pub fn from_toml(text: &str, path: &Path) -> Result<Vec<Threshold>, ThresholdError> {
    let file: ThresholdsFile = toml::from_str(text).map_err(|e| ThresholdError::File {
        path: path.to_path_buf(),
        source: Box::new(e),
    })?;
    let mut out: Vec<Threshold> = Vec::new();
    for (i, spec) in file.fail_on.iter().enumerate() {
        let entry = |reason: String| ThresholdError::Entry {
            path: path.to_path_buf(),
            key: format!("fail_on[{i}]"),
            value: spec.clone(),
            reason,
        };
        let t = parse(spec).map_err(entry)?;
        check_unique(&out, t).map_err(entry)?;
        out.push(t);
    }
    Ok(out)
}

/// The file's thresholds, each replaced by a flag's on the same metric, then
/// the flags' other thresholds.
pub fn merge(file: Vec<Threshold>, flags: Vec<Threshold>) -> Vec<Threshold> {
    let mut out: Vec<Threshold> = file
        .into_iter()
        .filter(|t| !flags.iter().any(|f| f.metric == t.metric))
        .collect();
    out.extend(flags);
    out
}

fn check_unique(seen: &[Threshold], t: Threshold) -> Result<(), String> {
    match seen.iter().find(|s| s.metric == t.metric) {
        Some(s) => Err(format!("a second threshold on {} (already {s})", t.metric)),
        None => Ok(()),
    }
}

/// One threshold, e.g. `ttft.p99>+10%` (spaces allowed around each part).
pub fn parse(spec: &str) -> Result<Threshold, String> {
    let Some(at) = spec.find(['>', '<']) else {
        return Err(
            "expected METRIC>+AMOUNT or METRIC<-AMOUNT, e.g. ttft.p99>+10%, throughput<-5%".into(),
        );
    };
    let metric = metric(spec[..at].trim())?;
    let higher = spec[at..].starts_with('>');
    let (op, sign) = metric.op_sign();
    if higher != metric.higher_is_worse() {
        let worse = if higher { "lower" } else { "higher" };
        return Err(format!(
            "{metric} is worse when {worse}: write {metric}{op}{sign}AMOUNT"
        ));
    }
    let amount = amount(metric, spec[at + 1..].trim())?;
    Ok(Threshold { metric, amount })
}

fn metric(name: &str) -> Result<GateMetric, String> {
    let known = || {
        format!(
            "unknown metric {name:?}: one of {}.{{{}}}, throughput, output_throughput, goodput, error_rate",
            LATENCY_METRICS.join("|"),
            Stat::ALL.map(Stat::name).join(",")
        )
    };
    match name {
        "throughput" => return Ok(GateMetric::Throughput),
        "output_throughput" => return Ok(GateMetric::OutputThroughput),
        "goodput" => return Ok(GateMetric::Goodput),
        "error_rate" => return Ok(GateMetric::ErrorRate),
        _ => {}
    }
    let (base, stat) = name.split_once('.').unwrap_or((name, ""));
    let Some(base) = LATENCY_METRICS.into_iter().find(|m| *m == base) else {
        return Err(known());
    };
    if stat.is_empty() {
        return Err(format!(
            "{base} needs a statistic, e.g. {base}.p99 (one of {})",
            Stat::ALL.map(Stat::name).join(", ")
        ));
    }
    let stat = Stat::ALL
        .into_iter()
        .find(|s| s.name() == stat)
        .ok_or_else(known)?;
    Ok(GateMetric::Latency(base, stat))
}

fn amount(metric: GateMetric, text: &str) -> Result<Amount, String> {
    let (op, sign) = metric.op_sign();
    let example = format!("{metric}{op}{sign}5%");
    let (number, unit) = split_unit(text);
    let units = match metric {
        GateMetric::ErrorRate => "pp (percentage points)",
        GateMetric::Latency(..) => "% or ms",
        _ => "% or /s",
    };
    let percent = match unit {
        "%" if metric != GateMetric::ErrorRate => true,
        u if u == metric.unit() => false,
        _ => return Err(format!("{metric} takes an amount in {units}")),
    };
    let magnitude = match (number.strip_prefix(sign), number.strip_prefix(['+', '-'])) {
        (Some(rest), _) => rest,
        (None, None) if sign == '+' => number,
        (None, Some(_)) if sign == '+' => {
            return Err(format!(
                "a negative amount would fail on improvements: write {example}"
            ));
        }
        _ => return Err(format!("a drop is written with a minus: {example}")),
    };
    let v: f64 = magnitude
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| format!("{number:?} is not a number"))?;
    Ok(if percent {
        Amount::Percent(v)
    } else {
        Amount::Absolute(v)
    })
}

/// `+10%` → (`+10`, `%`); no unit when none of the known ones ends `text`.
fn split_unit(text: &str) -> (&str, &str) {
    ["%", "ms", "pp", "/s"]
        .into_iter()
        .find_map(|u| text.strip_suffix(u).map(|n| (n.trim(), u)))
        .unwrap_or((text, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(spec: &str) -> Threshold {
        parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"))
    }

    fn err(spec: &str) -> String {
        parse(spec).expect_err(spec)
    }

    #[test]
    fn each_kind_of_threshold_parses_and_prints_back() {
        let cases = [
            (
                "ttft.p99>+10%",
                GateMetric::Latency("ttft", Stat::P99),
                Amount::Percent(10.0),
            ),
            (
                " itl.p50 > 5% ",
                GateMetric::Latency("itl", Stat::P50),
                Amount::Percent(5.0),
            ),
            (
                "e2e.mean>+20ms",
                GateMetric::Latency("e2e", Stat::Mean),
                Amount::Absolute(20.0),
            ),
            (
                "throughput<-5%",
                GateMetric::Throughput,
                Amount::Percent(5.0),
            ),
            (
                "output_throughput < -2.5/s",
                GateMetric::OutputThroughput,
                Amount::Absolute(2.5),
            ),
            ("goodput<-0%", GateMetric::Goodput, Amount::Percent(0.0)),
            (
                "error_rate>+0.5pp",
                GateMetric::ErrorRate,
                Amount::Absolute(0.5),
            ),
        ];
        for (spec, metric, amount) in cases {
            assert_eq!(ok(spec), Threshold { metric, amount }, "{spec}");
            assert_eq!(ok(&ok(spec).to_string()), ok(spec), "{spec}");
        }
        assert_eq!(ok("ttft.p99>10%").to_string(), "ttft.p99>+10%");
    }

    #[test]
    fn bad_thresholds_say_what_to_write() {
        for (spec, needle) in [
            ("ttft.p99", "expected METRIC>+AMOUNT"),
            ("ttft>+10%", "ttft needs a statistic"),
            ("ttft.p42>+10%", "unknown metric \"ttft.p42\""),
            ("latency.p99>+10%", "one of ttft|itl|e2e|tpot|ntpot"),
            (
                "throughput>+5%",
                "throughput is worse when lower: write throughput<-AMOUNT",
            ),
            ("ttft.p99<-5%", "ttft.p99 is worse when higher"),
            (
                "throughput<5%",
                "a drop is written with a minus: throughput<-5%",
            ),
            ("ttft.p99>-10%", "would fail on improvements"),
            ("ttft.p99>+10", "ttft.p99 takes an amount in % or ms"),
            ("ttft.p99>+10pp", "% or ms"),
            ("error_rate>+1%", "error_rate takes an amount in pp"),
            ("throughput<-3ms", "% or /s"),
            ("ttft.p99>+abc%", "\"+abc\" is not a number"),
            ("ttft.p99>+inf%", "is not a number"),
        ] {
            let e = err(spec);
            assert!(e.contains(needle), "{spec}: {e}");
        }
    }

    #[test]
    fn file_errors_name_the_file_key_and_value() {
        let path = Path::new("gate.toml");
        let text = "fail_on = [\"ttft.p99>+10%\", \"throughput>+5%\"]";
        let e = from_toml(text, path).unwrap_err().to_string();
        assert!(
            e.starts_with("gate.toml: fail_on[1] = \"throughput>+5%\": throughput is worse"),
            "{e}"
        );
        let e = from_toml("fail_on = [\"ttft.p99>+1%\", \"ttft.p99>+2%\"]", path)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fail_on[1]") && e.contains("a second threshold on ttft.p99"),
            "{e}"
        );
        let e = from_toml("fail_onn = []", path).unwrap_err().to_string();
        assert!(
            e.starts_with("gate.toml: ") && e.contains("fail_onn"),
            "{e}"
        );
        let e = from_flags(&["itl.p50>+5%".into(), "itl.p50>+6%".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--fail-on \"itl.p50>+6%\": a second threshold"),
            "{e}"
        );
    }

    #[test]
    fn flags_replace_the_files_threshold_on_the_same_metric() {
        let file = from_toml(
            "fail_on = [\"ttft.p99>+10%\", \"throughput<-5%\"]",
            Path::new("f"),
        )
        .unwrap();
        let flags = from_flags(&["ttft.p99>+20%".into(), "itl.p50>+5%".into()]).unwrap();
        let merged: Vec<String> = merge(file, flags).iter().map(|t| t.to_string()).collect();
        assert_eq!(merged, ["throughput<-5%", "ttft.p99>+20%", "itl.p50>+5%"]);
    }
}

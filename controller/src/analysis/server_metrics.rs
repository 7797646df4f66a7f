//! Server-side metrics: the target's Prometheus `/metrics` pages, scraped at
//! an interval during each phase and summarized per phase the way
//! Prometheus itself would — counters as increases (a counter that goes
//! down was reset: the new value is the increase since), gauges as mean and
//! max over the scrapes, histograms as bucket increases with quantiles
//! interpolated inside buckets — every label set kept apart. From those come
//! the serving figures next to the client-side ones: prefix-cache hit rate
//! (Δhits / Δqueries), KV-cache usage, running and waiting requests, and the
//! server's own TTFT and E2E latency.
//!
//! Scrapes are recorded raw in `windows.jsonl`, so a rebuilt report derives
//! exactly these figures.

use crate::model::{Labels, SeriesSummary, ServerSummary};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One scrape of one `/metrics` page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scrape {
    /// The page scraped.
    pub url: String,
    /// Milliseconds since the phase's start.
    pub at_ms: u64,
    /// Declared type of each family (`counter`, `gauge`, `histogram`, ...).
    pub types: BTreeMap<String, String>,
    /// (sample name, labels, value).
    pub samples: Vec<(String, Labels, f64)>,
}

/// A page that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("{url}: not Prometheus text format: {reason}")]
pub struct ParseError {
    /// The page.
    pub url: String,
    /// What the parser said.
    pub reason: String,
}

/// Parse a page, keeping the families whose names start with one of `prefixes`.
pub fn parse(url: &str, at_ms: u64, text: &str, prefixes: &[String]) -> Result<Scrape, ParseError> {
    let keep =
        |name: &str| prefixes.is_empty() || prefixes.iter().any(|p| name.starts_with(p.as_str()));
    // The parser wants every line, the last included, ended by a newline.
    let owned;
    let text = if text.is_empty() || text.ends_with('\n') {
        text
    } else {
        owned = format!("{text}\n");
        &owned
    };
    let (_, families) = nom_openmetrics::parser::prometheus(text).map_err(|e| ParseError {
        url: url.to_string(),
        reason: first_line(&e.to_string()),
    })?;
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    for f in &families {
        for d in &f.descriptors {
            if let nom_openmetrics::MetricDescriptor::Type { metric, r#type } = d
                && keep(metric)
            {
                types.insert((*metric).to_string(), r#type.to_string().to_lowercase());
            }
        }
        for s in &f.samples {
            if !keep(s.name()) {
                continue;
            }
            let labels: Labels = s
                .labels()
                .iter()
                .map(|l| (l.name.to_string(), l.value.clone()))
                .collect();
            samples.push((s.name().to_string(), labels, s.number()));
        }
    }
    Ok(Scrape {
        url: url.to_string(),
        at_ms,
        types,
        samples,
    })
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    line.chars().take(200).collect()
}

/// The type a scrape declares for sample `name` (`counter`, `gauge`,
/// `histogram`, ...), looking through the `_total`, `_bucket`, `_sum`,
/// `_count` suffixes; `untyped` when undeclared.
fn type_of<'a>(types: &'a BTreeMap<String, String>, name: &str) -> (&'a str, String) {
    if let Some(t) = types.get(name) {
        return (t, name.to_string());
    }
    for suffix in ["_total", "_bucket", "_sum", "_count", "_created"] {
        if let Some(base) = name.strip_suffix(suffix)
            && let Some(t) = types.get(base)
        {
            return (t, base.to_string());
        }
    }
    ("untyped", name.to_string())
}

/// Increase of a counter over successive readings: a drop is a reset, after
/// which the new reading is the increase since the reset.
pub fn increase(values: &[f64]) -> (f64, u32) {
    let mut total = 0.0;
    let mut resets = 0;
    for w in values.windows(2) {
        if w[1] >= w[0] {
            total += w[1] - w[0];
        } else {
            total += w[1];
            resets += 1;
        }
    }
    (total, resets)
}

/// Quantile `q` of a cumulative histogram given as (upper bound, count),
/// interpolated linearly inside the bucket, as Prometheus' `histogram_quantile`.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                // Beyond the last finite bound: its bound is the best known.
                return Some(prev.0);
            }
            let in_bucket = count - prev.1;
            let frac = if in_bucket > 0.0 {
                (rank - prev.1) / in_bucket
            } else {
                1.0
            };
            return Some(prev.0 + (le - prev.0) * frac);
        }
        prev = (le, count);
    }
    Some(prev.0)
}

/// Summarize the scrapes of one phase (all pages, in time order per page).
pub fn summarize(scrapes: &[Scrape], failed: &BTreeMap<String, u32>) -> ServerSummary {
    let mut out = ServerSummary {
        scrapes: u32::try_from(scrapes.len()).unwrap_or(u32::MAX),
        failed_scrapes: failed.clone(),
        ..Default::default()
    };
    let mut pages: BTreeMap<&str, Vec<&Scrape>> = BTreeMap::new();
    for s in scrapes {
        pages.entry(s.url.as_str()).or_default().push(s);
    }
    for (url, mut page) in pages {
        page.sort_by_key(|s| s.at_ms);
        out.series.insert(url.to_string(), page_series(&page));
    }
    derive(&mut out);
    out
}

/// A histogram series' readings: upper bound's bits → (bound, readings).
type Buckets = BTreeMap<u64, (f64, Vec<f64>)>;

/// Readings of every series of one page, then their summaries.
fn page_series(page: &[&Scrape]) -> Vec<SeriesSummary> {
    // (kind, name, labels) → readings in scrape order.
    let mut scalars: BTreeMap<(String, String, Labels), Vec<f64>> = BTreeMap::new();
    // (family, labels without le) → le → readings.
    let mut hists: BTreeMap<(String, Labels), Buckets> = BTreeMap::new();
    for s in page {
        for (name, labels, value) in &s.samples {
            let (kind, family) = type_of(&s.types, name);
            match kind {
                "histogram" if name.ends_with("_bucket") => {
                    let mut labels = labels.clone();
                    let Some(le) = labels.remove("le").and_then(|le| parse_bound(&le)) else {
                        continue;
                    };
                    hists
                        .entry((family, labels))
                        .or_default()
                        .entry(le.to_bits())
                        .or_insert((le, Vec::new()))
                        .1
                        .push(*value);
                }
                "counter" if !name.ends_with("_created") => {
                    scalars
                        .entry(("counter".into(), name.clone(), labels.clone()))
                        .or_default()
                        .push(*value);
                }
                "gauge" => {
                    scalars
                        .entry(("gauge".into(), name.clone(), labels.clone()))
                        .or_default()
                        .push(*value);
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    for ((kind, name, labels), values) in scalars {
        let mut s = SeriesSummary {
            name,
            labels,
            kind: kind.clone(),
            increase: None,
            resets: 0,
            mean: None,
            max: None,
            p50: None,
            p90: None,
            p99: None,
        };
        if kind == "counter" {
            let (inc, resets) = increase(&values);
            (s.increase, s.resets) = (Some(inc), resets);
        } else if !values.is_empty() {
            s.mean = Some(values.iter().sum::<f64>() / values.len() as f64);
            s.max = Some(values.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        }
        out.push(s);
    }
    for ((name, labels), buckets) in hists {
        // Per bucket, its increase over the phase (resets handled per bucket).
        let mut cumulative: Vec<(f64, f64)> = buckets
            .into_values()
            .map(|(le, readings)| (le, increase(&readings).0))
            .collect();
        cumulative.sort_by(|a, b| a.0.total_cmp(&b.0));
        let observations = cumulative.last().map(|b| b.1);
        out.push(SeriesSummary {
            name,
            labels,
            kind: "histogram".into(),
            increase: observations,
            resets: 0,
            mean: None,
            max: None,
            p50: quantile(&cumulative, 0.5),
            p90: quantile(&cumulative, 0.9),
            p99: quantile(&cumulative, 0.99),
        });
    }
    out
}

fn parse_bound(le: &str) -> Option<f64> {
    match le {
        "+Inf" | "Inf" | "inf" => Some(f64::INFINITY),
        _ => le.parse::<f64>().ok().filter(|v| !v.is_nan()),
    }
}

/// Derived serving figures from the series of every page.
fn derive(out: &mut ServerSummary) {
    let all: Vec<&SeriesSummary> = out.series.values().flatten().collect();
    let sum_increase = |names: &[&str]| -> Option<f64> {
        let found: Vec<f64> = all
            .iter()
            .filter(|s| s.kind == "counter" && names.contains(&s.name.as_str()))
            .filter_map(|s| s.increase)
            .collect();
        (!found.is_empty()).then(|| found.iter().sum())
    };
    let gauge = |names: &[&str]| -> (Option<f64>, Option<f64>) {
        let found: Vec<&&SeriesSummary> = all
            .iter()
            .filter(|s| s.kind == "gauge" && names.contains(&s.name.as_str()))
            .collect();
        if found.is_empty() {
            return (None, None);
        }
        // Series of one page add up (several engines or models on one server).
        (
            Some(found.iter().filter_map(|s| s.mean).sum()),
            Some(found.iter().filter_map(|s| s.max).sum()),
        )
    };
    let hits = sum_increase(&["vllm:prefix_cache_hits_total", "vllm:prefix_cache_hits"]);
    let queries = sum_increase(&[
        "vllm:prefix_cache_queries_total",
        "vllm:prefix_cache_queries",
    ]);
    out.prefix_cache_hit_rate = match (hits, queries) {
        (Some(h), Some(q)) if q > 0.0 => Some(h / q),
        _ => None,
    };
    (out.kv_cache_usage_mean, out.kv_cache_usage_max) =
        gauge(&["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"]);
    (out.running_mean, out.running_max) = gauge(&["vllm:num_requests_running"]);
    (out.waiting_mean, out.waiting_max) = gauge(&["vllm:num_requests_waiting"]);
    out.requests = sum_increase(&["vllm:request_success_total"]);
    out.prompt_tokens = sum_increase(&["vllm:prompt_tokens_total"]);
    out.generation_tokens = sum_increase(&["vllm:generation_tokens_total"]);
    // Server latency: one histogram when the server has one series; several
    // series are not merged (their buckets may differ) but listed in `series`.
    let single = |name: &str| -> Option<&SeriesSummary> {
        let mut it = all
            .iter()
            .filter(|s| s.kind == "histogram" && s.name == name);
        let first = it.next()?;
        it.next().is_none().then_some(*first)
    };
    let ms = |v: Option<f64>| v.map(|s| s * 1e3);
    if let Some(h) = single("vllm:time_to_first_token_seconds") {
        (out.ttft_p50_ms, out.ttft_p99_ms) = (ms(h.p50), ms(h.p99));
    }
    if let Some(h) = single("vllm:e2e_request_latency_seconds") {
        (out.e2e_p50_ms, out.e2e_p99_ms) = (ms(h.p50), ms(h.p99));
    }
}

/// Largest `/metrics` page read (bytes).
const MAX_PAGE_BYTES: usize = 16 * 1024 * 1024;

/// What one scrape attempt gave.
#[derive(Debug, Clone)]
pub enum Scraped {
    /// The parsed page.
    Page(Scrape),
    /// The page could not be fetched or parsed.
    Failed {
        /// The page.
        url: String,
        /// Milliseconds since the phase's start.
        at_ms: u64,
        /// Why.
        reason: String,
    },
}

/// Where and how to scrape during a phase.
#[derive(Debug, Clone)]
pub struct Scraper {
    /// HTTP client (with the scrape timeout).
    pub client: reqwest::Client,
    /// Pages.
    pub urls: Vec<String>,
    /// Family-name prefixes kept.
    pub families: Vec<String>,
    /// Time between scrapes.
    pub interval: std::time::Duration,
}

impl Scraper {
    /// Scrape every page once; `start` is the phase's start.
    pub async fn scrape_all(&self, start: tokio::time::Instant) -> Vec<Scraped> {
        let at_ms = u64::try_from(
            tokio::time::Instant::now()
                .saturating_duration_since(start)
                .as_millis(),
        )
        .unwrap_or(u64::MAX);
        let pages = self.urls.iter().map(|url| async move {
            match self.fetch(url).await {
                Ok(text) => match parse(url, at_ms, &text, &self.families) {
                    Ok(page) => Scraped::Page(page),
                    Err(e) => Scraped::Failed {
                        url: url.clone(),
                        at_ms,
                        reason: e.reason,
                    },
                },
                Err(reason) => Scraped::Failed {
                    url: url.clone(),
                    at_ms,
                    reason,
                },
            }
        });
        futures_util::future::join_all(pages).await
    }

    async fn fetch(&self, url: &str) -> Result<String, String> {
        let mut resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("cannot fetch: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("reading: {e}"))? {
            if body.len() + chunk.len() > MAX_PAGE_BYTES {
                return Err(format!("page larger than {MAX_PAGE_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|_| "page is not UTF-8".to_string())
    }

    /// Scrape now, then every interval until `stop`, sending each result.
    pub fn spawn(
        &self,
        start: tokio::time::Instant,
        tx: tokio::sync::mpsc::Sender<Scraped>,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(me.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = stop.cancelled() => return,
                }
                for s in me.scrape_all(start).await {
                    if tx.send(s).await.is_err() {
                        return;
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "\
# HELP vllm:num_requests_running Number of requests.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name=\"a\"} 3
vllm:num_requests_running{model_name=\"b\"} 1
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{model_name=\"a\"} 1000
vllm:prefix_cache_queries_total{model_name=\"b\"} 500
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{model_name=\"a\"} 600
vllm:prefix_cache_hits_total{model_name=\"b\"} 100
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{model_name=\"a\",le=\"0.01\"} 10
vllm:time_to_first_token_seconds_bucket{model_name=\"a\",le=\"0.1\"} 90
vllm:time_to_first_token_seconds_bucket{model_name=\"a\",le=\"+Inf\"} 100
vllm:time_to_first_token_seconds_sum{model_name=\"a\"} 4.2
vllm:time_to_first_token_seconds_count{model_name=\"a\"} 100
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
";

    fn page(at_ms: u64, text: &str) -> Scrape {
        parse("http://s/metrics", at_ms, text, &["vllm:".to_string()]).unwrap()
    }

    /// The page with every number multiplied by `k` (a later scrape).
    fn scaled(k: f64) -> String {
        PAGE.lines()
            .map(|l| {
                if l.starts_with('#') {
                    return format!("{l}\n");
                }
                let (head, v) = l.rsplit_once(' ').unwrap();
                format!("{head} {}\n", v.parse::<f64>().unwrap() * k)
            })
            .collect()
    }

    #[test]
    fn parses_names_with_colons_labels_and_types_and_filters_families() {
        let s = page(0, PAGE);
        assert_eq!(s.types["vllm:num_requests_running"], "gauge");
        assert_eq!(s.types["vllm:time_to_first_token_seconds"], "histogram");
        assert!(!s.types.contains_key("process_cpu_seconds_total"));
        let running: Vec<_> = s
            .samples
            .iter()
            .filter(|(n, _, _)| n == "vllm:num_requests_running")
            .collect();
        assert_eq!(running.len(), 2);
        assert_eq!(running[0].1["model_name"], "a");
        assert_eq!(running[0].2, 3.0);
        assert!(s.samples.iter().all(|(n, _, _)| n.starts_with("vllm:")));
    }

    #[test]
    fn a_bad_page_is_an_error_naming_the_url() {
        let e = parse("http://s/metrics", 0, "vllm:x{oops 1\n", &[]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("http://s/metrics: not Prometheus"),
            "{e}"
        );
    }

    #[test]
    fn counters_increase_across_resets_and_label_sets_stay_apart() {
        assert_eq!(increase(&[10.0, 15.0, 15.0, 20.0]), (10.0, 0));
        // Reset between 20 and 3: the 3 counted since the reset.
        assert_eq!(increase(&[10.0, 20.0, 3.0, 8.0]), (18.0, 1));
        let scrapes = [
            page(0, PAGE),
            page(1000, &scaled(2.0)),
            page(2000, &scaled(3.0)),
        ];
        let s = summarize(&scrapes, &BTreeMap::new());
        let series = &s.series["http://s/metrics"];
        let q = |m: &str| {
            series
                .iter()
                .find(|x| {
                    x.name == "vllm:prefix_cache_queries_total" && x.labels["model_name"] == m
                })
                .unwrap()
                .increase
                .unwrap()
        };
        assert_eq!((q("a"), q("b")), (2000.0, 1000.0));
        // (1200 + 200) / (2000 + 1000)
        assert!((s.prefix_cache_hit_rate.unwrap() - 1400.0 / 3000.0).abs() < 1e-12);
        // Running: a (3, 6, 9) + b (1, 2, 3): means 6 + 2, maxes 9 + 3.
        assert_eq!((s.running_mean, s.running_max), (Some(8.0), Some(12.0)));
    }

    #[test]
    fn histogram_quantiles_come_from_bucket_increases() {
        // Phase increase: 2× − 1× = the page's own buckets (10, 90, 100).
        let s = summarize(&[page(0, PAGE), page(1000, &scaled(2.0))], &BTreeMap::new());
        let h = s.series["http://s/metrics"]
            .iter()
            .find(|x| x.kind == "histogram")
            .unwrap();
        assert_eq!(h.increase, Some(100.0));
        // p50: rank 50 in (0.01, 0.1] holding 80 → 0.01 + 0.09 · 40/80.
        assert!((h.p50.unwrap() - 0.055).abs() < 1e-12, "{h:?}");
        // p99: rank 99 in (0.1, +Inf]: the last finite bound.
        assert_eq!(h.p99, Some(0.1));
        assert!((s.ttft_p50_ms.unwrap() - 55.0).abs() < 1e-9);
        assert_eq!(quantile(&[(1.0, 0.0), (f64::INFINITY, 0.0)], 0.5), None);
    }
}
